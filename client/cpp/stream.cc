// stream.cc: hbsa::client::AttendStream (hbsa/client.h), one AttendStream call driven by a gRPC
// client bidi reactor. Submits queue requests for writing (one write in flight at a time, as
// gRPC requires), answers are matched to requests by request_id, and the bound on requests in
// flight is a condition variable that Submit waits on.
//
// Invariant that keeps the reactor safe without holds: a read is outstanding from the start
// until the server ends the stream (OnReadDone(false)), and from then on nothing new is
// started; so OnDone, which gRPC runs after every started operation has completed, is the last
// callback, and ~AttendStream waits for it.
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "hbsa/client.h"

namespace hbsa::client {
namespace {

using Clock = std::chrono::steady_clock;

// The server refuses longer ids and does not echo them (server/request_id.h), so the answer
// could not be matched.
constexpr size_t kMaxRequestIdBytes = 256;

// What ParseResponse reads of a request (out's dtype and shape, whether the LSE was asked), kept
// while the request is in flight instead of the whole request with its tensor bytes.
v1::AttendRequest ShapeOf(const v1::AttendRequest& r) {
  v1::AttendRequest s;
  s.mutable_q()->set_dtype(r.q().dtype());
  *s.mutable_q()->mutable_shape() = r.q().shape();
  s.set_return_lse(r.return_lse());
  return s;
}

}  // namespace

class AttendStream::Reactor final
    : public grpc::ClientBidiReactor<v1::AttendRequest, v1::AttendResponse> {
 public:
  Reactor(v1::Attention::Stub* stub, const std::shared_ptr<grpc::CallCredentials>& token,
          const StreamOptions& options)
      : max_in_flight_(options.max_in_flight) {
    if (options.timeout.count() > 0) {
      ctx_.set_deadline(std::chrono::system_clock::now() + options.timeout);
    }
    ctx_.set_wait_for_ready(options.wait_for_ready);
    if (token != nullptr) ctx_.set_credentials(token);
    stub->async()->AttendStream(&ctx_, this);
    StartRead(&response_);
    StartCall();
  }

  absl::Status Submit(v1::AttendRequest request, Callback done, bool block) {
    if (request.request_id().size() > kMaxRequestIdBytes) {
      return absl::InvalidArgumentError(absl::StrCat("client: request_id must be at most ",
                                                     kMaxRequestIdBytes, " bytes; got ",
                                                     request.request_id().size()));
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (block) {
      space_.wait(lock, [this] {
        return !accepting_ || static_cast<int>(pending_.size()) < max_in_flight_;
      });
    }
    if (!accepting_) {
      // Once the server has ended the stream, its status comes with OnDone: wait for it.
      if (reads_over_) ended_.wait(lock, [this] { return final_; });
      return closed_;
    }
    if (static_cast<int>(pending_.size()) >= max_in_flight_) {
      return absl::ResourceExhaustedError(absl::StrCat("client: the stream has ", pending_.size(),
                                                       " requests in flight (max_in_flight)"));
    }
    if (request.request_id().empty()) {
      std::string id;
      do {
        id = absl::StrCat("stream-", ++assigned_ids_);
      } while (pending_.count(id) > 0);
      request.set_request_id(std::move(id));
    } else if (pending_.count(request.request_id()) > 0) {
      return absl::InvalidArgumentError(absl::StrCat("client: request_id \"", request.request_id(),
                                                     "\" is already in flight on this stream"));
    }
    Pending p;
    p.shape = ShapeOf(request);
    p.done = std::move(done);
    p.submitted = Clock::now();
    p.request_bytes = static_cast<int64_t>(request.ByteSizeLong());
    pending_.emplace(request.request_id(), std::move(p));
    writes_.push_back(std::move(request));
    if (writes_.size() == 1 && !write_failed_) StartWrite(&writes_.front());
    return absl::OkStatus();
  }

  absl::Status Finish() {
    std::unique_lock<std::mutex> lock(mu_);
    if (accepting_) {
      accepting_ = false;
      closed_ = absl::FailedPreconditionError("client: the stream is finished");
      space_.notify_all();
    }
    MaybeWritesDoneLocked();
    ended_.wait(lock, [this] { return done_; });
    return status_;
  }

  void Cancel() { ctx_.TryCancel(); }

  int in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(pending_.size());
  }

  // Ends the call if needed and waits for OnDone, after which gRPC touches nothing of ours.
  void Shutdown() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!done_) {
      lock.unlock();
      ctx_.TryCancel();
      lock.lock();
    }
    ended_.wait(lock, [this] { return done_; });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writes_.pop_front();
    if (!ok) {
      // The stream is broken; its status (and the failure of every pending request) comes
      // with OnDone. Drop the queued bytes.
      write_failed_ = true;
      writes_.clear();
      return;
    }
    if (!writes_.empty()) {
      StartWrite(&writes_.front());
      return;
    }
    MaybeWritesDoneLocked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the server ended the stream; OnDone follows with its status
      std::lock_guard<std::mutex> lock(mu_);
      reads_over_ = true;
      accepting_ = false;
      space_.notify_all();
      return;
    }
    Pending p;
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(response_.request_id());
      if (it != pending_.end()) {
        p = std::move(it->second);
        pending_.erase(it);
        found = true;
        space_.notify_all();
      } else {
        // Not ours to guess which request it answers: end the stream, start nothing more.
        protocol_error_ =
            absl::InternalError(absl::StrCat("client: AttendStream answered request_id \"",
                                             response_.request_id(), "\", which is not in flight"));
        reads_over_ = true;
        accepting_ = false;
        closed_ = protocol_error_;
        space_.notify_all();
      }
    }
    if (!found) {
      ctx_.TryCancel();  // OnDone follows
      return;
    }
    p.done(Answer(p, std::move(response_)));
    response_.Clear();
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& s) override {
    std::unordered_map<std::string, Pending> left;
    absl::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      left.swap(pending_);
      if (!protocol_error_.ok()) {
        status = protocol_error_;
      } else if (!s.ok()) {
        status = absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                              absl::StrCat("AttendStream: ", s.error_message()));
      } else if (!left.empty()) {
        status = absl::InternalError(
            absl::StrCat("client: AttendStream ended with ", left.size(), " requests unanswered"));
      }
      accepting_ = false;
      reads_over_ = true;
      closed_ =
          status.ok() ? absl::FailedPreconditionError("client: the stream is finished") : status;
      final_ = true;
      space_.notify_all();
      ended_.notify_all();
    }
    for (auto& [id, p] : left) p.done(status);
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    done_ = true;
    ended_.notify_all();
  }

 private:
  struct Pending {
    v1::AttendRequest shape;  // ShapeOf(request)
    Callback done;
    Clock::time_point submitted;
    int64_t request_bytes = 0;
  };

  absl::StatusOr<AttendResult> Answer(const Pending& p, v1::AttendResponse response) {
    if (response.has_error() && response.error().code() != 0) {
      return absl::Status(static_cast<absl::StatusCode>(response.error().code()),
                          absl::StrCat("AttendStream: ", response.error().message()));
    }
    absl::StatusOr<AttendResult> r = ParseResponse(p.shape, std::move(response));
    if (r.ok()) {
      r->client_seconds = std::chrono::duration<double>(Clock::now() - p.submitted).count();
      r->attempts = 1;
      r->request_bytes = p.request_bytes;
    }
    return r;
  }

  // Half-closes once submits are over and every queued request is written.
  void MaybeWritesDoneLocked() {
    if (accepting_ || writes_done_ || write_failed_ || reads_over_ || !writes_.empty()) return;
    writes_done_ = true;
    StartWritesDone();
  }

  const int max_in_flight_;
  grpc::ClientContext ctx_;
  v1::AttendResponse response_;  // target of the outstanding read

  mutable std::mutex mu_;
  std::condition_variable space_;  // a slot freed, or the stream stopped accepting
  std::condition_variable ended_;  // final_ or done_ became true
  std::unordered_map<std::string, Pending> pending_;  // by request_id: submitted, unanswered
  std::deque<v1::AttendRequest> writes_;              // front is being written
  int64_t assigned_ids_ = 0;
  bool accepting_ = true;  // Submit allowed (not finished, not ended)
  absl::Status closed_;    // what Submit returns once !accepting_
  bool write_failed_ = false;
  bool writes_done_ = false;  // StartWritesDone issued
  bool reads_over_ = false;   // OnReadDone(false) seen, or the stream cancelled: start nothing
  absl::Status protocol_error_;
  bool final_ = false;   // OnDone has set closed_ to the stream's end
  bool done_ = false;    // OnDone ran (and every callback with it)
  absl::Status status_;  // the stream's end status, valid once done_
};

