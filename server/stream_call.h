// server/stream_call.h: one bidirectional stream of attention requests, for both protocols
// (hbsa.v1 AttendStream, the Open Inference Protocol's ModelStreamInfer).
//
// Each request read is parsed by the Codec, admitted through AttentionService::Admit and
// answered by exactly one response: the Codec's success framing, or its error message while the
// stream goes on. At most `stream_max_inflight` requests of a stream are read and not yet
// answered (the next Read is not started until one is answered: back-pressure); one Write is
// outstanding at a time, later responses queued in completion order. State is guarded by mu_;
// gRPC callbacks and job completions arrive on different threads.
//
// A Codec provides:
//   struct Context;                 what one response needs to know about its request (its id)
//   static constexpr const char* kMethod;   metrics and log label
//   static absl::StatusOr<std::shared_ptr<ParsedRequest>> Parse(const grpc::ByteBuffer&, Context*);
//   static grpc::ByteBuffer Success(const Job&, const Context&);
//   static grpc::ByteBuffer Failure(const absl::Status&, const Context&);
//   static std::string Id(const Context&);  the request id for logs
#ifndef HBSA_SERVER_STREAM_CALL_H_
#define HBSA_SERVER_STREAM_CALL_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "service.h"

namespace hbsa::server {

template <typename Codec>
class StreamCall final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamCall(AttentionService* service, grpc::CallbackServerContext* context)
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
    const Clock::time_point received = Clock::now();
    grpc::ByteBuffer bytes;
    {
      std::lock_guard<std::mutex> lock(mu_);
      bytes.Swap(&reading_);
      read_pending_ = false;
      ++outstanding_;
    }
    auto context = std::make_shared<typename Codec::Context>();
    absl::StatusOr<std::shared_ptr<ParsedRequest>> parsed = Codec::Parse(bytes, context.get());
    bytes.Clear();  // the parsed request holds its own references to the bytes
    if (!parsed.ok()) {
      Answer(*context, parsed.status(), nullptr, received);
    } else {
      absl::Status s = service_->Admit(Codec::kMethod, std::move(*parsed), flags_, deadline_,
                                       received, [this, context](const absl::Status& st, Job& job) {
                                         Answer(*context, st, &job, job.received);
                                       });
      if (!s.ok()) Answer(*context, s, nullptr, received);
    }
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
    if (!writes_.empty()) StartWrite(&writes_.front());
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override { flags_->cancelled.store(true); }
  void OnDone() override { delete this; }

 private:
  // Queues the response of one streamed request: outputs, or the error when it failed.
  void Answer(const typename Codec::Context& context, const absl::Status& status, const Job* job,
              Clock::time_point received) {
    grpc::ByteBuffer out;
    const std::string device = job != nullptr ? job->device : std::string(kNoDevice);
    if (status.ok()) {
      const Clock::time_point t0 = Clock::now();
      out = Codec::Success(*job, context);
      service_->metrics()->ObserveStage(Stage::kResponse, device,
                                        std::chrono::duration<double>(Clock::now() - t0).count());
    } else {
      out = Codec::Failure(status, context);
    }
    service_->RecordOutcome(Codec::kMethod, Codec::Id(context), status, device, received,
                            static_cast<int64_t>(out.Length()));
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_) {
      --outstanding_;
      MaybeFinishLocked();
      return;
    }
    writes_.push_back(std::move(out));
    if (writes_.size() == 1) StartWrite(&writes_.front());
  }

  void StartReadLocked() {
    reading_.Clear();
    read_pending_ = true;
    StartRead(&reading_);
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
  grpc::ByteBuffer reading_;             // target of the pending Read
  std::deque<grpc::ByteBuffer> writes_;  // front is being written
  int outstanding_ = 0;  // read and not yet written (admitted, refused or queued for writing)
  bool read_pending_ = false;
  bool reads_done_ = false;  // the client half-closed (or the call ended)
  bool broken_ = false;      // a write failed
  bool finished_ = false;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_STREAM_CALL_H_
