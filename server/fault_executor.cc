// server/fault_executor.cc: TEST ONLY device-loss injection (see fault_executor.h).
#include "fault_executor.h"

#include <chrono>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "hbsa/attention.h"
#include "batch.h"
#include "hbsa/device_status.h"
#include "wire_response.h"

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
      // As the CPU executor computes one request: inputs staged into one heap block, outputs
      // in another that the response points into.
      std::vector<std::unique_ptr<Job>> one;
      one.push_back(std::move(job));
      Launch launch = MakeLaunch(std::move(one));
      AttentionArgs a = launch.args;
      std::shared_ptr<HostBlock> in = HeapBlock(a.q.bytes + a.k.bytes + a.v.bytes);
      StageInputs(launch, in->data(), in->data() + a.q.bytes, in->data() + a.q.bytes + a.k.bytes);
      a.q.data = in->data();
      a.k.data = in->data() + a.q.bytes;
      a.v.data = in->data() + a.q.bytes + a.k.bytes;
      const size_t out_bytes = static_cast<size_t>(launch.out_bytes);
      std::shared_ptr<HostBlock> block =
          HeapBlock(out_bytes + static_cast<size_t>(launch.lse_bytes));
      a.out = {block->data(), out_bytes};
      a.lse = {};
      if (launch.return_lse) a.lse = {block->data() + out_bytes, static_cast<size_t>(launch.lse_bytes)};
      RunOptions options;
      options.num_threads = 1;
      options.validated = true;  // validated once at the edge
      const absl::Status s = Run(Backend::kCpu, a, options);
      SplitOutputs(&launch, block, block->data(),
                   launch.return_lse ? block->data() + out_bytes : nullptr, "cpu", -1);
      CompleteLaunch(&launch, scheduler_, s, "cpu");
      ++done;
      continue;
    }
    // What CudaExecutor::Fatal does on a sticky error.
    const std::string reason = absl::StrCat(
        "sticky CUDA error: injected device loss after ", done, " requests (--test-device-lost-after)");
    spdlog::critical("device -1: {}", reason);
    scheduler_->Complete(std::move(job),
                         MarkDeviceLost(absl::UnavailableError(absl::StrCat("GPU -1 is unhealthy: ", reason))),
                         "cpu");
    on_fatal_(reason);
    return;
  }
}

}  // namespace hbsa::server
