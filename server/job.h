// server/job.h: one admitted attention request on its way through scheduler and executor.
//
// The RPC edge builds a Job (translated arguments, where the response goes, deadline,
// cancellation flag, completion callback), the Scheduler queues it and an executor runs it.
// Whoever finishes it calls Scheduler::Complete, which records metrics and invokes `done`
// exactly once, on that thread; `done` must not block (it finishes a reactor or queues a
// stream write).
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

namespace hbsa::server {

using Clock = std::chrono::steady_clock;

// Shared between a call (which may be cancelled by its client) and its jobs.
struct CallFlags {
  std::atomic<bool> cancelled{false};
};

struct Job {
  std::string method;                          // "Attend" or "AttendStream", for logs
  std::string request_id;                      // caller's id, echoed and logged
  std::unique_ptr<TranslatedRequest> request;  // validated arguments (point into the proto)
  v1::AttendResponse* response = nullptr;      // filled by the executor (out, lse, timings)
  std::shared_ptr<CallFlags> flags;            // client cancellation
  std::optional<Clock::time_point> deadline;   // the call's deadline, if any
  Clock::time_point received;                  // request read off the wire
  Clock::time_point admitted;                  // accepted into the queue
  Clock::time_point started;                   // an executor took it
  // Stage seconds, filled by the executor (0 where a stage does not apply).
  double h2d_seconds = 0, kernel_seconds = 0, d2h_seconds = 0;
  bool warmup = false;                         // start-up self test: kept out of metrics
  // Called once with the outcome; on OK the response holds out (and lse) and timings.
  std::function<void(const absl::Status&)> done;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_JOB_H_
