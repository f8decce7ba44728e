// request_test.cc: the client's request building and response parsing, without a server.
// Every golden case goes through each mask form; the wire mask is decoded here (bit order per
// attention.proto) and compared bit for bit with the kernels' MaskView of the input, so the
// three forms are shown to carry the same same-sequence mask. Plus the small tool helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "flags.h"
#include "hbsa/client.h"
#include "hbsa/golden.h"
#include "hbsa/plan.h"
#include "metrics_scrape.h"

namespace hbsa::client {
namespace {

bool Bit(const std::string& bits, int64_t n) { return (bits[n / 8] >> (n % 8)) & 1; }

// Decodes whichever mask form `req` carries into dense [Hk, Nq, Nk] bits, same-sequence
// entries only (the others are ignored by the contract).
std::vector<uint8_t> DecodeMask(const v1::AttendRequest& req, const BlockLayoutStorage& s,
                                int32_t hk_count) {
  const BlockLayout& l = s.view();
  const int64_t nq = l.num_q_blocks, nk = l.num_k_blocks;
  std::vector<uint8_t> dense(hk_count * nq * nk, 0);
  const auto& qbs = s.q_block_start();
  const auto& kbs = s.k_block_start();
  for (int32_t hk = 0; hk < hk_count; ++hk) {
    for (int32_t i = 0; i < nq; ++i) {
      const int32_t b = s.q_block_seq()[i];
      for (int32_t j = kbs[b]; j < kbs[b + 1]; ++j) {
        bool on = false;
        if (req.has_dense_mask()) {
          on = Bit(req.dense_mask().bits(), (hk * nq + i) * nk + j);
        } else if (req.has_per_sequence_mask()) {
          const int64_t nq_b = qbs[b + 1] - qbs[b], nk_b = kbs[b + 1] - kbs[b];
          on = Bit(req.per_sequence_mask().sequences(b),
                   (hk * nq_b + (i - qbs[b])) * nk_b + (j - kbs[b]));
        } else {
          const auto& m = req.compact_mask();
          const int64_t r = int64_t{hk} * nq + i;
          for (int64_t e = m.row_offsets(r); e < m.row_offsets(r + 1); ++e) on |= m.col_indices(e) == j;
        }
        dense[(hk * nq + i) * nk + j] = on;
      }
    }
  }
  return dense;
}

TEST(PackBits, LeastSignificantBitFirstWithZeroPadding) {
  const uint8_t bytes[10] = {1, 0, 0, 0, 0, 0, 0, 1, 0, 7};
  const std::string bits = PackBits(bytes, 10);
  ASSERT_EQ(bits.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(bits[0]), 0x81);
  EXPECT_EQ(static_cast<uint8_t>(bits[1]), 0x02);  // bit 9 set, pad bits 10..15 zero
}

TEST(NormalizeTarget, Forms) {
  EXPECT_EQ(NormalizeTarget("localhost:50051"), "localhost:50051");
  EXPECT_EQ(NormalizeTarget("dns:///hbsa.default.svc:50051"), "dns:///hbsa.default.svc:50051");
  EXPECT_EQ(NormalizeTarget("10.0.0.1:1,10.0.0.2:1"), "ipv4:10.0.0.1:1,10.0.0.2:1");
  EXPECT_EQ(NormalizeTarget("ipv4:10.0.0.1:1,10.0.0.2:1"), "ipv4:10.0.0.1:1,10.0.0.2:1");
  EXPECT_EQ(ParseMaskForm("per-sequence"), MaskForm::kPerSequence);
  EXPECT_FALSE(ParseMaskForm("sparse").has_value());
}

class GoldenRequestTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenRequestTest, EveryMaskFormCarriesTheSameMask) {
  absl::StatusOr<golden::Case> c = golden::LoadCase(GetParam());
  ASSERT_TRUE(c.ok()) << c.status();
  std::vector<uint8_t> out;
  const AttentionArgs args = c->MakeArgs(&out, nullptr);
  const BlockLayoutStorage storage(args);
  const MaskView view = MakeMaskView(args, storage.view());
  const int64_t nq = storage.view().num_q_blocks, nk = storage.view().num_k_blocks;
  std::vector<uint8_t> expected(c->hk * nq * nk, 0);
  for (int32_t hk = 0; hk < c->hk; ++hk)
    for (int32_t i = 0; i < nq; ++i) {
      const int32_t b = storage.q_block_seq()[i];
      for (int32_t j = storage.k_block_start()[b]; j < storage.k_block_start()[b + 1]; ++j)
        expected[(hk * nq + i) * nk + j] = view.Get(hk, i, j);
    }
  for (MaskForm form : {MaskForm::kDense, MaskForm::kPerSequence, MaskForm::kCompact}) {
    RequestOptions ro;
    ro.mask_form = form;
    ro.return_lse = true;
    ro.request_id = "r1";
    absl::StatusOr<v1::AttendRequest> req = BuildRequest(args, ro);
    ASSERT_TRUE(req.ok()) << req.status();
    EXPECT_EQ(req->q().data().size(), c->q.data.size());
    EXPECT_EQ(req->q().shape(1), c->hq);
    EXPECT_EQ(req->k().shape(1), c->hk);
    EXPECT_EQ(req->cu_seqlens_k_size(), c->batch() + 1);
    EXPECT_EQ(req->causal(), c->causal);
    EXPECT_EQ(req->has_softmax_scale(), c->scale.has_value());
    EXPECT_TRUE(req->return_lse());
    EXPECT_EQ(DecodeMask(*req, storage, c->hk), expected) << MaskFormName(form);
    if (form == MaskForm::kPerSequence) EXPECT_EQ(req->per_sequence_mask().sequences_size(), c->batch());
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenRequestTest,
                         ::testing::ValuesIn(golden::ListCaseDirs(golden::DefaultGoldenRoot())),
                         [](const auto& info) {
                           return info.param.substr(info.param.find_last_of('/') + 1);
                         });

TEST(GoldenCasesPresent, AtLeastSixteen) {
  EXPECT_GE(golden::ListCaseDirs(golden::DefaultGoldenRoot()).size(), 16u);
}

golden::Case FirstCase() {
  auto dirs = golden::ListCaseDirs(golden::DefaultGoldenRoot());
  auto c = golden::LoadCase(dirs.at(0));
  EXPECT_TRUE(c.ok());
  return *std::move(c);
}

TEST(BuildRequest, ValidatesLocallyUnlessTurnedOff) {
  golden::Case c = FirstCase();
  c.cu_q[0] = 5;  // breaks "starts at 0"
  std::vector<uint8_t> out;
  const AttentionArgs args = c.MakeArgs(&out, nullptr);
  absl::StatusOr<v1::AttendRequest> req = BuildRequest(args, {});
  ASSERT_FALSE(req.ok());
  EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(req.status().message().find("cu_seqlens_q"), std::string::npos) << req.status();
  RequestOptions raw;
  raw.validate = false;
  req = BuildRequest(args, raw);  // dense -> dense needs no layout: sent as given
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->cu_seqlens_q(0), 5);
  raw.mask_form = MaskForm::kCompact;  // a conversion needs a valid layout
  EXPECT_FALSE(BuildRequest(args, raw).ok());
}

TEST(ParseResponse, ChecksShapesAndCopiesOut) {
  golden::Case c = FirstCase();
  std::vector<uint8_t> out;
  const AttentionArgs args = c.MakeArgs(&out, nullptr);
  RequestOptions ro;
  ro.return_lse = true;
  v1::AttendRequest req = *BuildRequest(args, ro);
  v1::AttendResponse resp;
  resp.set_request_id("x");
  *resp.mutable_out() = req.q();  // same dtype and shape as out; non-trivial bytes
  resp.mutable_lse()->set_dtype(v1::DTYPE_FLOAT32);
  std::vector<float> lse(c.total_q() * c.hq, -std::numeric_limits<float>::infinity());
  resp.mutable_lse()->set_data(lse.data(), lse.size() * sizeof(float));
  absl::StatusOr<AttendResult> r = ParseResponse(req, resp);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out, req.q().data());
  EXPECT_TRUE(r->has_lse);
  EXPECT_TRUE(std::isinf(r->lse.back()));
  std::vector<uint8_t> dst(out.size(), 0xFF);
  AttentionArgs into = args;
  into.out = {dst.data(), dst.size()};
  ASSERT_TRUE(CopyToBuffers(*r, into).ok());
  EXPECT_EQ(std::string(dst.begin(), dst.end()), req.q().data());

