// server/service.cc: the unary and streaming calls of hbsa.v1.Attention (see service.h).
#include "service.h"

#include <deque>
#include <mutex>
#include <utility>

#include <spdlog/spdlog.h>

#include "request_id.h"
#include "status_map.h"

namespace hbsa::server {
namespace {

// One Attend call: admitted in the constructor, finished by whoever completes the job.
class AttendCall final : public grpc::ServerUnaryReactor {
 public:
  AttendCall(AttentionService* service, grpc::CallbackServerContext* context,
             const v1::AttendRequest* request, v1::AttendResponse* response)
      : service_(service), request_(request), response_(response),
        flags_(std::make_shared<CallFlags>()) {
    const Clock::time_point received = Clock::now();
    absl::Status s = service->Admit("Attend", *request, response, flags_, DeadlineOf(*context),
                                    received, [this, received](const absl::Status& st) {
                                      Done(st, received);
                                    });
    // On success the call may already be finished and deleted here: touch nothing.
    if (!s.ok()) Done(s, received);
  }

  void OnCancel() override { flags_->cancelled.store(true); }
  void OnDone() override { delete this; }

 private:
  void Done(const absl::Status& status, Clock::time_point received) {
    response_->set_request_id(EchoedRequestId(request_->request_id()));
    service_->RecordOutcome("Attend", request_->request_id(), status, received,
                            status.ok() ? static_cast<int64_t>(response_->ByteSizeLong()) : 0);
    Finish(ToGrpcStatus(status));
  }

