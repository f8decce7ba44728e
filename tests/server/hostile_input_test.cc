// tests/server/hostile_input_test.cc: requests built to break the validation boundary
// (translate.cc + hbsa::Validate), each one a regression test for a finding of issue 12 or a
// crash found by the fuzzers (tests/fuzz/). Pure: no process, no network; the loopback versions
// of the worst ones are in hostile_input_loopback_test.cc.
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hbsa/attention.h"
#include "request_id.h"
#include "translate.h"
#include "warmup.h"

namespace hbsa::server {
namespace {

const TranslateLimits kLimits{536870912, int64_t{4} << 30};

void SetFloat32(v1::Tensor* t, std::vector<int64_t> shape, const std::vector<float>& values) {
  t->set_dtype(v1::DTYPE_FLOAT32);
  t->clear_shape();
  for (int64_t d : shape) t->add_shape(d);
  t->set_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
}

// The request of issue 12 finding 1: fp32, one sequence of 2 query rows and 1 key row, blocks
// 1 x 1, 1/1 heads, D 1, compact mask row_offsets [0, middle, 1], col_indices [0].
v1::AttendRequest TwoRowCompactRequest(int64_t middle) {
  v1::AttendRequest r;
  SetFloat32(r.mutable_q(), {2, 1, 1}, {1.0f, 2.0f});
  SetFloat32(r.mutable_k(), {1, 1, 1}, {1.0f});
  SetFloat32(r.mutable_v(), {1, 1, 1}, {3.0f});
  for (int x : {0, 2}) r.add_cu_seqlens_q(x);
  for (int x : {0, 1}) r.add_cu_seqlens_k(x);
  r.set_q_block_size(1);
  r.set_k_block_size(1);
  for (int64_t x : {int64_t{0}, middle, int64_t{1}}) r.mutable_compact_mask()->add_row_offsets(x);
  r.mutable_compact_mask()->add_col_indices(0);
  return r;
}

TEST(HostileTranslate, CompactRowOffsetsMiddleEntryPastNnzIsRefused) {
  for (int64_t middle : {int64_t{4}, int64_t{100}, int64_t{1} << 40,
                         std::numeric_limits<int64_t>::max()}) {
    SCOPED_TRACE(middle);
    absl::StatusOr<std::unique_ptr<TranslatedRequest>> t =
        Translate(TwoRowCompactRequest(middle), kLimits);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("compact_mask.row_offsets entry 1"), std::string::npos)
        << t.status();
  }
  // The valid neighbours still pass: [0, 0, 1] and [0, 1, 1].
  for (int64_t middle : {0, 1}) {
    absl::StatusOr<std::unique_ptr<TranslatedRequest>> t =
        Translate(TwoRowCompactRequest(middle), kLimits);
    ASSERT_TRUE(t.ok()) << t.status();
  }
}

// Issue 12 finding 2: a dense mask past 2^24 entries is converted to CSR (heuristics.h); the
// converted mask was never marked compact, so every such request was refused with "got [0, 0,
// 0]". B = 4097 sequences of one query and one key row, blocks 1 x 1: Nq = Nk = 4097, so Hk *
// Nq * Nk = 16785409 > 2^24 entries (2 MB of bits), but only 4097 in-sequence pairs to compute.
v1::AttendRequest LargeDenseRequest(int64_t* entries) {
  constexpr int kB = 4097;
  v1::AttendRequest r;
  std::vector<float> q(kB), k(kB), v(kB);
  for (int i = 0; i < kB; ++i) {
    q[i] = 0.5f;
    k[i] = 0.25f;
    v[i] = static_cast<float>(i % 97) - 48.0f;
  }
  SetFloat32(r.mutable_q(), {kB, 1, 1}, q);
  SetFloat32(r.mutable_k(), {kB, 1, 1}, k);
  SetFloat32(r.mutable_v(), {kB, 1, 1}, v);
  for (int i = 0; i <= kB; ++i) {
    r.add_cu_seqlens_q(i);
    r.add_cu_seqlens_k(i);
  }
  r.set_q_block_size(1);
  r.set_k_block_size(1);
  r.set_return_lse(true);
  const int64_t n = int64_t{kB} * kB;
  *entries = n;
  std::string bits(static_cast<size_t>((n + 7) / 8), '\0');
  for (int64_t i = 0; i < kB; ++i) {
    // Every in-sequence pair (i, i) on, plus a cross-sequence bit in each row that must be
    // ignored.
    for (int64_t j : {i, (i + 1) % kB}) {
      const int64_t bit = i * kB + j;
      bits[static_cast<size_t>(bit >> 3)] |= static_cast<char>(1 << (bit & 7));
    }
  }
  v1::DenseBlockMask* m = r.mutable_dense_mask();
  for (int64_t d : {int64_t{1}, int64_t{kB}, int64_t{kB}}) m->add_shape(d);
  m->set_bits(std::move(bits));
  return r;
}

TEST(HostileTranslate, DenseMaskPast2To24EntriesIsAcceptedAsCompact) {
  int64_t entries = 0;
  const v1::AttendRequest r = LargeDenseRequest(&entries);
  ASSERT_GT(entries, int64_t{1} << 24);
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> t = Translate(r, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->mask_form, "dense");
  EXPECT_EQ((*t)->args.mask_format, MaskFormat::kCompact);
  EXPECT_EQ((*t)->col_indices.size(), 4097u);  // the cross-sequence bits are dropped

  // And it computes: every row sees its one key, so out = v and lse = q * k * scale (D = 1).
  TranslatedRequest& tr = **t;
  std::vector<float> out(4097, std::nanf("")), lse(4097, std::nanf(""));
  tr.args.out = {out.data(), out.size() * 4};
  tr.args.lse = {lse.data(), lse.size() * 4};
  ASSERT_TRUE(hbsa::Run(Backend::kCpu, tr.args).ok());
  for (int i = 0; i < 4097; ++i) {
    ASSERT_EQ(out[i], static_cast<float>(i % 97) - 48.0f) << i;
    ASSERT_FLOAT_EQ(lse[i], 0.125f) << i;
  }
}

// Issue 12 finding 7: request_id is length-limited, and the response-size check counts it.
TEST(HostileTranslate, RequestIdPastTheLimitIsRefusedNamingTheField) {
  v1::AttendRequest r = MakeWarmupRequest();
  r.set_request_id(std::string(kMaxRequestIdBytes, 'a'));
  ASSERT_TRUE(Translate(r, kLimits).ok());
  r.set_request_id(std::string(kMaxRequestIdBytes + 1, 'a'));
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> t = Translate(r, kLimits);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("request_id must be at most 256 bytes; got 257"),
            std::string::npos)
      << t.status();
}

