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
  for (int i = 0; i < threads_; ++i) {
    worker_counters_.push_back(metrics_->StreamCounter("cpu", i));
    worker_busy_.push_back(metrics_->StreamBusyCounter("cpu", i));
  }
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
    std::vector<std::unique_ptr<Job>> batch =
        scheduler_->TakeBatch(std::chrono::milliseconds(50), options_.batch);
    if (batch.empty()) continue;
    RunLaunch(MakeLaunch(std::move(batch)), index);
  }
}

void CpuExecutor::RunLaunch(Launch launch, int worker) {
  const Clock::time_point t0 = Clock::now();
  AttentionArgs a = launch.args;
  int64_t need = 0;
  for (const auto& job : launch.jobs) need += job->request->working_bytes;
  need = std::min(need, budget_);
  const int active = running_.fetch_add(1) + 1 + static_cast<int>(scheduler_->queue_depth());
  double flops = 0;
  for (const auto& job : launch.jobs) flops += job->request->facts.flops;
  const int threads = CpuThreadsForRequest(flops, threads_, active);
  {
    std::unique_lock<std::mutex> lock(memory_mu_);
    memory_cv_.wait(lock, [&] { return memory_used_ + need <= budget_; });
    memory_used_ += need;
    metrics_->SetDeviceMemory("cpu", memory_used_, budget_);
  }
  if (options_.test_delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.test_delay_ms));
  }
  auto release = [&] {
    {
      std::lock_guard<std::mutex> lock(memory_mu_);
      memory_used_ -= need;
      metrics_->SetDeviceMemory("cpu", memory_used_, budget_);
    }
    memory_cv_.notify_all();
    running_.fetch_sub(1);
  };
  // Cancelled or expired while waiting for memory: nothing is staged or computed.
  if (AbandonIfNoneRunnable(&launch, scheduler_, Scheduler::JobStage::kStaging, "cpu")) {
    release();
    return;
  }
  const Clock::time_point t1 = Clock::now();
  // Inputs: in place when every tensor is one contiguous piece of one request, else gathered.
  std::shared_ptr<HostBlock> staged;
  const bool single = launch.jobs.size() == 1;
  if (!single || a.q.data == nullptr || a.k.data == nullptr || a.v.data == nullptr) {
    staged = HeapBlock(a.q.bytes + a.k.bytes + a.v.bytes);
    char* q = staged->data();
    char* k = q + a.q.bytes;
    char* v = k + a.k.bytes;
    StageInputs(launch, q, k, v);
    a.q.data = q;
    a.k.data = k;
    a.v.data = v;
  }
  // Outputs: a heap block the responses point into, or the caller's shared memory.
  const TranslatedRequest& first = *launch.jobs.front()->request;
  const bool out_shm = single && first.out_target.shm != nullptr;
  const bool lse_shm = single && first.lse_target.shm != nullptr;
  const size_t out_bytes = out_shm ? 0 : static_cast<size_t>(launch.out_bytes);
  const size_t lse_bytes = lse_shm ? 0 : static_cast<size_t>(launch.lse_bytes);
  std::shared_ptr<HostBlock> block = HeapBlock(out_bytes + lse_bytes);
  a.out = {out_shm ? first.out_target.shm : block->data(), static_cast<size_t>(launch.out_bytes)};
  a.lse = {};
  if (launch.return_lse) {
    a.lse = {lse_shm ? first.lse_target.shm : block->data() + out_bytes,
             static_cast<size_t>(launch.lse_bytes)};
  }
  const Clock::time_point t2 = Clock::now();
  RunOptions run_options;
  run_options.num_threads = threads;
  run_options.validated = true;  // each request was validated once at the edge; merges are built valid
  // Between tiles the backend asks whether anyone still waits for this launch; when every job
  // was cancelled or expired it stops, and the worker is free for the next one.
  run_options.should_stop = NoneRunnable(launch);
  absl::Status status = Run(options_.backend, a, run_options);
  const Clock::time_point t3 = Clock::now();
  staged.reset();
  release();
  const double staging_s = std::chrono::duration<double>(t2 - t1).count();
  const double kernel_s = std::chrono::duration<double>(t3 - t2).count();
  bool busy_counted = false;
  SplitOutputs(&launch, block, block->data(), launch.return_lse ? block->data() + out_bytes : nullptr,
               backend(), -1);
  for (auto& job : launch.jobs) {
    if (!job->warmup) {
      metrics_->IncrementStream(worker_counters_[static_cast<size_t>(worker)]);
      if (!busy_counted) {
        metrics_->AddStreamBusy(worker_busy_[static_cast<size_t>(worker)],
                                std::chrono::duration<double>(t3 - t0).count());
        busy_counted = true;
      }
    }
    job->staging_seconds = staging_s;
    job->kernel_seconds = kernel_s;
  }
  CompleteLaunch(&launch, scheduler_, status, "cpu");
}

}  // namespace hbsa::server
