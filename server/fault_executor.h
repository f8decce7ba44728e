// server/fault_executor.h: TEST ONLY. An executor that loses its "device" on purpose, so the
// server's device-lost path (typed signal, NOT_SERVING, in-flight calls UNAVAILABLE, exit 3) is
// driven without a GPU.
//
// It computes its first `fail_after_jobs` jobs (warm-up included) on the CPU like the CPU
// executor (one worker, hbsa::Run(kCpu)), then fails the next job exactly as the CUDA executor
// fails on a sticky error: the job completes UNAVAILABLE marked device-lost
// (hbsa/device_status.h), the executor stops taking work and reports through FatalHandler.
// With fail_after_jobs = 0 the warm-up request is the one that fails. Selected by
// --test-device-lost-after (config.h); never used otherwise.
#ifndef HBSA_SERVER_FAULT_EXECUTOR_H_
#define HBSA_SERVER_FAULT_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <thread>

#include "executor.h"
#include "scheduler.h"

namespace hbsa::server {

class FaultExecutor final : public Executor {
 public:
  FaultExecutor(int64_t fail_after_jobs, Scheduler* scheduler, FatalHandler on_fatal);
  ~FaultExecutor() override;

  absl::Status Start() override;
  void Stop() override;
  std::string backend() const override { return "cpu"; }
  int device() const override { return -1; }
  int64_t memory_budget_bytes() const override { return int64_t{4} << 30; }
  void Describe(v1::Capabilities*) const override {}

 private:
  void Loop();

  const int64_t fail_after_jobs_;
  Scheduler* const scheduler_;
  const FatalHandler on_fatal_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_FAULT_EXECUTOR_H_
