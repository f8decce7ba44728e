// server/executor.h: the interface every executor (CPU, CUDA per GPU) implements.
//
// An executor owns its threads and compute resources, pulls Jobs from the Scheduler, fills
// each job's response (out, lse, stage seconds) and hands it back through
// Scheduler::Complete. Nothing here runs on a gRPC thread.
#ifndef HBSA_SERVER_EXECUTOR_H_
#define HBSA_SERVER_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hbsa/v1/attention.pb.h"
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

// Writes out (and lse when asked) buffers into `response` sized for `request`, and points the
// arguments at them. Shared by the executors.
void PrepareOutputs(v1::AttendResponse* response, TranslatedRequest* request);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_EXECUTOR_H_
