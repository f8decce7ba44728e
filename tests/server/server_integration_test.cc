// tests/server/server_integration_test.cc: hbsa-server on loopback (CPU backend), driven with
// the generated hbsa.v1 stubs: every golden case through Attend and AttendStream, the three
// mask forms, LSE, malformed requests, capabilities.
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server_harness.h"

namespace hbsa::testing {
namespace {

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = ServerProcess::Start({"--cpu-threads", "2", "--stream-max-inflight", "4"}).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "hbsa-server did not become SERVING"; }

  static grpc::Status Attend(const v1::AttendRequest& req, v1::AttendResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return server_->stub()->Attend(&ctx, req, resp);
  }

  static ServerProcess* server_;
};
ServerProcess* ServerTest::server_ = nullptr;

TEST_F(ServerTest, GoldenCasesLoad) {
  EXPECT_GE(GoldenCases().size(), 16u);
  EXPECT_EQ(GoldenCases().size(), golden::ListCaseDirs(golden::DefaultGoldenRoot()).size());
}

TEST_F(ServerTest, EveryGoldenCaseThroughAttend) {
  for (const golden::Case& c : GoldenCases()) {
    v1::AttendResponse resp;
    const grpc::Status s = Attend(MakeRequest(c, MaskForm::kDense, true, c.name), &resp);
    ASSERT_TRUE(s.ok()) << c.name << ": " << s.error_message();
    EXPECT_EQ(resp.request_id(), c.name);
    EXPECT_EQ(resp.backend(), "cpu");
    EXPECT_EQ(resp.device(), -1);
    ASSERT_TRUE(resp.has_lse()) << c.name;
    const golden::Comparison cmp = CompareResponse(c, resp);
    EXPECT_TRUE(cmp.lse_checked) << c.name;
    EXPECT_TRUE(cmp.pass()) << c.name << ": " << cmp.first_failure;
    EXPECT_GT(resp.timings().total_seconds(), 0) << c.name;
    EXPECT_GE(resp.timings().total_seconds(), resp.timings().kernel_seconds()) << c.name;
    std::printf("[attend] %-28s max|out err| %.3g  max|lse err| %.3g\n", c.name.c_str(),
                cmp.max_abs_err_out, cmp.max_abs_err_lse);
  }
}

TEST_F(ServerTest, WithoutLseNoLseIsReturned) {
  const golden::Case& c = GoldenCase("readme_example_causal");
  v1::AttendResponse resp;
  ASSERT_TRUE(Attend(MakeRequest(c, MaskForm::kDense, false, "x"), &resp).ok());
  EXPECT_FALSE(resp.has_lse());
  EXPECT_TRUE(CompareResponse(c, resp).pass());
}

TEST_F(ServerTest, EveryGoldenCaseThroughOneStream) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto stub = server_->stub();
  auto stream = stub->AttendStream(&ctx);
  // Writer thread: every case, twice (more requests than the stream's in-flight limit of 4, so
  // back-pressure is exercised), while this thread reads.
  std::map<std::string, const golden::Case*> by_id;
  std::vector<v1::AttendRequest> requests;
  for (int round = 0; round < 2; ++round) {
    for (const golden::Case& c : GoldenCases()) {
      const std::string id = c.name + "#" + std::to_string(round);
      by_id[id] = &c;
      requests.push_back(MakeRequest(c, round == 0 ? MaskForm::kCompact : MaskForm::kPerSequence,
                                     true, id));
    }
  }
  std::thread writer([&] {
    for (const auto& r : requests) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  });
  v1::AttendResponse resp;
  size_t answered = 0;
  while (stream->Read(&resp)) {
    ++answered;
    auto it = by_id.find(resp.request_id());
    ASSERT_NE(it, by_id.end()) << "unknown id " << resp.request_id();
    EXPECT_FALSE(resp.has_error()) << resp.request_id() << ": " << resp.error().message();
    const golden::Comparison cmp = CompareResponse(*it->second, resp);
    EXPECT_TRUE(cmp.pass()) << resp.request_id() << ": " << cmp.first_failure;
    by_id.erase(it);
  }
  writer.join();
  const grpc::Status s = stream->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(answered, requests.size());
  EXPECT_TRUE(by_id.empty());
}

