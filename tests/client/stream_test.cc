// stream_test.cc: hbsa::client::AttendStream against a real hbsa-server (CPU backend) on
// 127.0.0.1. Every golden case over one stream, in the future form and the callback form,
// checked by hbsa::golden::Compare; the bound on requests in flight (Submit waits, TrySubmit
// refuses); a bad request failing alone with its code and message while its neighbours
// succeed; local refusals (duplicate or oversize request_id, submit after Finish); the stream's
// deadline and cancellation failing what is unanswered.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <future>
#include <set>

#include "hbsa/client.h"
#include "hbsa/golden.h"
#include "server_process.h"

namespace hbsa::client {
namespace {

using std::chrono::milliseconds;

// One fp32 sequence of 1024 rows, 4 heads, D = 64, every block on: slow enough on two CPU
// threads (about 0.5 GFLOP) that the stream is still busy with it microseconds later.
golden::Case SlowCase() {
  constexpr int64_t kRows = 1024, kHeads = 4, kDim = 64, kBlock = 64;
  golden::Case c;
  c.name = "slow";
  c.dtype = DType::kFloat32;
  c.hq = c.hk = kHeads;
  c.d = kDim;
  c.sq = c.sk = kBlock;
  c.cu_q = c.cu_k = {0, static_cast<int32_t>(kRows)};
  for (golden::NpyArray* a : {&c.q, &c.k, &c.v}) {
    a->descr = "<f4";
    a->shape = {kRows, kHeads, kDim};
    std::vector<float> x(kRows * kHeads * kDim);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 13) / 13.0f - 0.5f;
    a->data.assign(reinterpret_cast<const uint8_t*>(x.data()),
                   reinterpret_cast<const uint8_t*>(x.data() + x.size()));
  }
  c.block_mask.descr = "|u1";
  c.block_mask.shape = {kHeads, kRows / kBlock, kRows / kBlock};
  c.block_mask.data.assign(kHeads * (kRows / kBlock) * (kRows / kBlock), 1);
  // Its expected output from the float64 reference, as the golden cases' were made.
  std::vector<uint8_t> out;
  std::vector<float> lse;
  const AttentionArgs args = c.MakeArgs(&out, &lse);
  const absl::Status s = Run(Backend::kReference, args);
  EXPECT_TRUE(s.ok()) << s;
  c.out.descr = "<f4";
  c.out.shape = {kRows, kHeads, kDim};
  c.out.data = out;
  c.lse.descr = "<f4";
  c.lse.shape = {kRows, kHeads};
  c.lse.data.assign(reinterpret_cast<const uint8_t*>(lse.data()),
                    reinterpret_cast<const uint8_t*>(lse.data() + lse.size()));
  return c;
}

class StreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto s = testing::ServerProcess::Start(HBSA_SERVER_BIN);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
    cases_ = new std::vector<golden::Case>;
    for (const std::string& dir : golden::ListCaseDirs(golden::DefaultGoldenRoot())) {
      auto c = golden::LoadCase(dir);
      ASSERT_TRUE(c.ok()) << c.status();
      cases_->push_back(*std::move(c));
    }
    slow_ = new golden::Case(SlowCase());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete cases_;
    delete slow_;
  }

  // The wire request of golden case `gc` with the LSE, in the compact mask form (dense, as
  // given, when not validated: converting the mask needs a valid layout).
  static v1::AttendRequest RequestOf(const golden::Case& gc, const std::string& id,
                                     bool validate = true) {
    std::vector<uint8_t> out;
    RequestOptions ro;
    ro.mask_form = validate ? MaskForm::kCompact : MaskForm::kDense;
    ro.return_lse = true;
    ro.request_id = id;
    ro.validate = validate;
    absl::StatusOr<v1::AttendRequest> r = BuildRequest(gc.MakeArgs(&out, nullptr), ro);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : v1::AttendRequest();
  }

  static void ExpectMatches(const golden::Case& gc, const absl::StatusOr<AttendResult>& r) {
    ASSERT_TRUE(r.ok()) << gc.name << ": " << r.status();
    EXPECT_EQ(r->backend, "cpu");
    ASSERT_TRUE(r->has_lse);
    const golden::Comparison cmp = golden::Compare(gc, r->dtype, r->out.data(), r->lse.data());
    EXPECT_TRUE(cmp.pass()) << gc.name << ": " << cmp.first_failure;
    EXPECT_TRUE(cmp.lse_checked);
  }

  static testing::ServerProcess* server_;
  static std::vector<golden::Case>* cases_;
  static golden::Case* slow_;  // SlowCase(), made once
};
testing::ServerProcess* StreamTest::server_ = nullptr;
std::vector<golden::Case>* StreamTest::cases_ = nullptr;
golden::Case* StreamTest::slow_ = nullptr;

