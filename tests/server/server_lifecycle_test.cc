// tests/server/server_lifecycle_test.cc: hbsa-server's scheduling and process life on
// loopback (CPU backend): queue full, deadline exceeded and cancellation while queued (using
// the documented test-only --test-executor-delay-ms to make a request slow), health
// transitions, SIGTERM during load, and /metrics counts that match the requests sent.
#include <signal.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "hbsa/attention.h"
#include "server_harness.h"

namespace hbsa::testing {
namespace {

using std::chrono::milliseconds;

// An Attend issued on the callback stub; Wait() returns its status.

const golden::Case& SmallCase() { return GoldenCase("single_token_decode"); }

double Metric(const std::string& text, const std::string& series) {
  return MetricValue(text, series).value_or(-1);
}

// One worker, one queue slot, 400 ms per request: A runs, B waits, C is refused.
TEST(ServerScheduling, QueueFullDeadlineAndCancellation) {
  auto server = ServerProcess::Start(
      {"--cpu-threads", "1", "--queue-length", "1", "--test-executor-delay-ms", "400"});
  ASSERT_NE(server, nullptr);
  auto stub = server->stub();
  const golden::Case& c = SmallCase();

  {  // Queue full.
    AsyncAttend a(stub.get(), MakeRequest(c, MaskForm::kDense, false, "a"));
    std::this_thread::sleep_for(milliseconds(150));  // a is running
    AsyncAttend b(stub.get(), MakeRequest(c, MaskForm::kDense, false, "b"));
    std::this_thread::sleep_for(milliseconds(100));  // b is queued
    AsyncAttend full(stub.get(), MakeRequest(c, MaskForm::kDense, false, "c"));
    const grpc::Status s = full.Wait();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_NE(s.error_message().find("queue"), std::string::npos) << s.error_message();
    EXPECT_TRUE(a.Wait().ok());
    EXPECT_TRUE(b.Wait().ok());
    EXPECT_TRUE(CompareResponse(c, b.response()).pass());
  }
  {  // Deadline passes while queued behind a slow request.
    AsyncAttend a(stub.get(), MakeRequest(c, MaskForm::kDense, false, "a"));
    std::this_thread::sleep_for(milliseconds(100));
    AsyncAttend late(stub.get(), MakeRequest(c, MaskForm::kDense, false, "late"), milliseconds(150));
    EXPECT_EQ(late.Wait().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    EXPECT_TRUE(a.Wait().ok());
  }
  // The expired request leaves the queue when the worker next takes work, which may be just
  // after a's answer reached us: wait for it, or the one-slot queue refuses the next request.
  for (int i = 0; i < 100 && Metric(HttpGet(server->metrics_port(), "/metrics"), "hbsa_queue_depth") != 0; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  {  // Cancelled while queued.
    AsyncAttend a(stub.get(), MakeRequest(c, MaskForm::kDense, false, "a"));
    std::this_thread::sleep_for(milliseconds(100));
    AsyncAttend gone(stub.get(), MakeRequest(c, MaskForm::kDense, false, "gone"));
    std::this_thread::sleep_for(milliseconds(100));
    gone.Cancel();
    EXPECT_EQ(gone.Wait().error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_TRUE(a.Wait().ok());
  }
  // The server saw them too: the queued-past-deadline and cancelled requests were completed by
  // the scheduler's pre-launch check (never computed), and counted with their codes.
  std::this_thread::sleep_for(milliseconds(200));
  const std::string m = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="RESOURCE_EXHAUSTED",method="Attend"})"), 1);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="DEADLINE_EXCEEDED",method="Attend"})"), 1);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="CANCELLED",method="Attend"})"), 1);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="OK",method="Attend"})"), 4);
  EXPECT_EQ(Metric(m, R"(hbsa_stream_requests_total{device="cpu",stream="0"})"), 4);
  EXPECT_EQ(Metric(m, "hbsa_queue_depth"), 0);
  EXPECT_EQ(Metric(m, "hbsa_inflight_requests"), 0);
}

