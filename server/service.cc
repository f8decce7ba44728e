// server/service.cc: the unary and streaming calls of hbsa.v1.Attention (see service.h).
#include "service.h"

#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "request_id.h"
#include "status_map.h"
#include "stream_call.h"

namespace hbsa::server {
namespace {

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One Attend call: admitted in the constructor, finished by whoever completes the job.
class AttendCall final : public grpc::ServerUnaryReactor {
 public:
  AttendCall(AttentionService* service, grpc::CallbackServerContext* context,
             const grpc::ByteBuffer* request, grpc::ByteBuffer* response)
      : service_(service), response_(response), flags_(std::make_shared<CallFlags>()) {
    const Clock::time_point received = Clock::now();
    absl::StatusOr<std::shared_ptr<ParsedRequest>> parsed = ParseReceived(*request);
    if (!parsed.ok()) {
      Fail(parsed.status(), received, kNoDevice);
      return;
    }
    request_id_ = (*parsed)->meta.request_id();
    absl::Status s = service->Admit("Attend", std::move(*parsed), flags_, DeadlineOf(*context),
                                    received, [this](const absl::Status& st, Job& job) { Done(st, job); });
    // On success the call may already be finished and deleted here: touch nothing.
    if (!s.ok()) Fail(s, received, kNoDevice);
  }

  void OnCancel() override { flags_->cancelled.store(true); }
  void OnDone() override { delete this; }

 private:
  void Done(const absl::Status& status, Job& job) {
    if (!status.ok()) {
      Fail(status, job.received, job.device);
      return;
    }
    const Clock::time_point t0 = Clock::now();
    *response_ = ResponseOf(job);
    if (!job.warmup) service_->metrics()->ObserveStage(Stage::kResponse, job.device, Since(t0));
    service_->RecordOutcome("Attend", request_id_, status, job.device, job.received,
                            static_cast<int64_t>(response_->Length()));
    Finish(grpc::Status::OK);
  }

  void Fail(const absl::Status& status, Clock::time_point received, const std::string& device) {
    service_->RecordOutcome("Attend", request_id_, status, device, received, 0);
    Finish(ToGrpcStatus(status));
  }