TEST_F(ServerTest, AllMaskFormsGiveTheSameOutput) {
  for (const golden::Case& c : GoldenCases()) {
    std::vector<std::string> outs, lses;
    for (MaskForm f : {MaskForm::kDense, MaskForm::kPerSequence, MaskForm::kCompact}) {
      v1::AttendResponse resp;
      const grpc::Status s = Attend(MakeRequest(c, f, true, MaskFormName(f)), &resp);
      ASSERT_TRUE(s.ok()) << c.name << " " << MaskFormName(f) << ": " << s.error_message();
      EXPECT_TRUE(CompareResponse(c, resp).pass()) << c.name << " " << MaskFormName(f);
      outs.push_back(resp.out().data());
      lses.push_back(resp.lse().data());
    }
    // Same computation whatever the wire form: bit-identical results.
    EXPECT_EQ(outs[0], outs[1]) << c.name << ": dense vs per_sequence";
    EXPECT_EQ(outs[0], outs[2]) << c.name << ": dense vs compact";
    EXPECT_EQ(lses[0], lses[1]) << c.name;
    EXPECT_EQ(lses[0], lses[2]) << c.name;
  }
}

struct Malformed {
  const char* what;
  MaskForm form;
  std::function<void(v1::AttendRequest*)> mutate;
  grpc::StatusCode code;
  const char* field;  // must appear in the message
};

