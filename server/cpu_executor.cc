// server/cpu_executor.cc: worker threads running hbsa::Run on the CPU (see cpu_executor.h).
#include "cpu_executor.h"

#include <algorithm>
#include <chrono>

#include "heuristics.h"

namespace hbsa::server {
namespace {

constexpr int64_t kDefaultCpuBudget = int64_t{4} << 30;

}  // namespace

CpuExecutor::CpuExecutor(const CpuExecutorOptions& options, Scheduler* scheduler, Metrics* metrics)
    : options_(options),
      threads_(options.threads > 0 ? options.threads
                                   : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))),
      budget_(options.memory_budget_bytes > 0 ? options.memory_budget_bytes : kDefaultCpuBudget),
      scheduler_(scheduler),
      metrics_(metrics) {}

CpuExecutor::~CpuExecutor() { Stop(); }

std::string CpuExecutor::backend() const { return std::string(BackendName(options_.backend)); }

absl::Status CpuExecutor::Start() {
  metrics_->SetDeviceMemory("cpu", 0, budget_);
  for (int i = 0; i < threads_; ++i) worker_counters_.push_back(metrics_->StreamCounter("cpu", i));
  for (int i = 0; i < threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
  return absl::OkStatus();
}

void CpuExecutor::Stop() {
  stop_.store(true);
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

void CpuExecutor::WorkerLoop(int index) {
  while (!stop_.load()) {
    std::unique_ptr<Job> job = scheduler_->Take(std::chrono::milliseconds(50));
    if (job == nullptr) continue;
    if (!job->warmup) metrics_->IncrementStream(worker_counters_[static_cast<size_t>(index)]);
    RunJob(std::move(job));
  }
}

void CpuExecutor::RunJob(std::unique_ptr<Job> job) {
  TranslatedRequest* req = job->request.get();
  const int active = running_.fetch_add(1) + 1 + static_cast<int>(scheduler_->queue_depth());
  const int threads = CpuThreadsForRequest(DenseFlopsUpperBound(req->args), threads_, active);
  const int64_t need = std::min(req->working_bytes, budget_);
  {
    std::unique_lock<std::mutex> lock(memory_mu_);
    memory_cv_.wait(lock, [&] { return memory_used_ + need <= budget_; });
    memory_used_ += need;
    metrics_->SetDeviceMemory("cpu", memory_used_, budget_);
  }
  if (options_.test_delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.test_delay_ms));
  }
  PrepareOutputs(job->response, req);
  const Clock::time_point t0 = Clock::now();
  RunOptions run_options;
  run_options.num_threads = threads;
  absl::Status status = Run(options_.backend, req->args, run_options);
  job->kernel_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  {
    std::lock_guard<std::mutex> lock(memory_mu_);
    memory_used_ -= need;
    metrics_->SetDeviceMemory("cpu", memory_used_, budget_);
  }
  memory_cv_.notify_all();
  running_.fetch_sub(1);
  job->response->set_backend(backend());
  job->response->set_device(-1);
  scheduler_->Complete(std::move(job), status);
}

}  // namespace hbsa::server