TEST(ServerHealth, NotServingUntilWarmUpThenServing) {
  auto server = ServerProcess::Start({"--test-warmup-delay-ms", "1500"}, /*wait_serving=*/false);
  ASSERT_NE(server, nullptr);
  // Wait for the port, then expect NOT_SERVING for both names during warm-up.
  Health h = Health::kUnavailable;
  for (int i = 0; i < 100 && h == Health::kUnavailable; ++i) {
    h = CheckHealth(server->channel(), "");
    if (h == Health::kUnavailable) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(h, Health::kNotServing);
  EXPECT_EQ(CheckHealth(server->channel(), "hbsa.v1.Attention"), Health::kNotServing);
  EXPECT_TRUE(server->WaitServing(std::chrono::seconds(10)));
  EXPECT_EQ(CheckHealth(server->channel(), "hbsa.v1.Attention"), Health::kServing);
}

// SIGTERM with requests queued and running: health turns NOT_SERVING at once, new requests are
// refused UNAVAILABLE, every admitted request completes correctly, and the process exits 0.
TEST(ServerDrain, SigtermDuringLoadLosesNoAcceptedRequest) {
  // Batching off: the test needs requests still queued when SIGTERM arrives (batching would
  // merge the queue into one launch, which finishes before the signal).
  auto server = ServerProcess::Start({"--cpu-threads", "1", "--test-executor-delay-ms", "150",
                                      "--drain-grace-seconds", "30", "--batch-max-tokens", "0"});
  ASSERT_NE(server, nullptr);
  auto stub = server->stub();
  const golden::Case& c = SmallCase();
  std::vector<std::unique_ptr<AsyncAttend>> admitted;
  for (int i = 0; i < 10; ++i) {
    admitted.push_back(std::make_unique<AsyncAttend>(
        stub.get(), MakeRequest(c, MaskForm::kCompact, true, "r" + std::to_string(i))));
  }
  std::this_thread::sleep_for(milliseconds(300));  // all admitted, ~2 done, the rest queued
  kill(server->pid(), SIGTERM);
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(CheckHealth(server->channel(), ""), Health::kNotServing);
  EXPECT_EQ(CheckHealth(server->channel(), "hbsa.v1.Attention"), Health::kNotServing);
  AsyncAttend refused(stub.get(), MakeRequest(c, MaskForm::kDense, false, "after-sigterm"));
  const grpc::Status rs = refused.Wait();
  EXPECT_EQ(rs.error_code(), grpc::StatusCode::UNAVAILABLE) << rs.error_message();
  int ok = 0;
  for (auto& a : admitted) {
    const grpc::Status s = a->Wait();
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    if (s.ok()) {
      EXPECT_TRUE(CompareResponse(c, a->response()).pass());
      ++ok;
    }
  }
  EXPECT_EQ(ok, 10);
  const std::optional<int> code = server->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value()) << "server did not exit after the drain";
  EXPECT_EQ(*code, 0) << server->Log();
  EXPECT_NE(server->Log().find("draining"), std::string::npos);
}

