// server/executor.h: the interface every executor (CPU, CUDA per GPU) implements, and the
// staging helpers they share.
//
// An executor owns its threads and compute resources, pulls batches of Jobs from the
// Scheduler (TakeBatch; one job, or several merged into one Launch, batch.h), stages their
// inputs, computes, leaves each job's outputs in host memory it owns (JobResult) and hands the
// jobs back through Scheduler::Complete. Nothing here runs on a gRPC thread.
#ifndef HBSA_SERVER_EXECUTOR_H_
#define HBSA_SERVER_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "batch.h"
#include "hbsa/v1/attention.pb.h"
#include "scheduler.h"
#include "translate.h"

namespace hbsa::server {

// Called once when the executor finds its device unusable (sticky CUDA error). The server
// then stops admitting, reports NOT_SERVING and exits with code 3.
using FatalHandler = std::function<void(const std::string& reason)>;

class Executor {
 public:
  virtual ~Executor() = default;
  // Acquires resources and starts the threads. Errors leave nothing running.
  virtual absl::Status Start() = 0;
  // Joins the threads; call after Scheduler::Stop. Jobs still running are finished first.
  virtual void Stop() = 0;
  // "cpu", "reference" or "cuda": what computes results (AttendResponse.backend).
  virtual std::string backend() const = 0;
  // Device ordinal for AttendResponse.device (-1 on the CPU).
  virtual int device() const = 0;
  // The working-memory budget per request batch in flight on this executor, in bytes.
  virtual int64_t memory_budget_bytes() const = 0;
  // Adds this executor's device to the capabilities (no-op on the CPU).
  virtual void Describe(v1::Capabilities* caps) const = 0;
};

// Copies every job's q, k and v into the merged tensors at q_dst, k_dst and v_dst (one copy
// per byte: from the received message or shared memory). Skips inputs for which `skip` returns
// true (e.g. shared memory the device reads directly).
void StageInputs(const Launch& launch, char* q_dst, char* k_dst, char* v_dst,
                 const std::function<bool(const InputBytes&)>& skip = nullptr);

// Points each job's result at its rows of the launch's outputs: `out`/`lse` are the merged
// outputs inside `block` (lse may be null). Jobs whose output went to shared memory get no
// pointer for it.
void SplitOutputs(Launch* launch, const std::shared_ptr<HostBlock>& block, const char* out,
                  const char* lse, const std::string& backend, int device);

// Cancellation between stages. A merged launch is dropped only when none of its jobs may still
// run (each cancelled or past its deadline); then each job is Abandoned in `stage` and the
// launch is left empty, and the call returns true. False (launch untouched) otherwise.
// `device`: the executor's metrics label (Scheduler::Complete).
bool AbandonIfNoneRunnable(Launch* launch, Scheduler* scheduler, Scheduler::JobStage stage,
                           absl::string_view device);

// The stop test for hbsa::RunOptions::should_stop: true once no job of `launch` may still run.
// Reads only the jobs' flags and deadlines and the clock (thread-safe, cheap); `launch` must
// outlive the returned function's use.
std::function<bool()> NoneRunnable(const Launch& launch);

// Finishes every job of a computed launch with `status`, except that a job whose client
// cancelled or whose deadline passed meanwhile is Abandoned in the running stage (its result is
// dropped, and it is counted as cancelled or expired, not as OK). `device` as above.
void CompleteLaunch(Launch* launch, Scheduler* scheduler, const absl::Status& status,
                    absl::string_view device);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_EXECUTOR_H_