  resp.mutable_out()->mutable_data()->pop_back();
  r = ParseResponse(req, resp);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  resp.mutable_error()->set_code(8);
  resp.mutable_error()->set_message("queue full");
  r = ParseResponse(req, resp);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace hbsa::client

namespace hbsa::tools {
namespace {

TEST(Flags, ParsesAndRejects) {
  const char* argv[] = {"x", "--target", "h:1", "--json", "--n=3", "--list", "1,2,4"};
  auto f = Flags::Parse(7, const_cast<char**>(argv), 1, {"target", "n", "list"}, {"json"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Get("target"), "h:1");
  EXPECT_TRUE(f->GetBool("json"));
  EXPECT_EQ(*f->GetInt("n", 0), 3);
  EXPECT_EQ(*f->GetIntList("list", {}), (std::vector<int64_t>{1, 2, 4}));
  const char* bad[] = {"x", "--tagret", "h:1"};
  auto g = Flags::Parse(3, const_cast<char**>(bad), 1, {"target"}, {});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("tagret"), std::string::npos);
}

TEST(Prometheus, ParsesLabelsAndSums) {
  const std::string text =
      "# HELP hbsa_requests_total x\n# TYPE hbsa_requests_total counter\n"
      "hbsa_requests_total{method=\"Attend\",code=\"OK\"} 7\n"
      "hbsa_requests_total{method=\"Attend\",code=\"INVALID_ARGUMENT\"} 2\n"
      "hbsa_requests_total{method=\"GetCapabilities\",code=\"OK\"} 1\n"
      "hbsa_stage_duration_seconds_sum{stage=\"kernel\"} 0.5\n"
      "hbsa_queue_depth 3\n";
  const auto s = ParsePrometheusText(text);
  EXPECT_EQ(s.size(), 5u);
  EXPECT_EQ(SumSamples(s, "hbsa_requests_total", {{"method", "Attend"}}), 9);
  EXPECT_EQ(SumSamples(s, "hbsa_requests_total", {{"code", "OK"}}), 8);
  EXPECT_EQ(SumSamples(s, "hbsa_stage_duration_seconds_sum", {{"stage", "kernel"}}), 0.5);
  EXPECT_EQ(SumSamples(s, "hbsa_queue_depth"), 3);
}

}  // namespace
}  // namespace hbsa::tools
