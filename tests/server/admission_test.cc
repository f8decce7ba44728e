// tests/server/admission_test.cc: admission before allocation, on loopback (CPU backend).
//
// A request's host cost is worked out from its header fields and checked before its mask is
// expanded (issue 12 finding 3: a 134 MB per-sequence mask once took 17 s and 4.5 GB of RSS
// before it was refused); queued requests hold their reservation, so the budget bounds the
// queue too; gRPC's per-call message limit and resource quota are set from the configuration.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server_harness.h"

namespace hbsa::testing {
namespace {

using std::chrono::milliseconds;
constexpr int64_t kMiB = int64_t{1} << 20;

// An Attend issued on the callback stub; Wait() returns its status.

v1::Tensor Fp32Tensor(int64_t rows, int64_t heads, int64_t d) {
  v1::Tensor t;
  t.set_dtype(v1::DTYPE_FLOAT32);
  t.add_shape(rows);
  t.add_shape(heads);
  t.add_shape(d);
  t.set_data(std::string(static_cast<size_t>(rows * heads * d * 4), '\0'));
  return t;
}

// One sequence of n query and n key rows, one head, D 1, blocks 1 x 1, with every bit of its
// per-sequence mask set: n * n bits on the wire, n * n entries (4 bytes each) once expanded.
v1::AttendRequest DensePerSequenceRequest(int64_t n) {
  v1::AttendRequest r;
  r.set_request_id("big-mask");
  *r.mutable_q() = Fp32Tensor(n, 1, 1);
  *r.mutable_k() = Fp32Tensor(n, 1, 1);
  *r.mutable_v() = Fp32Tensor(n, 1, 1);
  r.add_cu_seqlens_q(0);
  r.add_cu_seqlens_q(static_cast<int32_t>(n));
  r.add_cu_seqlens_k(0);
  r.add_cu_seqlens_k(static_cast<int32_t>(n));
  r.set_q_block_size(1);
  r.set_k_block_size(1);
  r.mutable_per_sequence_mask()->add_sequences(std::string(static_cast<size_t>(n * n / 8), '\xff'));
  return r;
}

// Peak RSS growth allowed for refusing the 32 MiB request below: 200 MiB (measured: +96 MiB;
// +1088 MiB before the fix). Under ThreadSanitizer (scripts/sanitize.sh tsan builds the server
// too) every heap byte carries shadow memory and the allocator keeps more, which measured +300
// MiB for the fixed code; the bound there is 600 MiB, still far below what expanding the mask
// first would take (over 1 GiB even without the shadow).
#if defined(__SANITIZE_THREAD__)
#define HBSA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HBSA_TSAN 1
#endif
#endif
#ifdef HBSA_TSAN
constexpr int64_t kRssBound = 600 * kMiB;
#else
constexpr int64_t kRssBound = 200 * kMiB;
#endif

// The finding's request, scaled to this machine: a 32 MiB per-sequence mask that expands to
// 1 GiB of CSR (and more of visit lists), past a 256 MiB budget. Refused from its header
// fields before expansion: fast, and the server's peak RSS grows by little more than the
// message. Before the fix the mask was expanded first (peak RSS + >1 GiB).
TEST(Admission, OversizedMaskRefusedBeforeItIsExpanded) {
  auto server = ServerProcess::Start({"--memory-budget-bytes", std::to_string(256 * kMiB)});
  ASSERT_NE(server, nullptr);
  const v1::AttendRequest req = DensePerSequenceRequest(16384);  // 2^28 bits = 32 MiB
  ASSERT_GT(req.ByteSizeLong(), static_cast<size_t>(32 * kMiB));
  const int64_t peak_before = PeakRssBytes(server->pid());
  ASSERT_GT(peak_before, 0);
  auto stub = server->stub();
  grpc::ClientContext ctx;
  v1::AttendResponse resp;
  const auto t0 = std::chrono::steady_clock::now();
  const grpc::Status s = stub->Attend(&ctx, req, &resp);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("--memory-budget-bytes"), std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("needs"), std::string::npos) << s.error_message();
  std::printf("refused in %.3f s; peak RSS +%lld MiB\n", seconds,
              static_cast<long long>((PeakRssBytes(server->pid()) - peak_before) / kMiB));
  EXPECT_LT(seconds, 10.0);
  const int64_t growth = PeakRssBytes(server->pid()) - peak_before;
  EXPECT_LT(growth, kRssBound) << "peak RSS grew by " << growth / kMiB
                               << " MiB for a 32 MiB message";
  // Healthy afterwards.
  const golden::Case& c = GoldenCase("single_token_decode");
  grpc::ClientContext ctx2;
  v1::AttendResponse ok;
  ASSERT_TRUE(stub->Attend(&ctx2, MakeRequest(c, MaskForm::kPerSequence, true, "after"), &ok).ok());
  EXPECT_TRUE(CompareResponse(c, ok).pass());
}

// Queued requests hold their reservation: with one slow worker and a budget of about four
// requests, four of six concurrent requests are admitted (one running, three queued) and two
// are refused at once naming the admission budget, though the queue has room. When they are
// done the reservations are back and the budget admits again.
TEST(Admission, QueuedReservationsRefuseTheRequestPastTheBudget) {
  // q, k, v 1 MiB each: a cost of about 7 MiB (message 3, staging 3, out 1, mask and plan small).
  const golden::Case c = SyntheticCase(1024, 1024, 16, 16, 16, 64, 64, false, 7, /*expected=*/true);
  auto server = ServerProcess::Start({"--cpu-threads", "1", "--batch-max-tokens", "0",
                                      "--test-executor-delay-ms", "1500",
                                      "--admission-budget-bytes", std::to_string(30 * kMiB)});
  ASSERT_NE(server, nullptr);
  auto stub = server->stub();
  std::vector<std::unique_ptr<AsyncAttend>> calls;
  for (int i = 0; i < 6; ++i) {
    calls.push_back(std::make_unique<AsyncAttend>(
        stub.get(), MakeRequest(c, MaskForm::kCompact, false, "r" + std::to_string(i))));
  }
  int ok = 0, refused = 0;
  for (auto& call : calls) {
    const grpc::Status s = call->Wait();
    if (s.ok()) {
      ++ok;
      EXPECT_TRUE(CompareResponse(c, call->response()).pass());
    } else {
      ++refused;
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
      EXPECT_NE(s.error_message().find("admitted requests hold"), std::string::npos)
          << s.error_message();
      EXPECT_NE(s.error_message().find("--admission-budget-bytes"), std::string::npos);
    }
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(refused, 2);
  std::string m = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(MetricValue(m, "hbsa_admission_reserved_bytes"), 0.0);
  EXPECT_EQ(MetricValue(m, "hbsa_admission_budget_bytes"), static_cast<double>(30 * kMiB));
  EXPECT_EQ(MetricValue(m, R"(hbsa_requests_total{code="RESOURCE_EXHAUSTED",method="Attend"})"),
            2.0);
  // Released: admitted again.
  AsyncAttend again(stub.get(), MakeRequest(c, MaskForm::kCompact, false, "again"));
  ASSERT_TRUE(again.Wait().ok());
  EXPECT_TRUE(CompareResponse(c, again.response()).pass());
}

// gRPC's own per-call limit refuses a message past --max-message-bytes before the service
// sees it, and the server stays healthy; the startup log states the limits it set, resource
// quota included (admission budget + two messages).
TEST(Admission, MessageLimitAndResourceQuotaAreSet) {
  auto server = ServerProcess::Start({"--max-message-bytes", std::to_string(kMiB),
                                      "--admission-budget-bytes", std::to_string(64 * kMiB)});
  ASSERT_NE(server, nullptr);
  const golden::Case big =
      SyntheticCase(1024, 1024, 16, 16, 16, 64, 64, false, 3, /*expected=*/false);
  auto stub = server->stub();
  grpc::ClientContext ctx;
  v1::AttendResponse resp;
  const grpc::Status s =
      stub->Attend(&ctx, MakeRequest(big, MaskForm::kCompact, false, "big"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  const golden::Case& c = GoldenCase("single_token_decode");
  grpc::ClientContext ctx2;
  v1::AttendResponse ok;
  ASSERT_TRUE(stub->Attend(&ctx2, MakeRequest(c, MaskForm::kDense, false, "small"), &ok).ok());
  EXPECT_TRUE(CompareResponse(c, ok).pass());
  const std::string log = server->Log();
  EXPECT_NE(log.find("message 1048576 bytes per call, admission budget 67108864 bytes, gRPC "
                     "resource quota 69206016 bytes"),
            std::string::npos)
      << log;
  // Nothing reached the service: gRPC refused it.
  const std::string m = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(MetricValue(m, R"(hbsa_requests_total{code="OK",method="Attend"})"), 1.0);
  EXPECT_FALSE(MetricValue(m, R"(hbsa_requests_total{code="RESOURCE_EXHAUSTED",method="Attend"})")
                   .has_value());
}

}  // namespace
}  // namespace hbsa::testing
