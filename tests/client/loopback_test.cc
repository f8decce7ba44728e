// loopback_test.cc: the C++ client against a real hbsa-server (CPU backend) on 127.0.0.1.
// Every golden case in every mask form with the LSE, checked by hbsa::golden::Compare; the
// asynchronous calls; health and capabilities; errors with their codes and messages; the retry
// policy (UNAVAILABLE retried with backoff, DEADLINE_EXCEEDED and INVALID_ARGUMENT not); and
// round-robin load balancing over two servers named by one ipv4: target.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <future>

#include "hbsa/client.h"
#include "hbsa/golden.h"
#include "metrics_scrape.h"
#include "server_process.h"

namespace hbsa::client {
namespace {

using std::chrono::milliseconds;

class LoopbackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = testing::ServerProcess::Start(HBSA_SERVER_BIN);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static testing::ServerProcess* server_;
};
testing::ServerProcess* LoopbackTest::server_ = nullptr;

std::vector<golden::Case> AllCases() {
  std::vector<golden::Case> cases;
  for (const std::string& dir : golden::ListCaseDirs(golden::DefaultGoldenRoot())) {
    auto c = golden::LoadCase(dir);
    EXPECT_TRUE(c.ok()) << c.status();
    if (c.ok()) cases.push_back(*std::move(c));
  }
  return cases;
}

TEST_F(LoopbackTest, HealthAndCapabilities) {
  Client c(server_->target());
  EXPECT_EQ(*c.CheckHealth(""), ServingStatus::kServing);
  EXPECT_EQ(*c.CheckHealth("hbsa.v1.Attention"), ServingStatus::kServing);
  absl::StatusOr<v1::Capabilities> caps = c.GetCapabilities();
  ASSERT_TRUE(caps.ok()) << caps.status();
  EXPECT_EQ(caps->backend(), "cpu");
  EXPECT_EQ(caps->mask_formats_size(), 3);
  EXPECT_GT(caps->limits().max_message_bytes(), 0);
}

TEST_F(LoopbackTest, EveryGoldenCaseInEveryMaskFormMatches) {
  Client c(server_->target());
  const auto cases = AllCases();
  ASSERT_GE(cases.size(), 16u);
  for (const golden::Case& gc : cases) {
    std::vector<uint8_t> out;
    std::vector<float> lse;
    AttentionArgs args = gc.MakeArgs(&out, &lse);
    for (MaskForm form : {MaskForm::kDense, MaskForm::kPerSequence, MaskForm::kCompact}) {
      SCOPED_TRACE(gc.name + " " + std::string(MaskFormName(form)));
      std::fill(lse.begin(), lse.end(), std::nanf(""));  // unwritten elements fail
      RequestOptions ro;
      ro.mask_form = form;
      ro.return_lse = true;
      ro.request_id = gc.name;
      absl::StatusOr<AttendResult> r = c.Attend(args, ro);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->request_id, gc.name);
      EXPECT_EQ(r->backend, "cpu");
      EXPECT_GT(r->server_timings.total_seconds(), 0);
      ASSERT_TRUE(CopyToBuffers(*r, args).ok());
      const golden::Comparison cmp = golden::Compare(gc, gc.dtype, out.data(), lse.data());
      EXPECT_TRUE(cmp.pass()) << cmp.first_failure;
      EXPECT_TRUE(cmp.lse_checked);
    }
  }
}

TEST_F(LoopbackTest, AsyncCallsCompleteAndMatch) {
  Client c(server_->target());
  const auto cases = AllCases();
  std::vector<std::future<absl::StatusOr<AttendResult>>> futures;
  for (const golden::Case& gc : cases) {
    std::vector<uint8_t> out;
    RequestOptions ro;
    ro.mask_form = MaskForm::kCompact;
    ro.return_lse = true;
    auto req = BuildRequest(gc.MakeArgs(&out, nullptr), ro);
    ASSERT_TRUE(req.ok()) << req.status();
    futures.push_back(c.AttendFuture(std::make_shared<const v1::AttendRequest>(*std::move(req))));
  }
  for (size_t i = 0; i < futures.size(); ++i) {
    absl::StatusOr<AttendResult> r = futures[i].get();
    ASSERT_TRUE(r.ok()) << cases[i].name << ": " << r.status();
    const golden::Comparison cmp = golden::Compare(cases[i], r->dtype, r->out.data(), r->lse.data());
    EXPECT_TRUE(cmp.pass()) << cases[i].name << ": " << cmp.first_failure;
  }
}

TEST_F(LoopbackTest, InvalidArgumentIsNotRetriedAndServerStaysHealthy) {
  Client c(server_->target());
  golden::Case gc = AllCases().at(0);
  std::vector<uint8_t> out;
  RequestOptions raw;
  raw.validate = false;
  golden::Case bad = gc;
  bad.cu_q[0] = 5;  // "starts at 0" rule broken
  auto req = BuildRequest(bad.MakeArgs(&out, nullptr), raw);
  ASSERT_TRUE(req.ok());
  absl::StatusOr<AttendResult> r = c.Attend(*req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cu_seqlens_q"), std::string::npos) << r.status();
  EXPECT_EQ(r.status().message().rfind("Attend: ", 0), 0u) << r.status();

  v1::AttendRequest wrong_dtype = *BuildRequest(gc.MakeArgs(&out, nullptr), {});
  wrong_dtype.mutable_k()->set_dtype(v1::DTYPE_UNSPECIFIED);
  r = c.Attend(wrong_dtype);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  v1::AttendRequest short_q = *BuildRequest(gc.MakeArgs(&out, nullptr), {});
  short_q.mutable_q()->mutable_data()->resize(short_q.q().data().size() - 1);
  r = c.Attend(short_q);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("q"), std::string::npos);

  // Still healthy and answering.
  EXPECT_EQ(*c.CheckHealth(""), ServingStatus::kServing);
  r = c.Attend(*BuildRequest(gc.MakeArgs(&out, nullptr), {}));
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempts, 1);
}