  AttentionService* const service_;
  const v1::AttendRequest* const request_;
  v1::AttendResponse* const response_;
  std::shared_ptr<CallFlags> flags_;
};

// One AttendStream call. State is guarded by mu_; gRPC callbacks and job completions arrive
// on different threads.
class AttendStreamCall final
    : public grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse> {
 public:
  AttendStreamCall(AttentionService* service, grpc::CallbackServerContext* context)
      : service_(service), deadline_(DeadlineOf(*context)), flags_(std::make_shared<CallFlags>()) {
    std::lock_guard<std::mutex> lock(mu_);
    StartReadLocked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard<std::mutex> lock(mu_);
      read_pending_ = false;
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    // An entry lives until its response is written (or dropped).
    auto* entry = new Entry{std::move(reading_), std::make_unique<v1::AttendResponse>(), Clock::now()};
    {
      std::lock_guard<std::mutex> lock(mu_);
      read_pending_ = false;
      ++outstanding_;
    }
    absl::Status s = service_->Admit("AttendStream", *entry->request, entry->response.get(), flags_,
                                     deadline_, entry->received,
                                     [this, entry](const absl::Status& st) { JobDone(entry, st); });
    if (!s.ok()) JobDone(entry, s);
    std::lock_guard<std::mutex> lock(mu_);
    MaybeReadLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writes_.pop_front();
    --outstanding_;
    if (!ok) {
      broken_ = true;  // the client is gone; drop what is queued
      outstanding_ -= static_cast<int>(writes_.size());
      writes_.clear();
    }
    if (!writes_.empty()) StartWrite(writes_.front().get());
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override { flags_->cancelled.store(true); }
  void OnDone() override { delete this; }

 private:
  struct Entry {
    std::unique_ptr<v1::AttendRequest> request;
    std::unique_ptr<v1::AttendResponse> response;
    Clock::time_point received;
  };

  void JobDone(Entry* entry, const absl::Status& status) {
    std::unique_ptr<Entry> owned(entry);
    v1::AttendResponse* r = owned->response.get();
    r->set_request_id(EchoedRequestId(owned->request->request_id()));
    if (!status.ok()) {
      r->clear_out();
      r->clear_lse();
      r->mutable_error()->set_code(static_cast<int>(ToGrpcStatus(status).error_code()));
      r->mutable_error()->set_message(std::string(status.message()));
    }
    service_->RecordOutcome("AttendStream", owned->request->request_id(), status, owned->received,
                            static_cast<int64_t>(r->ByteSizeLong()));
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_) {
      --outstanding_;
      MaybeFinishLocked();
      return;
    }
    writes_.push_back(std::move(owned->response));
    if (writes_.size() == 1) StartWrite(writes_.front().get());
  }

  void StartReadLocked() {
    reading_ = std::make_unique<v1::AttendRequest>();
    read_pending_ = true;
    StartRead(reading_.get());
  }

  // Starts the next read unless one is pending, the client closed, or the stream is at its
  // in-flight limit (back-pressure: the client's writes wait in flow control).
  void MaybeReadLocked() {
    if (read_pending_ || reads_done_ || broken_ || finished_) return;
    if (outstanding_ >= service_->stream_max_inflight()) return;
    StartReadLocked();
  }

  void MaybeFinishLocked() {
    if (finished_ || read_pending_ || outstanding_ > 0 || !(reads_done_ || broken_)) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  AttentionService* const service_;
  const std::optional<Clock::time_point> deadline_;
  std::shared_ptr<CallFlags> flags_;
  std::mutex mu_;
  std::unique_ptr<v1::AttendRequest> reading_;            // target of the pending Read
  std::deque<std::unique_ptr<v1::AttendResponse>> writes_; // front is being written
  int outstanding_ = 0;  // read and not yet written (admitted, refused or queued for writing)
  bool read_pending_ = false;
  bool reads_done_ = false;  // the client half-closed (or the call ended)
  bool broken_ = false;      // a write failed
  bool finished_ = false;
};

}  // namespace

std::optional<Clock::time_point> DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto d = context.deadline();
  if (d == std::chrono::system_clock::time_point::max()) return std::nullopt;
  const auto left = d - std::chrono::system_clock::now();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

AttentionService::AttentionService(ServiceOptions options, Scheduler* scheduler, Metrics* metrics)
    : options_(std::move(options)), scheduler_(scheduler), metrics_(metrics) {}

grpc::ServerUnaryReactor* AttentionService::Attend(grpc::CallbackServerContext* context,
                                                   const v1::AttendRequest* request,
                                                   v1::AttendResponse* response) {
  return new AttendCall(this, context, request, response);
}

grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse>* AttentionService::AttendStream(
    grpc::CallbackServerContext* context) {
  return new AttendStreamCall(this, context);
}

grpc::ServerUnaryReactor* AttentionService::GetCapabilities(grpc::CallbackServerContext* context,
                                                            const v1::GetCapabilitiesRequest*,
                                                            v1::Capabilities* response) {
  const Clock::time_point received = Clock::now();
  *response = options_.capabilities;
  RecordOutcome("GetCapabilities", "", absl::OkStatus(), received,
                static_cast<int64_t>(response->ByteSizeLong()));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::Status AttentionService::Admit(const char* method, const v1::AttendRequest& request,
                                     v1::AttendResponse* response, std::shared_ptr<CallFlags> flags,
                                     std::optional<Clock::time_point> deadline,
                                     Clock::time_point received,
                                     std::function<void(const absl::Status&)> done) {
  metrics_->AddReceivedBytes(static_cast<int64_t>(request.ByteSizeLong()));
  if (scheduler_->draining()) {
    return absl::UnavailableError("server is draining (shutting down); retry on another server");
  }
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> translated = Translate(request, options_.limits);
  if (!translated.ok()) return translated.status();
  auto job = std::make_unique<Job>();
  job->method = method;
  job->request_id = request.request_id();
  job->request = std::move(*translated);
  job->response = response;
  job->flags = std::move(flags);
  job->deadline = deadline;
  job->received = received;
  job->done = std::move(done);
  return scheduler_->Submit(&job);
}

void AttentionService::RecordOutcome(const char* method, const std::string& request_id,
                                     const absl::Status& status, Clock::time_point received,
                                     int64_t response_bytes) {
  const grpc::StatusCode code = ToGrpcStatus(status).error_code();
  const double seconds = std::chrono::duration<double>(Clock::now() - received).count();
  metrics_->RecordRequest(method, code, seconds);
  metrics_->AddSentBytes(response_bytes);
  if (!status.ok()) {
    spdlog::warn("{} request_id=\"{}\" failed: {}: {}", method, LogSafeRequestId(request_id),
                 StatusCodeName(code), std::string(status.message()));
  }
}

}  // namespace hbsa::server
