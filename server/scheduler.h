// server/scheduler.h: the bounded FIFO admission queue between the RPC edge and executors.
//
// The edge Submits a validated Job; a full queue refuses it with RESOURCE_EXHAUSTED and a
// draining server with UNAVAILABLE, so nothing admitted is ever dropped silently. Executors
// Take jobs in arrival order; Take completes (and skips) jobs whose client cancelled or whose
// deadline passed while they waited, so no compute is spent on them. Complete is the single
// exit of every admitted job: it fills the job's timings, records stage and work metrics
// and calls the job's `done`. Thread-safe.
#ifndef HBSA_SERVER_SCHEDULER_H_
#define HBSA_SERVER_SCHEDULER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "batch.h"
#include "job.h"
#include "metrics.h"

namespace hbsa::server {

class Scheduler {
 public:
  // `queue_length`: admitted jobs that may wait (>= 1). `metrics` outlives the scheduler.
  Scheduler(int queue_length, Metrics* metrics);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Admits *job (moving it out) or refuses it, leaving *job untouched: UNAVAILABLE while
  // draining or stopped, RESOURCE_EXHAUSTED when `queue_length` jobs already wait.
  absl::Status Submit(std::unique_ptr<Job>* job);

  // An executor's fast lane: offered each admitted job while nothing waits in the queue; it
  // starts the job on the calling (gRPC) thread when that needs no waiting at all (a small
  // request, a free stream, memory at hand: only asynchronous work is issued) and returns
  // true, or leaves *job untouched and returns false, and the job is queued as usual. It saves
  // the hand-off to an executor thread, which dominates the latency of small requests.
  using FastLane = std::function<bool(std::unique_ptr<Job>* job)>;
  void SetFastLane(FastLane lane);

  // The oldest runnable job, waiting up to `timeout` for one; nullptr on timeout or once
  // stopped. Marks the job started.
  std::unique_ptr<Job> Take(Clock::duration timeout);

  // The oldest runnable job and, under `policy`, the queued jobs that may share its launch
  // (Batchable), in arrival order, with at most policy.max_tokens query and key tokens in all.
  // When the batch is not full it waits for more up to policy.max_delay after the oldest job's
  // admission, never past a member's deadline. Empty on timeout or once stopped.
  std::vector<std::unique_ptr<Job>> TakeBatch(Clock::duration timeout, const BatchPolicy& policy);

  // Where an admitted job can be when its client cancels or its deadline passes.
  enum class JobStage { kQueued, kStaging, kRunning };
  static const char* JobStageName(JobStage stage);  // "queued", "staging", "running"

  // OK when `job` may still run (or its result still be sent); CANCELLED or DEADLINE_EXCEEDED
  // otherwise, the message saying in which stage it was stopped. Executors ask again before
  // staging, before launch and after the compute (a result nobody waits for is dropped).
  static absl::Status Runnable(const Job& job, JobStage stage = JobStage::kQueued);

  // Complete(job, why) for a job found not Runnable in `stage`, counted in
  // hbsa_abandoned_requests_total{stage, reason} (not as OK). `device` as for Complete.
  void Abandon(std::unique_ptr<Job> job, const absl::Status& why, JobStage stage,
               absl::string_view device = kNoDevice);

  // Finishes an admitted job with `status` (see the file comment). Call exactly once per job.
  // `device`: the completing executor's metrics label ("cpu", the GPU ordinal), kNoDevice for
  // jobs that never reached one.
  void Complete(std::unique_ptr<Job> job, const absl::Status& status, absl::string_view device);

  // Refuse new work from now on (UNAVAILABLE); queued and running jobs continue.
  void StartDrain();
  bool draining() const;
  // Waits until no admitted job is unfinished or `deadline` passes; true when idle.
  bool WaitIdle(Clock::time_point deadline);
  // Refuses new work, fails every queued job with `status`, and wakes Take callers (nullptr).
  // Returns how many queued jobs it failed.
  int64_t Stop(const absl::Status& status);

  int64_t queue_depth() const;
  int64_t inflight() const;  // admitted and not completed (queued + running)
  // How the admitted jobs (warm-up included) ended so far: OK, Abandoned in each stage
  // (indexed by JobStage), or failed otherwise (bad launch, shut down, device lost).
  struct Outcomes {
    int64_t ok = 0;
    int64_t abandoned[3] = {0, 0, 0};
    int64_t failed = 0;
  };
  Outcomes outcomes() const;

 private:
  void PublishLocked();
  // Moves queued jobs compatible with batch->front() into *batch while they fit the budget.
  void GatherLocked(const BatchPolicy& policy, std::vector<std::unique_ptr<Job>>* batch,
                    int64_t* q_tokens, int64_t* k_tokens);

  const size_t queue_length_;
  Metrics* const metrics_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // a job arrived or the scheduler stopped
  std::condition_variable idle_cv_;  // inflight_ dropped to 0
  std::deque<std::unique_ptr<Job>> queue_;
  int64_t inflight_ = 0;
  Outcomes outcomes_;
  bool draining_ = false;
  bool stopped_ = false;
  FastLane fast_lane_;  // set once before serving
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SCHEDULER_H_
