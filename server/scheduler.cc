// server/scheduler.cc: bounded FIFO admission and the single completion path (see header).
#include "scheduler.h"

#include <utility>
#include <vector>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "hbsa/attention.h"

namespace hbsa::server {
namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Scheduler::Scheduler(int queue_length, Metrics* metrics)
    : queue_length_(static_cast<size_t>(queue_length < 1 ? 1 : queue_length)), metrics_(metrics) {}

absl::Status Scheduler::Submit(std::unique_ptr<Job>* job) {
  std::unique_lock<std::mutex> lock(mu_);
  if (draining_ || stopped_) {
    return absl::UnavailableError("server is draining (shutting down); retry on another server");
  }
  if (queue_.size() >= queue_length_) {
    return absl::ResourceExhaustedError(
        "admission queue is full (--queue-length " + std::to_string(queue_length_) + "); retry later");
  }
  (*job)->admitted = Clock::now();
  ++inflight_;
  if (fast_lane_ && queue_.empty()) {
    PublishLocked();
    lock.unlock();
    (*job)->started = Clock::now();
    if (fast_lane_(job)) return absl::OkStatus();
    (*job)->started = Clock::time_point{};
    lock.lock();
  }
  queue_.push_back(std::move(*job));
  PublishLocked();
  work_cv_.notify_one();
  return absl::OkStatus();
}

void Scheduler::SetFastLane(FastLane lane) {
  std::lock_guard<std::mutex> lock(mu_);
  fast_lane_ = std::move(lane);
}

const char* Scheduler::JobStageName(JobStage stage) {
  switch (stage) {
    case JobStage::kQueued: return "queued";
    case JobStage::kStaging: return "staging";
    case JobStage::kRunning: return "running";
  }
  return "unknown";
}

absl::Status Scheduler::Runnable(const Job& job, JobStage stage) {
  const char* when = stage == JobStage::kQueued    ? "while the request waited in the queue; it was not computed"
                     : stage == JobStage::kStaging ? "while the request was being staged; it was not computed"
                                                   : "while the request ran; its computation was stopped or its "
                                                     "result dropped";
  // Deadline first: gRPC also cancels a call whose deadline passed, and that is a deadline.
  if (job.deadline.has_value() && Clock::now() >= *job.deadline) {
    return absl::DeadlineExceededError(absl::StrCat("the deadline passed ", when));
  }
  if (job.flags != nullptr && job.flags->cancelled.load()) {
    return absl::CancelledError(absl::StrCat("the client cancelled the call ", when));
  }
  return absl::OkStatus();
}

void Scheduler::Abandon(std::unique_ptr<Job> job, const absl::Status& why, JobStage stage,
                        absl::string_view device) {
  if (!job->warmup) {
    metrics_->RecordAbandoned(JobStageName(stage), static_cast<grpc::StatusCode>(why.code()));
  }
  job->abandoned_in = static_cast<int>(stage);
  Complete(std::move(job), why, device);
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
      Abandon(std::move(job), s, JobStage::kQueued);
      continue;
    }
    return job;
  }
}

std::vector<std::unique_ptr<Job>> Scheduler::TakeBatch(Clock::duration timeout,
                                                       const BatchPolicy& policy) {
  std::vector<std::unique_ptr<Job>> batch;
  if (policy.max_tokens <= 0) {
    if (std::unique_ptr<Job> job = Take(timeout); job != nullptr) batch.push_back(std::move(job));
    return batch;
  }
  const Clock::time_point until = Clock::now() + timeout;
  std::vector<std::unique_ptr<Job>> expired;
  {
    std::unique_lock<std::mutex> lock(mu_);
    while (batch.empty()) {
      work_cv_.wait_until(lock, until, [&] { return stopped_ || !queue_.empty(); });
      if (stopped_ || queue_.empty()) break;
      std::unique_ptr<Job> job = std::move(queue_.front());
      queue_.pop_front();
      job->started = Clock::now();
      if (!Runnable(*job).ok()) {
        expired.push_back(std::move(job));
        continue;
      }
      batch.push_back(std::move(job));
    }
    if (!batch.empty() && MayBatch(*batch.front()->request)) {
      int64_t q_tokens = batch.front()->request->args.total_q;
      int64_t k_tokens = batch.front()->request->args.total_k;
      GatherLocked(policy, &batch, &q_tokens, &k_tokens);
      // Wait for companions while the batch has room, up to max_delay after the oldest
      // admission and never past a member's deadline.
      Clock::time_point wait_end = batch.front()->admitted + policy.max_delay;
      for (const auto& j : batch) {
        if (j->deadline.has_value()) wait_end = std::min(wait_end, *j->deadline);
      }
      while (!stopped_ && q_tokens < policy.max_tokens && k_tokens < policy.max_tokens &&
             Clock::now() < wait_end) {
        const size_t before = queue_.size();
        work_cv_.wait_until(lock, wait_end, [&] { return stopped_ || queue_.size() != before; });
        GatherLocked(policy, &batch, &q_tokens, &k_tokens);
      }
    }
    PublishLocked();
  }
  for (auto& job : expired) {
    const absl::Status why = Runnable(*job);
    Abandon(std::move(job), why, JobStage::kQueued);
  }
  const Clock::time_point now = Clock::now();
  for (auto& job : batch) {
    if (job->started == Clock::time_point{}) job->started = now;
  }
  return batch;
}