// Every metric family, with counts that match what was sent.
TEST(ServerMetrics, FamiliesAndCountsMatchTheRequestsSent) {
  auto server = ServerProcess::Start({"--cpu-threads", "2"});
  ASSERT_NE(server, nullptr);
  auto stub = server->stub();
  std::vector<std::string> names = {"readme_example_causal", "single_token_decode",
                                    "empty_sequence_in_batch"};
  double received = 0, sent = 0, q_tokens = 0, k_tokens = 0, flops = 0;
  int ok = 0;
  for (const std::string& name : names) {
    const golden::Case& c = GoldenCase(name);
    const v1::AttendRequest req = MakeRequest(c, MaskForm::kDense, true, name);
    grpc::ClientContext ctx;
    v1::AttendResponse resp;
    ASSERT_TRUE(stub->Attend(&ctx, req, &resp).ok());
    received += static_cast<double>(req.ByteSizeLong());
    sent += static_cast<double>(resp.ByteSizeLong());
    q_tokens += static_cast<double>(c.total_q());
    k_tokens += static_cast<double>(c.total_k());
    std::vector<uint8_t> out;
    std::vector<float> lse;
    flops += 4.0 * c.d * static_cast<double>(AllowedPairs(c.MakeArgs(&out, &lse)));
    ++ok;
  }
  // Two invalid requests.
  for (int i = 0; i < 2; ++i) {
    v1::AttendRequest bad = MakeRequest(GoldenCase(names[0]), MaskForm::kDense, false, "bad");
    bad.set_k_block_size(0);
    grpc::ClientContext ctx;
    v1::AttendResponse resp;
    EXPECT_EQ(stub->Attend(&ctx, bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    received += static_cast<double>(bad.ByteSizeLong());
  }
  {  // One stream with two requests.
    grpc::ClientContext ctx;
    auto stream = stub->AttendStream(&ctx);
    const golden::Case& c = GoldenCase(names[1]);
    for (int i = 0; i < 2; ++i) {
      const v1::AttendRequest req = MakeRequest(c, MaskForm::kCompact, false, "s" + std::to_string(i));
      received += static_cast<double>(req.ByteSizeLong());
      ASSERT_TRUE(stream->Write(req));
      q_tokens += static_cast<double>(c.total_q());
      k_tokens += static_cast<double>(c.total_k());
      std::vector<uint8_t> out;
      flops += 4.0 * c.d * static_cast<double>(AllowedPairs(c.MakeArgs(&out, nullptr)));
    }
    stream->WritesDone();
    v1::AttendResponse resp;
    while (stream->Read(&resp)) sent += static_cast<double>(resp.ByteSizeLong());
    ASSERT_TRUE(stream->Finish().ok());
  }
  {
    grpc::ClientContext ctx;
    v1::Capabilities caps;
    ASSERT_TRUE(stub->GetCapabilities(&ctx, v1::GetCapabilitiesRequest(), &caps).ok());
    sent += static_cast<double>(caps.ByteSizeLong());
  }
  std::this_thread::sleep_for(milliseconds(100));
  const std::string m = HttpGet(server->metrics_port(), "/metrics");
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="OK",method="Attend"})"), ok);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="INVALID_ARGUMENT",method="Attend"})"), 2);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="OK",method="AttendStream"})"), 2);
  EXPECT_EQ(Metric(m, R"(hbsa_requests_total{code="OK",method="GetCapabilities"})"), 1);
  // Latency by method and device: computed requests on "cpu", refused ones on "none".
  EXPECT_EQ(Metric(m, R"(hbsa_request_duration_seconds_count{device="cpu",method="Attend"})"), ok);
  EXPECT_EQ(Metric(m, R"(hbsa_request_duration_seconds_count{device="none",method="Attend"})"), 2);
  EXPECT_EQ(Metric(m, R"(hbsa_request_duration_seconds_count{device="cpu",method="AttendStream"})"), 2);
  EXPECT_EQ(Metric(m, R"(hbsa_request_duration_seconds_bucket{device="cpu",method="Attend",le="+Inf"})"), ok);
  EXPECT_EQ(MetricSum(m, "hbsa_request_duration_seconds_count"), ok + 2 + 2 + 1);  // + GetCapabilities
  EXPECT_EQ(Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="queue"})"), ok + 2);
  EXPECT_EQ(Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="kernel"})"), ok + 2);
  EXPECT_EQ(Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="response"})"), ok + 2);
  EXPECT_EQ(m.find(R"(hbsa_stage_duration_seconds_count{device="cpu",stage="h2d"})"), std::string::npos)
      << "CPU: no copies, so no h2d series";
  EXPECT_EQ(MetricSum(m, "hbsa_stage_duration_seconds_count") -
                Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="queue"})") -
                Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="parse"})") -
                Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="staging"})") -
                Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="kernel"})") -
                Metric(m, R"(hbsa_stage_duration_seconds_count{device="cpu",stage="response"})"),
            0)
      << "every stage observation is labelled device=\"cpu\"";
  EXPECT_EQ(Metric(m, "hbsa_received_bytes_total"), received);
  EXPECT_EQ(Metric(m, "hbsa_sent_bytes_total"), sent);
  EXPECT_EQ(Metric(m, "hbsa_queue_depth"), 0);
  EXPECT_EQ(Metric(m, "hbsa_inflight_requests"), 0);
  EXPECT_EQ(Metric(m, R"(hbsa_tokens_total{side="query"})"), q_tokens);
  EXPECT_EQ(Metric(m, R"(hbsa_tokens_total{side="key"})"), k_tokens);
  EXPECT_GT(flops, 0);
  EXPECT_NEAR(Metric(m, "hbsa_flops_total"), flops, flops * 1e-9);
  EXPECT_EQ(Metric(m, R"(hbsa_device_memory_used_bytes{device="cpu"})"), 0);
  EXPECT_EQ(Metric(m, R"(hbsa_device_memory_budget_bytes{device="cpu"})"), 4294967296.0);
  EXPECT_EQ(MetricSum(m, "hbsa_stream_requests_total"), ok + 2);
  EXPECT_EQ(Metric(m, R"(hbsa_build_info{backend="cpu",version="0.1.0"})"), 1);
  // Latency buckets: 50 us, six a decade from 100 us to 70 ms, then coarser to 60 s.
  for (const char* le : {"5e-05", "0.0001", "0.00015", "0.00075", "0.0015", "0.003", "0.05", "0.075", "0.1", "60"}) {
    EXPECT_NE(m.find(absl::StrCat(R"(hbsa_request_duration_seconds_bucket{device="cpu",method="Attend",le=")", le,
                                  R"("})")),
              std::string::npos)
        << le;
  }
  EXPECT_EQ(MetricSum(m, "hbsa_stage_duration_seconds_bucket") > 0, true);
  // Process metrics, read from /proc on this scrape.
  EXPECT_GT(Metric(m, "process_cpu_seconds_total"), 0);
  EXPECT_GT(Metric(m, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(Metric(m, "process_virtual_memory_bytes"), Metric(m, "process_resident_memory_bytes"));
  EXPECT_GE(Metric(m, "process_threads"), 4);  // gRPC, the exposer, two CPU workers
  EXPECT_GE(Metric(m, "process_open_fds"), 5);  // stdio, the listening sockets
  EXPECT_GT(Metric(m, "process_max_fds"), Metric(m, "process_open_fds"));
  const double now = static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  EXPECT_GT(Metric(m, "process_start_time_seconds"), now - 300);
  EXPECT_LE(Metric(m, "process_start_time_seconds"), now + 1);
  // No GPU: the NVML families are absent, not zero.
  EXPECT_EQ(m.find("hbsa_gpu_"), std::string::npos);
}

}  // namespace
}  // namespace hbsa::testing
