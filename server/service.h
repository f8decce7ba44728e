// server/service.h: the RPC edge, hbsa.v1.Attention on gRPC's callback API.
//
// A thin `final` service class. Attend and AttendStream are raw methods: gRPC hands them the
// request's received bytes (grpc::ByteBuffer slices), which ParseAttendRequest reads in place
// (wire_request.h), and they answer with a ByteBuffer framed around the executor's output
// memory (wire_response.h), so no tensor byte is copied at the edge. Handlers never block on
// compute: they parse, translate and validate the request, hand a Job to the Scheduler and
// return; the executor thread that completes the job finishes the call (unary) or queues the
// response write (stream). Every outcome, refused or computed, is counted in metrics and
// failures are logged once with their reason. Status values are mapped to grpc::Status in one
// place (status_map.h).
//
// AttendStream: one response per request, an `error` field instead of outputs on failure (the
// stream continues); at most `stream_max_inflight` requests of a stream read and not yet
// answered (the next Read is not started until one is answered: back-pressure); one Write
// outstanding at a time, later responses queued in completion order (stream_call.h, shared with
// the Open Inference Protocol's ModelStreamInfer).
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
#include "shm.h"
#include "translate.h"

namespace hbsa::server {

struct ServiceOptions {
  TranslateLimits limits;           // message size and memory budget checks
  int stream_max_inflight = 8;      // per AttendStream
  v1::Capabilities capabilities;    // answer of GetCapabilities
};

using AttentionServiceBase = v1::Attention::WithRawCallbackMethod_Attend<
    v1::Attention::WithRawCallbackMethod_AttendStream<
        v1::Attention::WithCallbackMethod_GetCapabilities<
            v1::Attention::WithCallbackMethod_RegisterSharedMemory<
                v1::Attention::WithCallbackMethod_UnregisterSharedMemory<v1::Attention::Service>>>>>;

class AttentionService final : public AttentionServiceBase {
 public:
  // `shm` (may be null: shared memory refused) outlives the service.
  AttentionService(ServiceOptions options, Scheduler* scheduler, Metrics* metrics, ShmRegistry* shm);

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AttendStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetCapabilities(grpc::CallbackServerContext* context,
                                            const v1::GetCapabilitiesRequest* request,
                                            v1::Capabilities* response) override;
  grpc::ServerUnaryReactor* RegisterSharedMemory(grpc::CallbackServerContext* context,
                                                 const v1::RegisterSharedMemoryRequest* request,
                                                 v1::RegisterSharedMemoryResponse* response) override;
  grpc::ServerUnaryReactor* UnregisterSharedMemory(grpc::CallbackServerContext* context,
                                                   const v1::UnregisterSharedMemoryRequest* request,
                                                   v1::UnregisterSharedMemoryResponse* response) override;

  using DoneFn = std::function<void(const absl::Status&, Job&)>;
  // Used by the calls (service.cc) and by warm-up: translate, validate and submit one parsed
  // request. On OK the job is admitted and `done` will be called exactly once; on error
  // nothing was admitted and `done` is never called. `parse_seconds` is what parsing took.
  absl::Status Admit(const char* method, std::shared_ptr<const ParsedRequest> request,
                     std::shared_ptr<CallFlags> flags, std::optional<Clock::time_point> deadline,
                     Clock::time_point received, DoneFn done);

  // Counts and (on failure) logs one answered request.
  // `device`: the metrics label of the executor that ran it (Job::device), or kNoDevice.
  void RecordOutcome(const char* method, const std::string& request_id, const absl::Status& status,
                     absl::string_view device, Clock::time_point received, int64_t response_bytes);

  int stream_max_inflight() const { return options_.stream_max_inflight; }
  Metrics* metrics() { return metrics_; }

 private:
  const ServiceOptions options_;
  Scheduler* const scheduler_;
  Metrics* const metrics_;
  ShmRegistry* const shm_;
};

// Parses a received request in place (its slices are kept alive by the result).
absl::StatusOr<std::shared_ptr<ParsedRequest>> ParseReceived(const grpc::ByteBuffer& buffer);

// The response of a successful job, framed around its output (see wire_response.h).
grpc::ByteBuffer ResponseOf(const Job& job);

// The call's deadline on the steady clock, if it has one.
std::optional<Clock::time_point> DeadlineOf(const grpc::CallbackServerContext& context);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SERVICE_H_