absl::StatusOr<std::unique_ptr<AttendStream>> AttendStream::Open(
    v1::Attention::Stub* stub, std::shared_ptr<grpc::CallCredentials> token,
    const StreamOptions& options) {
  if (options.max_in_flight < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("client: max_in_flight must be >= 1; got ", options.max_in_flight));
  }
  std::unique_ptr<AttendStream> s(new AttendStream());
  s->reactor_ = std::make_unique<Reactor>(stub, token, options);
  return s;
}

AttendStream::~AttendStream() {
  if (reactor_ != nullptr) reactor_->Shutdown();
}

absl::Status AttendStream::Submit(v1::AttendRequest request, Callback done) {
  return reactor_->Submit(std::move(request), std::move(done), /*block=*/true);
}

absl::Status AttendStream::TrySubmit(v1::AttendRequest request, Callback done) {
  return reactor_->Submit(std::move(request), std::move(done), /*block=*/false);
}

std::future<absl::StatusOr<AttendResult>> AttendStream::Submit(v1::AttendRequest request) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<AttendResult>>>();
  std::future<absl::StatusOr<AttendResult>> future = promise->get_future();
  absl::Status s = reactor_->Submit(
      std::move(request),
      [promise](absl::StatusOr<AttendResult> r) { promise->set_value(std::move(r)); },
      /*block=*/true);
  if (!s.ok()) promise->set_value(std::move(s));
  return future;
}

absl::Status AttendStream::Finish() { return reactor_->Finish(); }

void AttendStream::Cancel() { reactor_->Cancel(); }

int AttendStream::in_flight() const { return reactor_->in_flight(); }

}  // namespace hbsa::client