  AttentionService* const service_;
  grpc::ByteBuffer* const response_;
  std::shared_ptr<CallFlags> flags_;
  std::string request_id_;
};

// AttendStream's requests and responses (stream_call.h): AttendResponse with `error` on failure.
struct AttendStreamCodec {
  struct Context {
    std::string request_id;
  };
  static constexpr const char* kMethod = "AttendStream";
  static absl::StatusOr<std::shared_ptr<ParsedRequest>> Parse(const grpc::ByteBuffer& bytes,
                                                              Context* context) {
    absl::StatusOr<std::shared_ptr<ParsedRequest>> parsed = ParseReceived(bytes);
    if (parsed.ok()) context->request_id = (*parsed)->meta.request_id();
    return parsed;
  }
  static grpc::ByteBuffer Success(const Job& job, const Context&) { return ResponseOf(job); }
  static grpc::ByteBuffer Failure(const absl::Status& status, const Context& context) {
    v1::AttendResponse r;
    r.set_request_id(EchoedRequestId(context.request_id));
    r.mutable_error()->set_code(static_cast<int>(ToGrpcStatus(status).error_code()));
    r.mutable_error()->set_message(std::string(status.message()));
    return SerializeSmall(r);
  }
  static std::string Id(const Context& context) { return context.request_id; }
};

}  // namespace

absl::StatusOr<std::shared_ptr<ParsedRequest>> ParseReceived(const grpc::ByteBuffer& buffer) {
  auto slices = std::make_shared<std::vector<grpc::Slice>>();
  if (!buffer.Dump(slices.get()).ok()) {
    return absl::InvalidArgumentError("request is not a valid hbsa.v1.AttendRequest: unreadable bytes");
  }
  std::vector<Fragment> fragments;
  fragments.reserve(slices->size());
  for (const grpc::Slice& s : *slices) {
    if (s.size() > 0) fragments.push_back({reinterpret_cast<const char*>(s.begin()), s.size()});
  }
  auto parsed = std::make_shared<ParsedRequest>();
  if (absl::Status s = ParseAttendRequest(fragments, parsed.get()); !s.ok()) return s;
  parsed->keepalive = std::move(slices);
  return parsed;
}

grpc::ByteBuffer ResponseOf(const Job& job) {
  const TranslatedRequest& r = *job.request;
  const AttentionArgs& a = r.args;
  ResponseParts p;
  p.request_id = r.request_id;
  p.dtype = r.wire_dtype;
  p.out_shape[0] = a.total_q;
  p.out_shape[1] = a.num_heads_q;
  p.out_shape[2] = a.head_dim;
  p.out = job.result.out;
  p.out_bytes = job.result.out_bytes;
  p.has_lse = r.return_lse;
  p.lse_shape[0] = a.total_q;
  p.lse_shape[1] = a.num_heads_q;
  p.lse = job.result.lse;
  p.lse_bytes = job.result.lse_bytes;
  p.owner = job.result.block;
  p.timings = job.timings;
  p.backend = job.result.backend;
  p.device = job.result.device;
  p.kernel = job.result.kernel;
  return BuildAttendResponse(p);
}

std::optional<Clock::time_point> DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto d = context.deadline();
  if (d == std::chrono::system_clock::time_point::max()) return std::nullopt;
  const auto left = d - std::chrono::system_clock::now();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

AttentionService::AttentionService(ServiceOptions options, Scheduler* scheduler, Metrics* metrics,
                                   ShmRegistry* shm)
    : options_(std::move(options)), scheduler_(scheduler), metrics_(metrics), shm_(shm) {}

grpc::ServerUnaryReactor* AttentionService::Attend(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request,
                                                   grpc::ByteBuffer* response) {
  return new AttendCall(this, context, request, response);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AttentionService::AttendStream(
    grpc::CallbackServerContext* context) {
  return new StreamCall<AttendStreamCodec>(this, context);
}

grpc::ServerUnaryReactor* AttentionService::GetCapabilities(grpc::CallbackServerContext* context,
                                                            const v1::GetCapabilitiesRequest*,
                                                            v1::Capabilities* response) {
  const Clock::time_point received = Clock::now();
  *response = options_.capabilities;
  RecordOutcome("GetCapabilities", "", absl::OkStatus(), kNoDevice, received,
                static_cast<int64_t>(response->ByteSizeLong()));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AttentionService::RegisterSharedMemory(
    grpc::CallbackServerContext* context, const v1::RegisterSharedMemoryRequest* request,
    v1::RegisterSharedMemoryResponse*) {
  const Clock::time_point received = Clock::now();
  absl::Status s = shm_ != nullptr ? shm_->Register(*request)
                                   : absl::UnimplementedError("shared memory is not available");
  RecordOutcome("RegisterSharedMemory", request->name(), s, kNoDevice, received, 0);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* AttentionService::UnregisterSharedMemory(
    grpc::CallbackServerContext* context, const v1::UnregisterSharedMemoryRequest* request,
    v1::UnregisterSharedMemoryResponse*) {
  const Clock::time_point received = Clock::now();
  absl::Status s = shm_ != nullptr ? shm_->Unregister(request->name())
                                   : absl::UnimplementedError("shared memory is not available");
  RecordOutcome("UnregisterSharedMemory", request->name(), s, kNoDevice, received, 0);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

absl::Status AttentionService::Admit(const char* method, std::shared_ptr<const ParsedRequest> request,
                                     std::shared_ptr<CallFlags> flags,
                                     std::optional<Clock::time_point> deadline,
                                     Clock::time_point received, DoneFn done) {
  metrics_->AddReceivedBytes(request->wire_bytes);
  if (scheduler_->draining()) {
    return absl::UnavailableError("server is draining (shutting down); retry on another server");
  }
  std::string request_id = request->meta.request_id();
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> translated =
      Translate(std::move(request), options_.limits, shm_);
  if (!translated.ok()) return translated.status();
  auto job = std::make_unique<Job>();
  job->method = method;
  job->request_id = std::move(request_id);
  job->request = std::move(*translated);
  job->flags = std::move(flags);
  job->deadline = deadline;
  job->received = received;
  job->parse_seconds = Since(received);
  job->done = std::move(done);
  return scheduler_->Submit(&job);
}

void AttentionService::RecordOutcome(const char* method, const std::string& request_id,
                                     const absl::Status& status, absl::string_view device,
                                     Clock::time_point received, int64_t response_bytes) {
  const grpc::StatusCode code = ToGrpcStatus(status).error_code();
  const double seconds = Since(received);
  metrics_->RecordRequest(method, code, device, seconds);
  metrics_->AddSentBytes(response_bytes);
  if (!status.ok()) {
    spdlog::warn("{} request_id=\"{}\" failed: {}: {}", method, LogSafeRequestId(request_id),
                 StatusCodeName(code), std::string(status.message()));
  }
}

}  // namespace hbsa::server
