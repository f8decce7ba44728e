// tests/server/cancellation_test.cc: cancellation and deadlines while a request runs, on
// loopback (CPU backend, one worker).
//
// Issue 12 finding 4: cancelled and expired calls used to run to the end, be counted OK and
// hold the executor, so requests behind them timed out. Now the CPU backend asks between
// tiles whether anyone still waits (RunOptions::should_stop): a long request whose client
// cancels, or whose deadline passes, stops within a tile, the worker takes the next request,
// and hbsa_abandoned_requests_total counts it by stage and reason (never as OK).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server_harness.h"

namespace hbsa::testing {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// About 275 GFLOP (8192 x 8192 keys, 16 query heads, D 64, every block on): many seconds on
// one CPU thread, so a worker that ran it to the end would hold the probe far past the bound.
const golden::Case& LongCase() {
  static const golden::Case c = SyntheticCase(8192, 8192, 16, 1, 64, 64, 64, false, 11, false);
  return c;
}

double Metric(const std::string& text, const std::string& series) {
  return MetricValue(text, series).value_or(0);
}

// Waits until the one worker has taken the only admitted request (queue empty, one in flight).
bool WaitRunning(const ServerProcess& server, std::chrono::seconds timeout) {
  const auto until = SteadyClock::now() + timeout;
  while (SteadyClock::now() < until) {
    const std::string m = HttpGet(server.metrics_port(), "/metrics");
    if (Metric(m, "hbsa_inflight_requests") == 1 && Metric(m, "hbsa_queue_depth") == 0) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

std::unique_ptr<ServerProcess> OneWorker() {
  return ServerProcess::Start({"--cpu-threads", "1", "--batch-max-tokens", "0"});
}

// The probe behind a stopped request must answer within this bound after the stop (it needs a
// tile of the long request to end, and its own few microseconds of compute).
constexpr double kProbeBoundSeconds = 3.0;

TEST(Cancellation, CancelledRunningRequestFreesTheWorker) {
  auto server = OneWorker();
  ASSERT_NE(server, nullptr);
  auto stub = server->stub();
  AsyncAttend long_call(stub.get(), MakeRequest(LongCase(), MaskForm::kCompact, false, "long"));
  ASSERT_TRUE(WaitRunning(*server, std::chrono::seconds(20)));
  std::this_thread::sleep_for(milliseconds(200));  // well into its compute
  const golden::Case& small = GoldenCase("single_token_decode");
  AsyncAttend probe(stub.get(), MakeRequest(small, MaskForm::kDense, true, "probe"));
  std::this_thread::sleep_for(milliseconds(100));  // the probe waits in the queue
  const auto t0 = SteadyClock::now();
  long_call.Cancel();
  const grpc::Status ps = probe.Wait();
  const double probe_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  ASSERT_TRUE(ps.ok()) << ps.error_message();
  EXPECT_TRUE(CompareResponse(small, probe.response()).pass());
  std::printf("probe answered %.3f s after the cancel\n", probe_s);
  EXPECT_LT(probe_s, kProbeBoundSeconds) << "the cancelled request held the worker";
  EXPECT_EQ(long_call.Wait().error_code(), grpc::StatusCode::CANCELLED);

  std::this_thread::sleep_for(milliseconds(100));
  const std::string m = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(Metric(m, R"(hbsa_abandoned_requests_total{reason="cancelled",stage="running"})"), 1);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="CANCELLED",method="Attend"})"), 1);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="OK",method="Attend"})"), 1);  // the probe only
  EXPECT_EQ(Metric(m, "hbsa_inflight_requests"), 0);
  EXPECT_EQ(Metric(m, "hbsa_admission_reserved_bytes"), 0);
}

TEST(Cancellation, ExpiredDeadlineStopsARunningRequest) {
  auto server = OneWorker();
  ASSERT_NE(server, nullptr);
  auto stub = server->stub();
  const auto t0 = SteadyClock::now();
  const milliseconds deadline(3000);
  AsyncAttend long_call(stub.get(), MakeRequest(LongCase(), MaskForm::kPerSequence, false, "long"),
                        deadline);
  ASSERT_TRUE(WaitRunning(*server, std::chrono::seconds(2)));
  const golden::Case& small = GoldenCase("single_token_decode");
  AsyncAttend probe(stub.get(), MakeRequest(small, MaskForm::kCompact, true, "probe"));
  const grpc::Status ps = probe.Wait();
  const double probe_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  ASSERT_TRUE(ps.ok()) << ps.error_message();
  EXPECT_TRUE(CompareResponse(small, probe.response()).pass());
  std::printf("probe answered %.3f s after the long request was sent (deadline 3 s)\n", probe_s);
  EXPECT_LT(probe_s, 3.0 + kProbeBoundSeconds) << "the expired request held the worker";
  EXPECT_EQ(long_call.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  std::this_thread::sleep_for(milliseconds(100));
  const std::string m = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(
      Metric(m, R"(hbsa_abandoned_requests_total{reason="deadline_exceeded",stage="running"})"), 1);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="DEADLINE_EXCEEDED",method="Attend"})"), 1);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="OK",method="Attend"})"), 1);
  EXPECT_EQ(Metric(m, "hbsa_inflight_requests"), 0);
}

// SIGTERM with a short grace while a long request runs and three wait: after the grace the
// server cuts them off (the running one stops between tiles, the queued ones fail), says so in
// its log with the right counts, and exits 0 long before the long request could have ended.
TEST(Drain, ShortGraceCutsOffRunningAndQueuedWorkAndCountsIt) {
  auto server = ServerProcess::Start(
      {"--cpu-threads", "1", "--batch-max-tokens", "0", "--drain-grace-seconds", "0.5"});
  ASSERT_NE(server, nullptr);
  auto stub = server->stub();
  AsyncAttend long_call(stub.get(), MakeRequest(LongCase(), MaskForm::kCompact, false, "long"));
  ASSERT_TRUE(WaitRunning(*server, std::chrono::seconds(20)));
  const golden::Case& small = GoldenCase("single_token_decode");
  std::vector<std::unique_ptr<AsyncAttend>> queued;
  for (int i = 0; i < 3; ++i) {
    queued.push_back(std::make_unique<AsyncAttend>(
        stub.get(), MakeRequest(small, MaskForm::kDense, false, "q" + std::to_string(i))));
  }
  std::this_thread::sleep_for(milliseconds(200));  // all three wait behind the long one
  const auto t0 = SteadyClock::now();
  const std::optional<int> code = server->SignalAndWait(SIGTERM, std::chrono::seconds(20));
  const double exit_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  ASSERT_TRUE(code.has_value()) << "no exit after SIGTERM";
  std::printf("exited %.3f s after SIGTERM (grace 0.5 s)\n", exit_s);
  EXPECT_EQ(*code, 0) << server->Log();
  EXPECT_LT(exit_s, 0.5 + kProbeBoundSeconds);
  EXPECT_FALSE(long_call.Wait().ok());
  for (auto& q : queued) {
    const grpc::Status s = q->Wait();
    EXPECT_FALSE(s.ok());
    EXPECT_TRUE(s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                s.error_code() == grpc::StatusCode::CANCELLED)
        << s.error_code() << " " << s.error_message();
  }
  const std::string log = server->Log();
  EXPECT_NE(log.find("with 4 requests unfinished (3 queued)"), std::string::npos) << log;
  EXPECT_NE(log.find("drain cut off 4 requests: 3 queued, 0 staging, 1 running (stopped, result "
                     "dropped), 0 failed otherwise; 0 finished after the grace"),
            std::string::npos)
      << log;
}

}  // namespace
}  // namespace hbsa::testing
