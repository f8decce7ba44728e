// server/session_service.h: the RPC edge of hbsa.v1.Sessions (proto/hbsa/v1/session.proto).
//
// A thin `final` callback service beside AttentionService on the same port. OpenSession,
// Append and CloseSession are answered on the gRPC thread (they only touch the SessionStore).
// AttendSession checks the call against its session, gathers the resident K/V of the named
// sequences into a packed AttendRequest-shaped job (session_store.h says why this first step
// gathers), validates it with the one validation pass (Translate), commits the call's append,
// and hands the job to the Scheduler like any Attend; the executor thread that completes it
// finishes the call. Outcomes are counted and failures logged by AttentionService's
// RecordOutcome; Status values are mapped once (status_map.h).
#ifndef HBSA_SERVER_SESSION_SERVICE_H_
#define HBSA_SERVER_SESSION_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "hbsa/v1/session.grpc.pb.h"
#include "metrics.h"
#include "scheduler.h"
#include "service.h"
#include "session_store.h"
#include "translate.h"

namespace hbsa::server {

class SessionService final : public v1::Sessions::CallbackService {
 public:
  // Everything outlives the service. `attention` records outcomes (metrics, logs).
  SessionService(TranslateLimits limits, SessionStore* store, Scheduler* scheduler,
                 Metrics* metrics, AttentionService* attention);

  grpc::ServerUnaryReactor* OpenSession(grpc::CallbackServerContext* context,
                                        const v1::OpenSessionRequest* request,
                                        v1::OpenSessionResponse* response) override;
  grpc::ServerUnaryReactor* Append(grpc::CallbackServerContext* context,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) override;
  grpc::ServerUnaryReactor* AttendSession(grpc::CallbackServerContext* context,
                                          const v1::AttendSessionRequest* request,
                                          v1::AttendSessionResponse* response) override;
  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* context,
                                         const v1::CloseSessionRequest* request,
                                         v1::CloseSessionResponse* response) override;

  // AttendSession's work up to admission: the checks against the session, the gather, the
  // validation pass and the append. On OK `*job` holds a translated job ready to submit (its
  // `done` unset) and `lengths` the resident lengths; on error nothing changed.
  absl::Status PrepareAttend(const v1::AttendSessionRequest& request, std::unique_ptr<Job>* job,
                             std::vector<int64_t>* lengths);

  SessionStore* store() { return store_; }
  Scheduler* scheduler() { return scheduler_; }
  Metrics* metrics() { return metrics_; }
  AttentionService* attention() { return attention_; }

 private:
  const TranslateLimits limits_;
  SessionStore* const store_;
  Scheduler* const scheduler_;
  Metrics* const metrics_;
  AttentionService* const attention_;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SESSION_SERVICE_H_