TEST_F(StreamTest, EveryGoldenCaseOverOneStreamMatches) {
  ASSERT_GE(cases_->size(), 16u);
  Client c(server_->target());
  auto stream = c.OpenStream();
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::vector<std::future<absl::StatusOr<AttendResult>>> futures;
  for (const golden::Case& gc : *cases_)
    futures.push_back((*stream)->Submit(RequestOf(gc, gc.name)));
  for (size_t i = 0; i < futures.size(); ++i) {
    absl::StatusOr<AttendResult> r = futures[i].get();
    ExpectMatches((*cases_)[i], r);
    if (r.ok()) EXPECT_EQ(r->request_id, (*cases_)[i].name);
  }
  EXPECT_TRUE((*stream)->Finish().ok());
  EXPECT_EQ((*stream)->in_flight(), 0);
}

TEST_F(StreamTest, CallbackFormStaysWithinItsBoundAndMatches) {
  Client c(server_->target());
  StreamOptions so;
  so.max_in_flight = 2;
  auto stream = c.OpenStream(so);
  ASSERT_TRUE(stream.ok()) << stream.status();
  constexpr int kRounds = 3;
  const int n = kRounds * static_cast<int>(cases_->size());
  std::vector<absl::StatusOr<AttendResult>> results(n, absl::UnknownError("not answered"));
  std::atomic<int> answered{0};
  int most_in_flight = 0;
  for (int i = 0; i < n; ++i) {
    const golden::Case& gc = (*cases_)[i % cases_->size()];
    // Empty ids: the stream assigns distinct ones.
    absl::Status s = (*stream)->Submit(RequestOf(gc, ""), [&, i](absl::StatusOr<AttendResult> r) {
      results[i] = std::move(r);
      answered.fetch_add(1);
    });
    ASSERT_TRUE(s.ok()) << s;
    most_in_flight = std::max(most_in_flight, (*stream)->in_flight());
  }
  EXPECT_LE(most_in_flight, 2);
  EXPECT_GE(most_in_flight, 1);
  ASSERT_TRUE((*stream)->Finish().ok());
  EXPECT_EQ(answered.load(), n);  // every callback ran before Finish returned
  std::set<std::string> ids;
  for (int i = 0; i < n; ++i) {
    ExpectMatches((*cases_)[i % cases_->size()], results[i]);
    if (results[i].ok()) ids.insert(results[i]->request_id);
  }
  EXPECT_EQ(static_cast<int>(ids.size()), n);
}

TEST_F(StreamTest, TrySubmitRefusesWhenFullAndSubmitWaits) {
  Client c(server_->target());
  StreamOptions so;
  so.max_in_flight = 1;
  auto stream = c.OpenStream(so);
  ASSERT_TRUE(stream.ok()) << stream.status();
  const golden::Case& slow = *slow_;
  const golden::Case& small = cases_->at(0);
  auto first = (*stream)->Submit(RequestOf(slow, "slow"));
  absl::Status refused = (*stream)->TrySubmit(RequestOf(small, "refused"), [](auto) {
    ADD_FAILURE() << "a refused request's callback ran";
  });
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_NE(refused.message().find("max_in_flight"), std::string::npos) << refused;
  // Submit waits for the slot, so the slow request is answered by the time it returns.
  auto second = (*stream)->Submit(RequestOf(small, "small"));
  EXPECT_LE((*stream)->in_flight(), 1);
  absl::StatusOr<AttendResult> r1 = first.get();
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->request_id, "slow");
  const golden::Comparison cmp = golden::Compare(slow, r1->dtype, r1->out.data(), r1->lse.data());
  EXPECT_TRUE(cmp.pass()) << cmp.first_failure;
  ExpectMatches(small, second.get());
  EXPECT_TRUE((*stream)->Finish().ok());
}

