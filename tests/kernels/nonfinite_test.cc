// nonfinite_test.cc: NaN and Inf inputs, and finite inputs whose fp32 scores overflow, on the fast
// CPU backend against the float64 reference (issue 12 finding 6).
//
// The contract: a row with an allowed key is not empty, so it never comes back as out 0 and
// lse -inf; NaN inputs give what the reference gives (NaN), and where only fp32's range is the
// problem (q = 3e38) the CPU backend gives the reference's finite answer. Inputs a pair may not
// see (causally cut keys inside a loaded chunk) must not reach its output at all.
//
// Agreement per element: NaN exactly where the reference has NaN, -inf LSE exactly where it
// has -inf, otherwise within the SEMANTICS.md tolerance of the dtype (LSE relative to its size:
// overflowing rows have |lse| near 1e38).
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/attention.h"
#include "hbsa/golden.h"
#include "hbsa/numeric.h"
#include "kernels/cpu/cpu_kernels.h"
#include "test_util.h"

namespace hbsa {
namespace {

using testing::MakeProblem;
using testing::Problem;
using testing::ProblemSpec;
using testing::RunWith;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Element (row, head, x) of a [rows, heads, d] tensor in p's dtype storage.
void Poke(const Problem& p, std::vector<uint8_t>* t, int64_t row, int64_t heads, int64_t head,
          int64_t x, float value) {
  const int64_t i = (row * heads + head) * p.spec.d + x;
  if (p.spec.dtype == DType::kFloat32) {
    std::memcpy(t->data() + i * 4, &value, 4);
  } else {
    const uint16_t h = p.spec.dtype == DType::kBFloat16 ? FloatToBFloat16(value) : FloatToHalf(value);
    std::memcpy(t->data() + i * 2, &h, 2);
  }
}

struct Outputs {
  std::vector<float> out, lse;
};

Outputs RunOne(const Problem& p, Backend backend, const std::string& isa, int threads) {
  std::vector<uint8_t> out;
  Outputs o;
  AttentionArgs a = p.Args(&out, &o.lse);
  const absl::Status s = RunWith(backend, a, isa, threads);
  EXPECT_TRUE(s.ok()) << s;
  o.out = golden::ToFloat(p.spec.dtype, out.data(), p.total_q() * p.spec.hq * p.spec.d);
  return o;
}

// Runs the reference and every CPU kernel set (1 and 3 threads) and checks agreement; returns
// the reference's outputs for further checks.
Outputs ExpectAgreesWithReference(const Problem& p) {
  const Outputs ref = RunOne(p, Backend::kReference, "", 1);
  const golden::Tolerance tol = golden::ToleranceFor(p.spec.dtype);
  for (const std::string& isa : internal::SupportedCpuIsas()) {
    for (int threads : {1, 3}) {
      SCOPED_TRACE(isa + " threads=" + std::to_string(threads));
      const Outputs got = RunOne(p, Backend::kCpu, isa, threads);
      int64_t bad_out = 0, bad_lse = 0;
      for (size_t e = 0; e < ref.out.size(); ++e) {
        const float r = ref.out[e], g = got.out[e];
        const bool ok = std::isnan(r) ? std::isnan(g)
                        : std::isinf(r) ? g == r
                                        : std::isfinite(g) && std::fabs(g - r) <= tol.atol + tol.rtol * std::fabs(r);
        if (!ok && bad_out++ == 0) ADD_FAILURE() << "out element " << e << ": " << g << " vs reference " << r;
      }
      for (size_t e = 0; e < ref.lse.size(); ++e) {
        const float r = ref.lse[e], g = got.lse[e];
        const bool ok = std::isnan(r) ? std::isnan(g)
                        : std::isinf(r) ? g == r
                                        : std::isfinite(g) &&
                                              std::fabs(g - r) <= tol.lse_atol * std::max(1.0f, std::fabs(r));
        if (!ok && bad_lse++ == 0) ADD_FAILURE() << "lse row " << e << ": " << g << " vs reference " << r;
      }
      EXPECT_EQ(bad_out, 0);
      EXPECT_EQ(bad_lse, 0);
    }
  }
  return ref;
}

ProblemSpec Spec(DType dtype) {
  ProblemSpec s;
  s.dtype = dtype;
  s.hq = 2;
  s.hk = 1;
  s.d = 16;
  s.sq = 8;
  s.sk = 8;
  s.lq = {20, 13};
  s.lk = {30, 17};
  s.density = 1.0;
  return s;
}

TEST(NonFinite, NaNInOneQueryElementGivesThatRowNaNLikeTheReference) {
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    SCOPED_TRACE(DTypeName(dtype));
    std::mt19937_64 rng(11);
    Problem p = MakeProblem(Spec(dtype), rng);
    Poke(p, &p.q, 5, 2, 1, 3, kNaN);
    const Outputs ref = ExpectAgreesWithReference(p);
    // The poisoned (row 5, head 1) is NaN, not an "empty row" (0 and -inf); its neighbours are finite.
    EXPECT_TRUE(std::isnan(ref.lse[5 * 2 + 1]));
    EXPECT_TRUE(std::isfinite(ref.lse[5 * 2 + 0]));
    EXPECT_TRUE(std::isfinite(ref.lse[6 * 2 + 1]));
  }
}

TEST(NonFinite, FiniteQueriesWhoseFp32ScoresOverflowGiveTheReferenceAnswer) {
  // softmax_scale 1: q = 3e38 times log2(e) overflows fp32 in the fast path's scaled Q, while
  // the float64 reference has finite scores and a finite answer.
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    SCOPED_TRACE(DTypeName(dtype));
    ProblemSpec s = Spec(dtype);
    s.scale = 1.0f;
    std::mt19937_64 rng(12);
    Problem p = MakeProblem(s, rng);
    for (int64_t x = 0; x < s.d; ++x) Poke(p, &p.q, 7, 2, 0, x, x == 0 ? 3e38f : 0.0f);
    for (int64_t x = 0; x < s.d; ++x) Poke(p, &p.q, 21, 2, 1, x, x == 2 ? -3e38f : 0.0f);
    const Outputs ref = ExpectAgreesWithReference(p);
    EXPECT_TRUE(std::isfinite(ref.lse[7 * 2 + 0])) << ref.lse[7 * 2 + 0];
    EXPECT_GT(std::fabs(ref.lse[7 * 2 + 0]), 1e36f);
    EXPECT_TRUE(std::isfinite(ref.lse[21 * 2 + 1])) << ref.lse[21 * 2 + 1];
  }
}

