// server/scheduler.cc: bounded FIFO admission and the single completion path (see header).
#include "scheduler.h"

#include <utility>
#include <vector>

#include "hbsa/attention.h"

namespace hbsa::server {
namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Scheduler::Scheduler(int queue_length, Metrics* metrics)
    : queue_length_(static_cast<size_t>(queue_length < 1 ? 1 : queue_length)), metrics_(metrics) {}

absl::Status Scheduler::Submit(std::unique_ptr<Job>* job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_ || stopped_) {
    return absl::UnavailableError("server is draining (shutting down); retry on another server");
  }
  if (queue_.size() >= queue_length_) {
    return absl::ResourceExhaustedError(
        "admission queue is full (--queue-length " + std::to_string(queue_length_) + "); retry later");
  }
  (*job)->admitted = Clock::now();
  queue_.push_back(std::move(*job));
  ++inflight_;
  PublishLocked();
  work_cv_.notify_one();
  return absl::OkStatus();
}

absl::Status Scheduler::Runnable(const Job& job) {
  // Deadline first: gRPC also cancels a call whose deadline passed, and that is a deadline.
  if (job.deadline.has_value() && Clock::now() >= *job.deadline) {
    return absl::DeadlineExceededError("the deadline passed while the request waited in the queue");
  }
  if (job.flags != nullptr && job.flags->cancelled.load()) {
    return absl::CancelledError("the client cancelled the call before it ran");
  }
  return absl::OkStatus();
}

std::unique_ptr<Job> Scheduler::Take(Clock::duration timeout) {
  const Clock::time_point until = Clock::now() + timeout;
  while (true) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait_until(lock, until, [&] { return stopped_ || !queue_.empty(); });
      if (stopped_ || queue_.empty()) return nullptr;
      job = std::move(queue_.front());
      queue_.pop_front();
      PublishLocked();
    }
    job->started = Clock::now();
    if (absl::Status s = Runnable(*job); !s.ok()) {
      Complete(std::move(job), s);
      continue;
    }
    return job;
  }
}

void Scheduler::Complete(std::unique_ptr<Job> job, const absl::Status& status) {
  const Clock::time_point now = Clock::now();
  if (job->started == Clock::time_point{}) job->started = now;
  const double queue_s = Seconds(job->started - job->admitted);
  if (!job->warmup) metrics_->ObserveStage(Stage::kQueue, queue_s);
  if (status.ok()) {
    v1::StageTimings* t = job->response->mutable_timings();
    t->set_queue_seconds(queue_s);
    t->set_host_to_device_seconds(job->h2d_seconds);
    t->set_kernel_seconds(job->kernel_seconds);
    t->set_device_to_host_seconds(job->d2h_seconds);
    t->set_total_seconds(Seconds(now - job->received));
  }
  if (status.ok() && !job->warmup) {
    if (job->h2d_seconds > 0) metrics_->ObserveStage(Stage::kHostToDevice, job->h2d_seconds);
    metrics_->ObserveStage(Stage::kKernel, job->kernel_seconds);
    if (job->d2h_seconds > 0) metrics_->ObserveStage(Stage::kDeviceToHost, job->d2h_seconds);
    const AttentionArgs& a = job->request->args;
    metrics_->AddWork(a.total_q, a.total_k,
                      4.0 * a.head_dim * static_cast<double>(AllowedPairs(a)));
  }
  if (!status.ok()) {
    job->response->clear_out();
    job->response->clear_lse();
  }
  std::function<void(const absl::Status&)> done = std::move(job->done);
  job.reset();  // release buffers before the call is finished
  done(status);
  std::lock_guard<std::mutex> lock(mu_);
  --inflight_;
  PublishLocked();
  if (inflight_ == 0) idle_cv_.notify_all();
}

void Scheduler::StartDrain() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
}

bool Scheduler::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
}

bool Scheduler::WaitIdle(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_until(lock, deadline, [&] { return inflight_ == 0; });
}

void Scheduler::Stop(const absl::Status& status) {
  std::deque<std::unique_ptr<Job>> failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    stopped_ = true;
    failed.swap(queue_);
    PublishLocked();
  }
  work_cv_.notify_all();
  for (auto& job : failed) Complete(std::move(job), status);
}

int64_t Scheduler::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

int64_t Scheduler::inflight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inflight_;
}

void Scheduler::PublishLocked() {
  metrics_->SetQueueDepth(static_cast<int64_t>(queue_.size()));
  metrics_->SetInflight(inflight_);
}

}  // namespace hbsa::server