// Mutations of a valid request of the fp32 case d16_small_blocks (B = 3, Hq = 8, Hk = 2,
// D = 16, mask [2, 9, 5]).
std::vector<Malformed> MalformedKinds() {
  using C = grpc::StatusCode;
  const C kInvalid = C::INVALID_ARGUMENT;
  return {
      {"q dtype unspecified", MaskForm::kDense, [](auto* r) { r->mutable_q()->set_dtype(v1::DTYPE_UNSPECIFIED); }, kInvalid, "q.dtype"},
      {"k dtype differs", MaskForm::kDense, [](auto* r) { r->mutable_k()->set_dtype(v1::DTYPE_FLOAT16); }, kInvalid, "k.dtype"},
      {"v dtype differs", MaskForm::kDense, [](auto* r) { r->mutable_v()->set_dtype(v1::DTYPE_BFLOAT16); }, kInvalid, "v.dtype"},
      {"q rank 2", MaskForm::kDense, [](auto* r) { r->mutable_q()->mutable_shape()->RemoveLast(); }, kInvalid, "q.shape"},
      {"k negative dim", MaskForm::kDense, [](auto* r) { r->mutable_k()->set_shape(0, -3); }, kInvalid, "k.shape[0]"},
      {"v shape differs from k", MaskForm::kDense, [](auto* r) { r->mutable_v()->set_shape(1, 1); }, kInvalid, "v.shape"},
      {"k head dim differs", MaskForm::kDense, [](auto* r) { r->mutable_k()->set_shape(2, 8); r->mutable_v()->set_shape(2, 8); }, kInvalid, "k.shape[2]"},
      {"q data short", MaskForm::kDense, [](auto* r) { r->mutable_q()->mutable_data()->pop_back(); }, kInvalid, "q.data"},
      {"v data long", MaskForm::kDense, [](auto* r) { r->mutable_v()->mutable_data()->append("xy"); }, kInvalid, "v.data"},
      {"cu_seqlens_q empty", MaskForm::kDense, [](auto* r) { r->clear_cu_seqlens_q(); }, kInvalid, "cu_seqlens_q"},
      {"cu_seqlens_k count differs", MaskForm::kDense, [](auto* r) { r->mutable_cu_seqlens_k()->RemoveLast(); }, kInvalid, "cu_seqlens_k"},
      {"cu_seqlens_q not 0-based", MaskForm::kDense, [](auto* r) { r->set_cu_seqlens_q(0, 1); }, kInvalid, "cu_seqlens_q"},
      {"cu_seqlens_k decreasing", MaskForm::kDense, [](auto* r) { r->set_cu_seqlens_k(1, r->cu_seqlens_k(2) + 1); }, kInvalid, "cu_seqlens_k"},
      {"cu_seqlens_q last != total_q", MaskForm::kDense, [](auto* r) { r->set_cu_seqlens_q(r->cu_seqlens_q_size() - 1, 5); }, kInvalid, "cu_seqlens_q"},
      {"q_block_size 0", MaskForm::kDense, [](auto* r) { r->set_q_block_size(0); }, kInvalid, "q_block_size"},
      {"k_block_size negative", MaskForm::kDense, [](auto* r) { r->set_k_block_size(-16); }, kInvalid, "k_block_size"},
      {"Hq not a multiple of Hk", MaskForm::kDense,
       [](auto* r) {
         const int64_t rows = r->q().shape(0), d = r->q().shape(2);
         r->mutable_q()->set_shape(1, 3);
         r->mutable_q()->mutable_data()->resize(static_cast<size_t>(rows * 3 * d * 4), '\x3c');
       }, kInvalid, "q.shape[1]"},
      {"head dim past the limit", MaskForm::kDense,
       [](auto* r) {
         for (v1::Tensor* t : {r->mutable_q(), r->mutable_k(), r->mutable_v()}) {
           t->set_shape(2, 300);
           t->mutable_data()->resize(static_cast<size_t>(t->shape(0) * t->shape(1) * 300 * 4), '\x3c');
         }
       }, kInvalid, "q.shape[2]"},
      {"softmax_scale NaN", MaskForm::kDense, [](auto* r) { r->set_softmax_scale(std::nanf("")); }, kInvalid, "softmax_scale"},
      {"no mask", MaskForm::kDense, [](auto* r) { r->clear_dense_mask(); }, kInvalid, "block_mask"},
      {"dense shape wrong", MaskForm::kDense, [](auto* r) { r->mutable_dense_mask()->set_shape(1, 3); }, kInvalid, "dense_mask.shape"},
      {"dense bits short", MaskForm::kDense, [](auto* r) { r->mutable_dense_mask()->mutable_bits()->pop_back(); }, kInvalid, "dense_mask.bits"},
      {"dense pad bits set", MaskForm::kDense,
       [](auto* r) {
         const auto& sh = r->dense_mask().shape();
         const int64_t n = sh[0] * sh[1] * sh[2];  // the case has n % 8 != 0 (checked below)
         r->mutable_dense_mask()->mutable_bits()->back() |= static_cast<char>(1 << (n % 8));
       }, kInvalid, "dense_mask.bits"},
      {"per-sequence count wrong", MaskForm::kPerSequence, [](auto* r) { r->mutable_per_sequence_mask()->mutable_sequences()->RemoveLast(); }, kInvalid, "per_sequence_mask.sequences"},
      {"per-sequence entry size wrong", MaskForm::kPerSequence, [](auto* r) { r->mutable_per_sequence_mask()->mutable_sequences(1)->append("\x01"); }, kInvalid, "per_sequence_mask.sequences[1]"},
      {"compact row_offsets size", MaskForm::kCompact, [](auto* r) { r->mutable_compact_mask()->mutable_row_offsets()->RemoveLast(); }, kInvalid, "compact_mask.row_offsets"},
      {"compact col out of range", MaskForm::kCompact, [](auto* r) { r->mutable_compact_mask()->set_col_indices(0, 100000); }, kInvalid, "compact_mask.col_indices"},
      {"compact cols not increasing", MaskForm::kCompact,
       [](auto* r) {
         auto* m = r->mutable_compact_mask();
         m->set_col_indices(1, m->col_indices(0));
       }, kInvalid, "compact_mask.col_indices"},
      {"shape past the size limit", MaskForm::kDense, [](auto* r) { r->mutable_q()->set_shape(0, int64_t{1} << 40); }, C::RESOURCE_EXHAUSTED, "q.shape"},
  };
}