// One fp16 sequence of 2048 rows, 4 heads, D = 64, every block on: 3 MiB of inputs and about
// 4 GFLOP, so that a 1 ms deadline expires on most tries whatever size the golden cases have.
golden::Case LargeRequestCase() {
  constexpr int64_t kRows = 2048, kHeads = 4, kDim = 64, kBlock = 64;
  golden::Case c;
  c.name = "large";
  c.dtype = DType::kFloat16;
  c.hq = c.hk = kHeads;
  c.d = kDim;
  c.sq = c.sk = kBlock;
  c.cu_q = c.cu_k = {0, static_cast<int32_t>(kRows)};
  for (golden::NpyArray* a : {&c.q, &c.k, &c.v}) {
    a->descr = "<f2";
    a->shape = {kRows, kHeads, kDim};
    a->data.resize(kRows * kHeads * kDim * 2);
    for (size_t i = 0; i < a->data.size(); i += 2) {  // +1.0 and -1.0 in turn
      a->data[i] = 0x00;
      a->data[i + 1] = (i / 2) % 3 == 0 ? 0xbc : 0x3c;
    }
  }
  c.block_mask.descr = "|u1";
  c.block_mask.shape = {kHeads, kRows / kBlock, kRows / kBlock};
  c.block_mask.data.assign(kHeads * (kRows / kBlock) * (kRows / kBlock), 1);
  return c;
}

TEST_F(LoopbackTest, DeadlineExceededIsNotRetried) {
  Client c(server_->target());
  const golden::Case gc = LargeRequestCase();
  std::vector<uint8_t> out;
  auto req = BuildRequest(gc.MakeArgs(&out, nullptr), {});
  ASSERT_TRUE(req.ok());
  CallOptions call;
  call.timeout = milliseconds(1);
  call.retry.initial_backoff = milliseconds(500);
  const auto t0 = std::chrono::steady_clock::now();
  int exceeded = 0;
  for (int i = 0; i < 50 && exceeded < 5; ++i) {
    absl::StatusOr<AttendResult> r = c.Attend(*req, call);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
      ++exceeded;
    }
  }
  EXPECT_GT(exceeded, 0) << "a 1 ms deadline never expired";
  // No retry means no 500 ms backoff.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds(2500));
}

TEST(Retry, UnavailableIsRetriedWithBackoffThenReported) {
  // A port bound but never listening (connections are refused), held for the rest of the
  // process: were it freed, a later server could get it, and gRPC's process-wide subchannel
  // for this address would still be backing off from these failures.
  static const int dead_port = [] {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    return static_cast<int>(ntohs(a.sin_port));
  }();
  const int port = dead_port;
  Client c(absl::StrCat("127.0.0.1:", port));
  golden::Case gc = AllCases().at(0);
  std::vector<uint8_t> out;
  auto req = BuildRequest(gc.MakeArgs(&out, nullptr), {});
  ASSERT_TRUE(req.ok());
  CallOptions once;
  once.retry.max_attempts = 1;
  CallOptions thrice;
  thrice.retry.max_attempts = 3;
  thrice.retry.initial_backoff = milliseconds(200);  // waits 200 and 400 ms, +-20%
  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<AttendResult> r = c.Attend(*req, once);
  const auto single = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  t0 = std::chrono::steady_clock::now();
  r = c.Attend(*req, thrice);
  const auto retried = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_GE(retried - single, milliseconds(450));
  // Asynchronous path: same policy through the alarm.
  t0 = std::chrono::steady_clock::now();
  r = c.AttendFuture(std::make_shared<const v1::AttendRequest>(*req), thrice).get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(450));
}

TEST(LoadBalancing, RoundRobinOverTwoServers) {
  auto a = testing::ServerProcess::Start(HBSA_SERVER_BIN);
  auto b = testing::ServerProcess::Start(HBSA_SERVER_BIN);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  // A bare comma-separated list becomes an ipv4: target with round_robin.
  // Own connections: another test's server may have had one of these ports, and the shared
  // pool's connection to it would still be backing off.
  ChannelOptions opts;
  opts.local_subchannel_pool = true;
  Client c(absl::StrCat((*a)->target(), ",", (*b)->target()), opts);
  golden::Case gc = AllCases().at(0);
  std::vector<uint8_t> out;
  auto req = BuildRequest(gc.MakeArgs(&out, nullptr), {});
  ASSERT_TRUE(req.ok());
  CallOptions call;
  call.wait_for_ready = true;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(c.Attend(*req, call).ok());
  for (auto* s : {a->get(), b->get()}) {
    auto body = tools::HttpGet(s->metrics_url(), milliseconds(5000));
    ASSERT_TRUE(body.ok()) << body.status();
    const double n = tools::SumSamples(tools::ParsePrometheusText(*body), "hbsa_requests_total",
                                       {{"method", "Attend"}});
    EXPECT_GE(n, 2) << s->target() << " got too few of the 20 calls (" << (*a)->target() << ", " << (*b)->target() << ")";
  }
}

}  // namespace
}  // namespace hbsa::client
