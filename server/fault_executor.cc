// server/fault_executor.cc: TEST ONLY device-loss injection (see fault_executor.h).
#include "fault_executor.h"

#include <chrono>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "hbsa/attention.h"
#include "hbsa/device_status.h"

namespace hbsa::server {

FaultExecutor::FaultExecutor(int64_t fail_after_jobs, Scheduler* scheduler, FatalHandler on_fatal)
    : fail_after_jobs_(fail_after_jobs), scheduler_(scheduler), on_fatal_(std::move(on_fatal)) {}

FaultExecutor::~FaultExecutor() { Stop(); }

absl::Status FaultExecutor::Start() {
  spdlog::warn("TEST fault executor: the device is lost after {} requests", fail_after_jobs_);
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void FaultExecutor::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void FaultExecutor::Loop() {
  int64_t done = 0;
  while (!stop_.load()) {
    std::unique_ptr<Job> job = scheduler_->Take(std::chrono::milliseconds(50));
    if (job == nullptr) continue;
    if (done < fail_after_jobs_) {
      PrepareOutputs(job->response, job->request.get());
      RunOptions options;
      options.num_threads = 1;
      const absl::Status s = Run(Backend::kCpu, job->request->args, options);
      job->response->set_backend("cpu");
      job->response->set_device(-1);
      scheduler_->Complete(std::move(job), s);
      ++done;
      continue;
    }
    // What CudaExecutor::Fatal does on a sticky error.
    const std::string reason = absl::StrCat(
        "sticky CUDA error: injected device loss after ", done, " requests (--test-device-lost-after)");
    spdlog::critical("device -1: {}", reason);
    scheduler_->Complete(std::move(job), MarkDeviceLost(absl::UnavailableError(
                                             absl::StrCat("GPU -1 is unhealthy: ", reason))));
    on_fatal_(reason);
    return;
  }
}

}  // namespace hbsa::server
