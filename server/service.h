// server/service.h: the RPC edge, hbsa.v1.Attention on gRPC's callback API.
//
// A thin `final` service class. Handlers never block on compute: they translate and validate
// the request, hand a Job to the Scheduler and return; the executor thread that completes the
// job finishes the call (unary) or queues the response write (stream). Every outcome, refused
// or computed, is counted in metrics and failures are logged once with their reason.
//
// AttendStream: one response per request, an `error` field instead of outputs on failure (the
// stream continues); at most `stream_max_inflight` requests of a stream read and not yet
// answered (the next Read is not started until one is answered: back-pressure); one Write
// outstanding at a time, later responses queued in completion order.
#ifndef HBSA_SERVER_SERVICE_H_
#define HBSA_SERVER_SERVICE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "hbsa/v1/attention.grpc.pb.h"
#include "job.h"
#include "metrics.h"
#include "scheduler.h"
#include "translate.h"

namespace hbsa::server {

struct ServiceOptions {
  TranslateLimits limits;           // message size and memory budget checks
  int stream_max_inflight = 8;      // per AttendStream
  v1::Capabilities capabilities;    // answer of GetCapabilities
};

class AttentionService final : public v1::Attention::CallbackService {
 public:
  AttentionService(ServiceOptions options, Scheduler* scheduler, Metrics* metrics);

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const v1::AttendRequest* request,
                                   v1::AttendResponse* response) override;
  grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse>* AttendStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetCapabilities(grpc::CallbackServerContext* context,
                                            const v1::GetCapabilitiesRequest* request,
                                            v1::Capabilities* response) override;

  // Used by the calls (service.cc) and by warm-up: translate, validate and submit one request.
  // On OK the job is admitted and `done` will be called exactly once; on error nothing was
  // admitted and `done` is never called.
  absl::Status Admit(const char* method, const v1::AttendRequest& request,
                     v1::AttendResponse* response, std::shared_ptr<CallFlags> flags,
                     std::optional<Clock::time_point> deadline, Clock::time_point received,
                     std::function<void(const absl::Status&)> done);

  // Counts and (on failure) logs one answered request.
  void RecordOutcome(const char* method, const std::string& request_id, const absl::Status& status,
                     Clock::time_point received, int64_t response_bytes);

  int stream_max_inflight() const { return options_.stream_max_inflight; }
  Metrics* metrics() { return metrics_; }

 private:
  const ServiceOptions options_;
  Scheduler* const scheduler_;
  Metrics* const metrics_;
};

// The call's deadline on the steady clock, if it has one.
std::optional<Clock::time_point> DeadlineOf(const grpc::CallbackServerContext& context);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SERVICE_H_
