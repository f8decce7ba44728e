// server/job.h: one admitted attention request on its way through scheduler and executor.
//
// The RPC edge builds a Job (translated arguments, deadline, cancellation flag, completion
// callback), the Scheduler queues it and an executor runs it, alone or merged with others into
// one launch (batch.h). Whoever finishes it calls Scheduler::Complete, which fills `timings`,
// records metrics and invokes `done` exactly once, on that thread; `done` must not block (it
// frames the response around `result` and finishes a reactor or queues a stream write).
#ifndef HBSA_SERVER_JOB_H_
#define HBSA_SERVER_JOB_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "hbsa/v1/attention.pb.h"
#include "translate.h"
#include "wire_response.h"

namespace hbsa::server {

using Clock = std::chrono::steady_clock;

// Shared between a call (which may be cancelled by its client) and its jobs.
struct CallFlags {
  std::atomic<bool> cancelled{false};
};

// What an executor leaves for the response: where out and lse are (inside `block`, or null
// when the request named shared memory for them).
struct JobResult {
  std::shared_ptr<HostBlock> block;  // owns out/lse until the response is sent
  const char* out = nullptr;
  size_t out_bytes = 0;
  const char* lse = nullptr;
  size_t lse_bytes = 0;
  std::string backend;               // "cuda", "cpu" or "reference"
  int32_t device = -1;
  std::string kernel;                // CUDA kernel name (AttendResponse.kernel); empty on the CPU
  int32_t batch_size = 1;            // requests in the launch that computed this one
};

struct Job {
  std::string method;                          // "Attend" or "AttendStream", for logs
  std::string request_id;                      // caller's id, echoed and logged
  std::unique_ptr<TranslatedRequest> request;  // validated arguments
  std::shared_ptr<CallFlags> flags;            // client cancellation
  std::optional<Clock::time_point> deadline;   // the call's deadline, if any
  Clock::time_point received;                  // request read off the wire
  Clock::time_point admitted;                  // accepted into the queue
  Clock::time_point started;                   // an executor took it
  // Stage seconds (0 where a stage does not apply): parse is set by the edge, the rest by the
  // executor; Complete adds queue and total.
  double parse_seconds = 0, staging_seconds = 0;
  double h2d_seconds = 0, kernel_seconds = 0, d2h_seconds = 0;
  JobResult result;                            // set by the executor on success
  v1::StageTimings timings;                    // filled by Scheduler::Complete
  bool warmup = false;                         // start-up self test: kept out of metrics
  // Label of the executor that completed it ("cpu", the GPU ordinal), or kNoDevice ("none")
  // when it never ran; set by Scheduler::Complete, for the metrics' device label.
  std::string device;
  int abandoned_in = -1;                       // Scheduler::JobStage it was abandoned in, or -1
  // Called once with the outcome and the job (result and timings valid on OK).
  std::function<void(const absl::Status&, Job&)> done;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_JOB_H_
