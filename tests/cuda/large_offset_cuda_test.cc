// large_offset_cuda_test.cc: 64-bit offsets. q and out hold 66000 x 128 x 256 bf16 elements
// (2.16e9 > 2^31, 4.3 GB each), so every element of the second sequence lies past 2^31. The
// second sequence is checked against the float64 reference computed on that sequence alone
// (three of its heads; Hk = 1, so each head is independent); rows of the first are spot-checked
// to be finite and written. Needs about 9 GB of device memory and 18 GB of host memory.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "cuda_test_util.h"
#include "gtest/gtest.h"
#include "hbsa/golden.h"
#include "hbsa/numeric.h"

namespace hbsa::testing {
namespace {

TEST(LargeOffsetCuda, SecondSequencePast2To31Elements) {
  constexpr int32_t kHq = 128, kD = 256, kSq = 64, kSk = 64;
  const std::vector<int32_t> lq = {65000, 1000}, lk = {64, 300};
  const std::vector<int32_t> cu_q = {0, lq[0], lq[0] + lq[1]};
  const std::vector<int32_t> cu_k = {0, lk[0], lk[0] + lk[1]};
  const int64_t total_q = cu_q[2], total_k = cu_k[2];
  ASSERT_GT(total_q * kHq * kD, int64_t{1} << 31);

  std::vector<uint16_t> q(size_t(total_q) * kHq * kD), k(size_t(total_k) * kD), v(k.size());
  uint32_t state = 12345;
  auto next = [&state] {  // xorshift32 -> bf16 in about [-2, 2]
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return FloatToBFloat16((static_cast<float>(state >> 8) / 16777216.f) * 4.f - 2.f);
  };
  for (auto& x : q) x = next();
  for (auto& x : k) x = next();
  for (auto& x : v) x = next();

  const int64_t nq0 = (lq[0] + kSq - 1) / kSq, nq1 = (lq[1] + kSq - 1) / kSq;
  const int64_t nk0 = (lk[0] + kSk - 1) / kSk, nk1 = (lk[1] + kSk - 1) / kSk;
  const int64_t nq = nq0 + nq1, nk = nk0 + nk1;
  std::vector<uint8_t> mask(size_t(nq) * nk);
  for (size_t e = 0; e < mask.size(); ++e) mask[e] = (e * 2654435761u >> 7) % 3 != 0;

  std::vector<uint16_t> out(q.size());
  std::memset(out.data(), 0xff, out.size() * 2);
  std::vector<float> lse(size_t(total_q) * kHq, std::numeric_limits<float>::quiet_NaN());
  AttentionArgs a;
  a.dtype = DType::kBFloat16;
  a.total_q = total_q;
  a.total_k = total_k;
  a.num_heads_q = kHq;
  a.num_heads_k = 1;
  a.head_dim = kD;
  a.batch = 2;
  a.cu_seqlens_q = {cu_q.data(), cu_q.size() * 4};
  a.cu_seqlens_k = {cu_k.data(), cu_k.size() * 4};
  a.q_block_size = kSq;
  a.k_block_size = kSk;
  a.causal = true;
  a.dense_mask.shape[0] = 1;
  a.dense_mask.shape[1] = nq;
  a.dense_mask.shape[2] = nk;
  a.dense_mask.data = {mask.data(), mask.size()};
  a.q = {q.data(), q.size() * 2};
  a.k = {k.data(), k.size() * 2};
  a.v = {v.data(), v.size() * 2};
  a.out = {out.data(), out.size() * 2};
  a.lse = {lse.data(), lse.size() * 4};
  const absl::Status s = hbsa::Run(Backend::kCuda, a);
  ASSERT_TRUE(s.ok()) << s;

  // Reference for sequence 1 alone, heads 0, 63, 127: a B = 1 problem with its own mask plane.
  const int32_t heads[] = {0, 63, 127};
  golden::Case c;
  c.dtype = DType::kBFloat16;
  c.hq = 3;
  c.hk = 1;
  c.d = kD;
  c.sq = kSq;
  c.sk = kSk;
  c.causal = true;
  c.cu_q = {0, lq[1]};
  c.cu_k = {0, lk[1]};
  c.q.descr = c.k.descr = c.v.descr = "<u2";
  c.q.shape = {lq[1], 3, kD};
  c.q.data.resize(size_t(lq[1]) * 3 * kD * 2);
  for (int64_t r = 0; r < lq[1]; ++r) {
    for (int hi = 0; hi < 3; ++hi) {
      std::memcpy(c.q.data.data() + (r * 3 + hi) * kD * 2,
                  q.data() + ((cu_q[1] + r) * kHq + heads[hi]) * kD, kD * 2);
    }
  }
  c.k.shape = c.v.shape = {lk[1], 1, kD};
  c.k.data.assign(reinterpret_cast<uint8_t*>(k.data() + size_t(cu_k[1]) * kD),
                  reinterpret_cast<uint8_t*>(k.data() + size_t(total_k) * kD));
  c.v.data.assign(reinterpret_cast<uint8_t*>(v.data() + size_t(cu_k[1]) * kD),
                  reinterpret_cast<uint8_t*>(v.data() + size_t(total_k) * kD));
  c.block_mask.descr = "|u1";
  c.block_mask.shape = {1, nq1, nk1};
  for (int64_t i = 0; i < nq1; ++i) {
    for (int64_t j = 0; j < nk1; ++j) c.block_mask.data.push_back(mask[(nq0 + i) * nk + nk0 + j]);
  }
  ASSERT_TRUE(FillReference(&c).ok());

  std::vector<uint16_t> got(size_t(lq[1]) * 3 * kD);
  std::vector<float> got_lse(size_t(lq[1]) * 3);
  for (int64_t r = 0; r < lq[1]; ++r) {
    for (int hi = 0; hi < 3; ++hi) {
      const int64_t src = (cu_q[1] + r) * kHq + heads[hi];
      std::memcpy(got.data() + (r * 3 + hi) * kD, out.data() + src * kD, kD * 2);
      got_lse[r * 3 + hi] = lse[src];
    }
  }
  const golden::Comparison cmp = golden::Compare(c, DType::kBFloat16, got.data(), got_lse.data());
  EXPECT_TRUE(cmp.pass()) << cmp.first_failure;
  std::printf("LARGE_OFFSET total_q*Hq*D=%lld max_err_out=%.3g max_err_lse=%.3g %s\n",
              static_cast<long long>(total_q * kHq * kD), cmp.max_abs_err_out,
              cmp.max_abs_err_lse, cmp.pass() ? "PASS" : "FAIL");

  // Every element of sequence 0 was written (NaN poison gone) and is finite or exactly 0.
  int64_t bad = 0;
  for (int64_t e = 0; e < int64_t{lq[0]} * kHq * kD; e += 997) {
    if (!std::isfinite(BFloat16ToFloat(out[e]))) ++bad;
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace hbsa::testing
