// cross_sequence_test.cc: sequences of a packed batch are independent (SEMANTICS.md), also when
// a neighbour holds +Inf, -Inf or NaN, on the CPU backends (reference and cpu). Key lengths that
// are not multiples of any tile leave partial last tiles; K/V/Q rows of every other sequence are
// poisoned and the outputs of the untouched sequences must match the float64 reference computed
// on clean inputs (golden::Compare, SEMANTICS.md tolerances). The poisoned sequences' own
// outputs are not checked. The GPU twin is tests/cuda/cross_sequence_cuda_test.cc.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/golden.h"
#include "tests/kernels/test_util.h"
#include "tests/common/sequence_subset.h"

namespace hbsa::testing {
namespace {

// Writes +Inf/-Inf/NaN into rows [row0, row1) of a [rows, width] array of `dtype` storage: the
// first and last row and every third row, three of every four columns.
void PoisonRows(std::vector<uint8_t>* a, DType dtype, int64_t row0, int64_t row1, int64_t width) {
  const float specials[3] = {std::numeric_limits<float>::infinity(),
                             -std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::quiet_NaN()};
  for (int64_t r = row0; r < row1; ++r) {
    if (r != row0 && r != row1 - 1 && (r - row0) % 3 != 0) continue;
    for (int64_t c = 0; c < width; ++c) {
      const int64_t kind = (r + c) % 4;
      if (kind == 3) continue;
      const int64_t e = r * width + c;
      if (dtype == DType::kFloat32) {
        std::memcpy(a->data() + e * 4, &specials[kind], 4);
      } else {
        const uint16_t f16[3] = {0x7c00, 0xfc00, 0x7e00}, bf16[3] = {0x7f80, 0xff80, 0x7fc0};
        const uint16_t bits = dtype == DType::kFloat16 ? f16[kind] : bf16[kind];
        std::memcpy(a->data() + e * 2, &bits, 2);
      }
    }
  }
}

// The float64 reference on fp32 copies of p's inputs (exact for fp16/bf16).
golden::Case CleanReference(const Problem& p) {
  Problem f = p;
  f.spec.dtype = DType::kFloat32;
  auto widen = [&](const std::vector<uint8_t>& src) {
    const std::vector<float> x =
        golden::ToFloat(p.spec.dtype, src.data(), int64_t(src.size() / DTypeSize(p.spec.dtype)));
    std::vector<uint8_t> r(x.size() * 4);
    std::memcpy(r.data(), x.data(), r.size());
    return r;
  };
  f.q = widen(p.q);
  f.k = widen(p.k);
  f.v = widen(p.v);
  std::vector<uint8_t> out;
  std::vector<float> lse;
  const AttentionArgs a = f.Args(&out, &lse);
  EXPECT_TRUE(RunWith(Backend::kReference, a, "", 1).ok());
  std::vector<float> out_f(out.size() / 4);
  std::memcpy(out_f.data(), out.data(), out.size());
  golden::Case c = AsCase(p, out_f, lse);
  return c;
}

TEST(CrossSequence, PoisonedNeighboursDoNotLeak) {
  struct Blocks {
    int sq, sk;
  };
  const Blocks blocks[] = {{64, 64}, {128, 128}, {7, 33}};
  std::mt19937_64 rng(4242);
  int n = 0;
  for (const Blocks& bl : blocks) {
    for (int d : {64, 128}) {
      for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
        for (bool causal : {false, true}) {
          ProblemSpec s;
          s.dtype = dtype;
          s.d = d;
          s.sq = bl.sq;
          s.sk = bl.sk;
          s.causal = causal;
          s.hq = 2;
          s.hk = 1;
          s.density = 0.7;
          // Key lengths that are multiples of no tile; Lq != Lk; the last sequence's tail
          // would read past total_k.
          s.lq = {50, 37, 140, 21};
          s.lk = {100, 37, 150, 45};
          const Problem clean = MakeProblem(s, rng);
          const golden::Case ref = CleanReference(clean);
          const int batch = static_cast<int>(s.lq.size());
          for (int parity = 0; parity < 2; ++parity) {
            std::vector<bool> keep(batch);
            Problem poisoned = clean;
            for (int b = 0; b < batch; ++b) {
              keep[b] = b % 2 == parity;
              if (keep[b]) continue;
              PoisonRows(&poisoned.k, dtype, clean.cu_k[b], clean.cu_k[b + 1], int64_t{s.hk} * d);
              PoisonRows(&poisoned.v, dtype, clean.cu_k[b], clean.cu_k[b + 1], int64_t{s.hk} * d);
              PoisonRows(&poisoned.q, dtype, clean.cu_q[b], clean.cu_q[b + 1], int64_t{s.hq} * d);
            }
            const golden::Case expect = KeepSequences(ref, keep);
            for (Backend backend : {Backend::kReference, Backend::kCpu}) {
              std::vector<uint8_t> out;
              std::vector<float> lse;
              const AttentionArgs a = poisoned.Args(&out, &lse);
              ASSERT_TRUE(RunWith(backend, a, "", 2).ok());
              const std::vector<uint8_t> got =
                  KeepRows(out.data(), clean.cu_q, keep, int64_t{s.hq} * d, DTypeSize(dtype));
              const std::vector<uint8_t> got_lse = KeepRows(
                  reinterpret_cast<const uint8_t*>(lse.data()), clean.cu_q, keep, s.hq, 4);
              const golden::Comparison cmp = golden::Compare(
                  expect, dtype, got.data(), reinterpret_cast<const float*>(got_lse.data()));
              EXPECT_TRUE(cmp.pass() && cmp.lse_checked)
                  << BackendName(backend) << " " << DTypeName(dtype) << " d=" << d << " blocks="
                  << bl.sq << "x" << bl.sk << (causal ? " causal" : "") << " parity=" << parity
                  << ": " << cmp.first_failure << " (" << cmp.out_failures << " out, "
                  << cmp.lse_failures << " lse failures)";
            }
          }
          ++n;
        }
      }
    }
  }
  EXPECT_EQ(n, 36);
}

}  // namespace
}  // namespace hbsa::testing