void Scheduler::GatherLocked(const BatchPolicy& policy, std::vector<std::unique_ptr<Job>>* batch,
                             int64_t* q_tokens, int64_t* k_tokens) {
  const TranslatedRequest& head = *batch->front()->request;
  for (auto it = queue_.begin(); it != queue_.end();) {
    const TranslatedRequest& r = *(*it)->request;
    if (!Batchable(head, r) || *q_tokens + r.args.total_q > policy.max_tokens ||
        *k_tokens + r.args.total_k > policy.max_tokens || !Runnable(**it).ok()) {
      ++it;
      continue;
    }
    *q_tokens += r.args.total_q;
    *k_tokens += r.args.total_k;
    (*it)->started = Clock::now();
    batch->push_back(std::move(*it));
    it = queue_.erase(it);
  }
}

void Scheduler::Complete(std::unique_ptr<Job> job, const absl::Status& status,
                         absl::string_view device) {
  const Clock::time_point now = Clock::now();
  job->device = std::string(device);
  if (job->started == Clock::time_point{}) job->started = now;
  const double queue_s = Seconds(job->started - job->admitted);
  if (!job->warmup) metrics_->ObserveStage(Stage::kQueue, device, queue_s);
  if (status.ok()) {
    v1::StageTimings& t = job->timings;
    t.set_queue_seconds(queue_s);
    t.set_parse_seconds(job->parse_seconds);
    t.set_staging_seconds(job->staging_seconds);
    t.set_host_to_device_seconds(job->h2d_seconds);
    t.set_kernel_seconds(job->kernel_seconds);
    t.set_device_to_host_seconds(job->d2h_seconds);
    t.set_batch_size(job->result.batch_size);
    t.set_total_seconds(Seconds(now - job->received));
  }
  if (status.ok() && !job->warmup) {
    metrics_->ObserveStage(Stage::kParse, device, job->parse_seconds);
    metrics_->ObserveStage(Stage::kStaging, device, job->staging_seconds);
    if (job->h2d_seconds > 0) metrics_->ObserveStage(Stage::kHostToDevice, device, job->h2d_seconds);
    metrics_->ObserveStage(Stage::kKernel, device, job->kernel_seconds);
    if (job->d2h_seconds > 0) metrics_->ObserveStage(Stage::kDeviceToHost, device, job->d2h_seconds);
    const AttentionArgs& a = job->request->args;
    metrics_->AddWork(a.total_q, a.total_k, job->request->facts.flops);
    metrics_->ObserveBatchSize(job->result.batch_size);
  }
  if (!status.ok()) job->result = JobResult{};
  std::function<void(const absl::Status&, Job&)> done = std::move(job->done);
  done(status, *job);
  const int abandoned_in = job->abandoned_in;
  job.reset();  // release the request's buffers (the response keeps the output block)
  std::lock_guard<std::mutex> lock(mu_);
  --inflight_;
  if (status.ok()) {
    ++outcomes_.ok;
  } else if (abandoned_in >= 0) {
    ++outcomes_.abandoned[abandoned_in];
  } else {
    ++outcomes_.failed;
  }
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

int64_t Scheduler::Stop(const absl::Status& status) {
  std::deque<std::unique_ptr<Job>> failed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    stopped_ = true;
    failed.swap(queue_);
    PublishLocked();
  }
  work_cv_.notify_all();
  for (auto& job : failed) Complete(std::move(job), status, kNoDevice);
  return static_cast<int64_t>(failed.size());
}

int64_t Scheduler::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

Scheduler::Outcomes Scheduler::outcomes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outcomes_;
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