TEST_F(ServerTest, MalformedRequestsAreRefusedAndTheServerStaysHealthy) {
  const golden::Case& c = GoldenCase("d16_small_blocks");
  ASSERT_FALSE(c.name.empty());
  ASSERT_EQ(c.dtype, DType::kFloat32);
  ASSERT_NE(c.block_mask.NumElements() % 8, 0) << "the pad-bit case needs a partial last byte";
  const std::vector<Malformed> kinds = MalformedKinds();
  EXPECT_GE(kinds.size(), 20u);
  for (const Malformed& m : kinds) {
    v1::AttendRequest bad = MakeRequest(c, m.form, true, m.what);
    m.mutate(&bad);
    v1::AttendResponse resp;
    const grpc::Status s = Attend(bad, &resp);
    EXPECT_EQ(s.error_code(), m.code) << m.what << ": " << s.error_message();
    std::printf("[malformed] %-30s -> %d %s\n", m.what, static_cast<int>(s.error_code()),
                s.error_message().c_str());
    EXPECT_NE(s.error_message().find(m.field), std::string::npos)
        << m.what << ": message does not name " << m.field << ": " << s.error_message();
    // The next valid request still succeeds.
    v1::AttendResponse ok;
    const grpc::Status good = Attend(MakeRequest(c, m.form, true, "valid"), &ok);
    ASSERT_TRUE(good.ok()) << "after " << m.what << ": " << good.error_message();
    EXPECT_TRUE(CompareResponse(c, ok).pass()) << "after " << m.what;
  }
  EXPECT_EQ(CheckHealth(server_->channel(), ""), Health::kServing);
}

TEST_F(ServerTest, MalformedRequestInAStreamGetsAnErrorAndTheStreamContinues) {
  const golden::Case& c = GoldenCase("single_token_decode");
  grpc::ClientContext ctx;
  auto stub = server_->stub();
  auto stream = stub->AttendStream(&ctx);
  v1::AttendRequest bad = MakeRequest(c, MaskForm::kDense, false, "bad");
  bad.set_q_block_size(0);
  ASSERT_TRUE(stream->Write(MakeRequest(c, MaskForm::kDense, false, "first")));
  ASSERT_TRUE(stream->Write(bad));
  ASSERT_TRUE(stream->Write(MakeRequest(c, MaskForm::kCompact, false, "last")));
  stream->WritesDone();
  std::map<std::string, v1::AttendResponse> got;
  v1::AttendResponse resp;
  while (stream->Read(&resp)) got[resp.request_id()] = resp;
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got["bad"].error().code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(got["bad"].error().message().find("q_block_size"), std::string::npos);
  EXPECT_FALSE(got["bad"].has_out());
  EXPECT_TRUE(CompareResponse(c, got["first"]).pass());
  EXPECT_TRUE(CompareResponse(c, got["last"]).pass());
}

TEST_F(ServerTest, Capabilities) {
  grpc::ClientContext ctx;
  v1::Capabilities caps;
  ASSERT_TRUE(server_->stub()->GetCapabilities(&ctx, v1::GetCapabilitiesRequest(), &caps).ok());
  EXPECT_EQ(caps.backend(), "cpu");
  EXPECT_FALSE(caps.server_version().empty());
  EXPECT_EQ(caps.dtypes_size(), 3);
  EXPECT_EQ(caps.mask_formats_size(), 3);
  EXPECT_EQ(caps.limits().max_head_dim(), 256);
  EXPECT_EQ(caps.limits().max_queue_length(), 256);
  EXPECT_EQ(caps.limits().max_message_bytes(), 536870912);
  EXPECT_GT(caps.limits().memory_budget_bytes(), 0);
  EXPECT_TRUE(caps.devices().empty());
}

TEST_F(ServerTest, HealthIsServingForBothServiceNames) {
  EXPECT_EQ(CheckHealth(server_->channel(), ""), Health::kServing);
  EXPECT_EQ(CheckHealth(server_->channel(), "hbsa.v1.Attention"), Health::kServing);
}

}  // namespace
}  // namespace hbsa::testing