TEST(NonFinite, AllScoresOverflowingToMinusInfIsNotAnEmptyRow) {
  // Every key of sequence 0 equal and positive, one query -3e38: all its fp32 scores are -inf,
  // which the tile sees as l = 0; the reference has equal finite scores (out = mean of v).
  ProblemSpec s = Spec(DType::kFloat32);
  s.scale = 1.0f;
  s.d = 1;
  std::mt19937_64 rng(13);
  Problem p = MakeProblem(s, rng);
  for (int64_t c = 0; c < 30; ++c) Poke(p, &p.k, c, 1, 0, 0, 1.0f);
  Poke(p, &p.q, 3, 2, 0, 0, -3e38f);
  const Outputs ref = ExpectAgreesWithReference(p);
  EXPECT_TRUE(std::isfinite(ref.lse[3 * 2 + 0]));
  EXPECT_NE(ref.out[3 * 2 + 0], 0.0f);
}

TEST(NonFinite, InfInAnAllowedKeyGivesNaNLikeTheReference) {
  std::mt19937_64 rng(14);
  Problem p = MakeProblem(Spec(DType::kFloat32), rng);
  Poke(p, &p.k, 4, 1, 0, 0, kInf);
  Poke(p, &p.q, 0, 2, 0, 0, 1.0f);  // so row 0's score against key 4 is +inf
  const Outputs ref = ExpectAgreesWithReference(p);
  EXPECT_TRUE(std::isnan(ref.out[0]));  // every row of sequence 0 sees key 4
}

TEST(NonFinite, NaNInACausallyHiddenValueRowDoesNotReachTheRowsThatCannotSeeIt) {
  // Causal, Lq = Lk: row i sees keys 0..i. A NaN in v of the last key of the sequence sits in
  // the last chunk every row of the last query block loads; only the last row may see it.
  ProblemSpec s = Spec(DType::kFloat32);
  s.causal = true;
  s.lq = {40};
  s.lk = {40};
  s.sq = 16;
  s.sk = 16;
  std::mt19937_64 rng(15);
  Problem p = MakeProblem(s, rng);
  Poke(p, &p.v, 39, 1, 0, 5, kNaN);
  const Outputs ref = ExpectAgreesWithReference(p);
  EXPECT_TRUE(std::isnan(ref.out[(39 * 2 + 0) * 16 + 5]));
  EXPECT_TRUE(std::isfinite(ref.out[(38 * 2 + 0) * 16 + 5]));
}

TEST(NonFinite, EmptyRowsStayExactlyZeroAndMinusInfWithNaNInputs) {
  // Causal with Lq = 32 > Lk = 23: the first 9 rows see no key. NaN in their q changes nothing.
  ProblemSpec s = Spec(DType::kFloat32);
  s.causal = true;
  s.lq = {32};
  s.lk = {23};
  std::mt19937_64 rng(16);
  Problem p = MakeProblem(s, rng);
  for (int64_t row : {0, 8}) Poke(p, &p.q, row, 2, 0, 0, kNaN);
  const Outputs ref = ExpectAgreesWithReference(p);
  for (int64_t row : {0, 8}) {
    EXPECT_EQ(ref.lse[row * 2], -kInf);
    EXPECT_EQ(ref.out[row * 2 * 16], 0.0f);
  }
}

}  // namespace
}  // namespace hbsa
