// bench_runner.h: the measurement loop of hbsa-bench, in the manner of Triton's perf_analyzer.
//
// One "level" is one concurrency (N calls kept in flight, each completion starts the next) or
// one request rate (Poisson arrivals: exponential gaps with mean 1/R, sent whether or not
// earlier calls finished, bounded by max_outstanding). A level runs: warm-up requests (not
// measured), then measurement windows of `window` each, until the last `stable_windows`
// windows agree within `stability` (max/min throughput - 1) or `max_windows` have run. The
// statistics come from the stable windows (or the last `stable_windows` when never stable,
// reported as stable = false). Every loop is bounded by a count and by time.
#ifndef HBSA_CLIENT_TOOLS_BENCH_RUNNER_H_
#define HBSA_CLIENT_TOOLS_BENCH_RUNNER_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "bench_workload.h"
#include "hbsa/client.h"

namespace hbsa::tools {

struct RunConfig {
  std::chrono::milliseconds window{2000};  // one measurement window
  int max_windows = 10;                    // give up on stability after this many
  int stable_windows = 3;                  // windows that must agree
  double stability = 0.10;                 // allowed relative spread of their throughput
  int64_t warmup_requests = 8;             // per level, sent before measuring
  double check_fraction = 0;               // fraction of responses compared with the reference
  int64_t max_checks = 32;                 // at most this many comparisons per level
  int64_t max_outstanding = 1024;          // rate mode: arrivals beyond this are counted as skipped
  client::CallOptions call;                // deadline and retries of each request
};

// What one level measured.
struct LevelResult {
  std::string mode;          // "concurrency" or "rate"
  int64_t concurrency = 0;   // concurrency mode: calls in flight
  double request_rate = 0;   // rate mode: target arrivals per second
  int windows = 0;           // windows run
  bool stable = false;       // whether the last stable_windows agreed
  int64_t requests = 0;      // completed in the measured windows (ok + errors)
  int64_t errors = 0;        // of them, failed
  std::map<std::string, int64_t> error_codes;  // by gRPC code name, whole level
  int64_t skipped = 0;       // rate mode: arrivals not sent (max_outstanding reached)
  double seconds = 0;        // length of the measured windows
  double throughput_rps = 0; // successful responses per second
  double payload_gbps = 0;   // (request + response bytes) * throughput / 1e9
  double latency_mean_ms = 0, p50_ms = 0, p90_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
  int64_t checks = 0;        // responses compared with the reference
  int64_t check_failures = 0;
  double max_abs_err = 0;    // largest |out - ref| seen in the checks
  std::string first_check_failure;
};

// Runs one concurrency level / one rate level. Fails only when warm-up fails (no answer at all).
absl::StatusOr<LevelResult> RunConcurrencyLevel(const client::Client& client, const Workload& w,
                                                int64_t concurrency, const RunConfig& config);
absl::StatusOr<LevelResult> RunRateLevel(const client::Client& client, const Workload& w,
                                         double rate, const RunConfig& config);

}  // namespace hbsa::tools

#endif  // HBSA_CLIENT_TOOLS_BENCH_RUNNER_H_
