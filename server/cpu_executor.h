// server/cpu_executor.h: the executor for machines without a GPU (and --backend cpu).
//
// A pool of worker threads, each taking one job (or one batch of compatible jobs, merged into
// one launch: batch.h) at a time from the Scheduler and running hbsa::Run(kCpu) (or
// kReference) on it synchronously, with a per-launch thread count from CpuThreadsForRequest.
// Inputs are read in place when contiguous (one piece of the received message, or shared
// memory) and gathered into one heap buffer otherwise; outputs go to a heap block that the
// response points into (or straight into the caller's shared memory). Working memory is bounded by
// a budget (default 4 GiB): a worker waits for memory before starting a job that would exceed it
// (jobs larger than the whole budget are refused at admission by translation).
#ifndef HBSA_SERVER_CPU_EXECUTOR_H_
#define HBSA_SERVER_CPU_EXECUTOR_H_

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "executor.h"
#include "hbsa/attention.h"
#include "metrics.h"
#include "scheduler.h"

namespace hbsa::server {

struct CpuExecutorOptions {
  Backend backend = Backend::kCpu;  // kCpu or kReference
  int threads = 0;                  // workers and the most threads one request may use; 0 = hw
  int64_t memory_budget_bytes = 0;  // 0 = 4 GiB
  int test_delay_ms = 0;            // TEST ONLY: sleep per job before computing
  BatchPolicy batch;                // dynamic batching (off when batch.max_tokens is 0)
};

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(const CpuExecutorOptions& options, Scheduler* scheduler, Metrics* metrics);
  ~CpuExecutor() override;

  absl::Status Start() override;
  void Stop() override;
  std::string backend() const override;
  int device() const override { return -1; }
  int64_t memory_budget_bytes() const override { return budget_; }
  void Describe(v1::Capabilities*) const override {}

 private:
  void WorkerLoop(int index);
  void RunLaunch(Launch launch, int worker);

  const CpuExecutorOptions options_;
  const int threads_;
  const int64_t budget_;
  Scheduler* const scheduler_;
  Metrics* const metrics_;
  std::vector<std::thread> workers_;
  std::vector<prometheus::Counter*> worker_counters_;
  std::vector<prometheus::Counter*> worker_busy_;
  std::atomic<bool> stop_{false};
  std::atomic<int> running_{0};
  std::mutex memory_mu_;
  std::condition_variable memory_cv_;
  int64_t memory_used_ = 0;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_CPU_EXECUTOR_H_