TEST(HostileTranslate, ResponseSizeCheckCountsTheRequestId) {
  v1::AttendRequest r = MakeWarmupRequest();
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> t = Translate(r, kLimits);
  ASSERT_TRUE(t.ok()) << t.status();
  // A limit the response fits exactly without an id (out + lse + the fixed overhead).
  const int64_t exact = (*t)->out_bytes + (*t)->lse_bytes + 4096;
  r.set_request_id("");
  EXPECT_TRUE(Translate(r, TranslateLimits{exact, 0}).ok());
  r.set_request_id(std::string(200, 'x'));
  t = Translate(r, TranslateLimits{exact, 0});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(t.status().message().find("request_id 200"), std::string::npos) << t.status();
  EXPECT_TRUE(Translate(r, TranslateLimits{exact + 200, 0}).ok());
}

TEST(RequestId, LogFormIsOneEscapedLineAndBounded) {
  EXPECT_EQ(LogSafeRequestId("abc-123"), "abc-123");
  const std::string forged = "x\" failed: OK\n[info] forged line";
  const std::string logged = LogSafeRequestId(forged);
  EXPECT_EQ(logged.find('\n'), std::string::npos) << logged;
  EXPECT_EQ(logged, "x\\\" failed: OK\\n[info] forged line");  // quote and newline escaped
  EXPECT_EQ(LogSafeRequestId(std::string("\x01\xff", 2)), "\\x01\\xff");
  const std::string huge(50 << 20, 'z');
  const std::string cut = LogSafeRequestId(huge);
  EXPECT_LT(cut.size(), 400u);
  EXPECT_NE(cut.find("(52428800 bytes)"), std::string::npos) << cut.substr(cut.size() - 40);
  EXPECT_EQ(EchoedRequestId(huge), "");
  EXPECT_EQ(EchoedRequestId("id-1"), "id-1");
}

}  // namespace
}  // namespace hbsa::server