TEST_F(StreamTest, BadRequestFailsAloneWithItsStatus) {
  Client c(server_->target());
  auto stream = c.OpenStream();
  ASSERT_TRUE(stream.ok()) << stream.status();
  const golden::Case& gc = cases_->at(0);
  golden::Case bad = gc;
  bad.cu_q[0] = 5;  // "starts at 0" rule broken; sent unvalidated so the server refuses it
  auto before = (*stream)->Submit(RequestOf(gc, "before"));
  auto failed = (*stream)->Submit(RequestOf(bad, "bad", /*validate=*/false));
  v1::AttendRequest no_dtype = RequestOf(gc, "no-dtype");
  no_dtype.mutable_k()->set_dtype(v1::DTYPE_UNSPECIFIED);
  auto failed2 = (*stream)->Submit(std::move(no_dtype));
  auto after = (*stream)->Submit(RequestOf(gc, "after"));
  absl::StatusOr<AttendResult> r = failed.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("cu_seqlens_q"), std::string::npos) << r.status();
  EXPECT_EQ(r.status().message().rfind("AttendStream: ", 0), 0u) << r.status();
  EXPECT_EQ(failed2.get().status().code(), absl::StatusCode::kInvalidArgument);
  ExpectMatches(gc, before.get());
  ExpectMatches(gc, after.get());
  EXPECT_TRUE((*stream)->Finish().ok());
}

TEST_F(StreamTest, LocalRefusalsSendNothing) {
  Client c(server_->target());
  EXPECT_EQ(c.OpenStream({.max_in_flight = 0}).status().code(), absl::StatusCode::kInvalidArgument);
  StreamOptions so;
  so.max_in_flight = 4;
  auto stream = c.OpenStream(so);
  ASSERT_TRUE(stream.ok()) << stream.status();
  const golden::Case& slow = *slow_;
  auto first = (*stream)->Submit(RequestOf(slow, "same"));
  absl::StatusOr<AttendResult> dup = (*stream)->Submit(RequestOf(cases_->at(0), "same")).get();
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("already in flight"), std::string::npos) << dup.status();
  absl::StatusOr<AttendResult> longid =
      (*stream)->Submit(RequestOf(cases_->at(0), std::string(257, 'x'))).get();
  EXPECT_EQ(longid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(longid.status().message().find("request_id"), std::string::npos) << longid.status();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE((*stream)->Finish().ok());
  absl::StatusOr<AttendResult> late = (*stream)->Submit(RequestOf(cases_->at(0), "late")).get();
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
}

TEST_F(StreamTest, DeadlineFailsWhatIsUnanswered) {
  Client c(server_->target());
  StreamOptions so;
  so.timeout = milliseconds(20);
  auto stream = c.OpenStream(so);
  ASSERT_TRUE(stream.ok()) << stream.status();
  const golden::Case& slow = *slow_;
  std::vector<std::future<absl::StatusOr<AttendResult>>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back((*stream)->Submit(RequestOf(slow, "")));
  int exceeded = 0;
  for (auto& f : futures) {
    absl::StatusOr<AttendResult> r = f.get();
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
      ++exceeded;
    }
  }
  EXPECT_GT(exceeded, 0) << "four slow requests finished within 20 ms";
  EXPECT_EQ((*stream)->Finish().code(), absl::StatusCode::kDeadlineExceeded);
  // The server is still serving.
  EXPECT_EQ(*c.CheckHealth(""), ServingStatus::kServing);
}

TEST_F(StreamTest, CancelFailsWhatIsUnanswered) {
  Client c(server_->target());
  auto stream = c.OpenStream();
  ASSERT_TRUE(stream.ok()) << stream.status();
  const golden::Case& slow = *slow_;
  auto f = (*stream)->Submit(RequestOf(slow, "slow"));
  (*stream)->Cancel();
  absl::StatusOr<AttendResult> r = f.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ((*stream)->Finish().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace hbsa::client
