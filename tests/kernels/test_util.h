// test_util.h: random attention problems for the kernel tests (property tests, hbsa-check
// tests). A Problem owns every buffer an AttentionArgs points to; values are drawn from a seeded
// generator (never all zero), stored in the problem's dtype, and outputs are pre-filled with NaN
// so an element a backend forgets to write fails the comparison.
#ifndef HBSA_TESTS_KERNELS_TEST_UTIL_H_
#define HBSA_TESTS_KERNELS_TEST_UTIL_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "hbsa/attention.h"
#include "hbsa/golden.h"

namespace hbsa::testing {

// What to generate.
struct ProblemSpec {
  DType dtype = DType::kFloat32;
  int32_t hq = 1, hk = 1, d = 16;      // heads and head dim
  int32_t sq = 16, sk = 16;            // block sizes
  bool causal = false;
  std::optional<float> scale;          // unset = 1/sqrt(d)
  std::vector<int32_t> lq, lk;         // per-sequence lengths (same count)
  double density = 0.5;                // probability a mask bit is on
  double empty_mask_row_prob = 0.0;    // probability a whole (hk, query block) row is off
  float amplitude = 1.0f;              // q, k, v uniform in [-amplitude, amplitude]
};

// A generated problem; owns all buffers.
struct Problem {
  ProblemSpec spec;
  std::vector<int32_t> cu_q, cu_k;     // [B+1]
  int64_t nq = 0, nk = 0;              // query / key blocks
  std::vector<uint8_t> q, k, v;        // dtype storage
  std::vector<uint8_t> mask;           // dense [hk, nq, nk] 0/1
  int64_t total_q() const { return cu_q.back(); }
  int64_t total_k() const { return cu_k.back(); }

  // Dense-mask arguments writing into *out (resized, filled with NaN) and *lse (resized, NaN;
  // nullptr = no LSE).
  AttentionArgs Args(std::vector<uint8_t>* out, std::vector<float>* lse) const;
};

Problem MakeProblem(const ProblemSpec& spec, std::mt19937_64& rng);

// CSR form (MaskFormat::kCompact) of a dense [hk, nq, nk] mask: every nonzero entry, including
// those that pair blocks of different sequences (which every backend must ignore).
struct CompactMask {
  std::vector<int64_t> row_offsets;
  std::vector<int32_t> col_indices;
};
CompactMask ToCompact(const std::vector<uint8_t>& dense, int64_t rows, int64_t nk);

// A golden::Case whose expected out / lse are the given float arrays, so that outputs can be
// judged with golden::Compare (the one comparison under SEMANTICS.md tolerances).
golden::Case AsCase(const Problem& p, const std::vector<float>& out, const std::vector<float>& lse);

// Runs `backend` on `args` with CPU kernel set `isa` ("" = automatic choice) and `threads`.
absl::Status RunWith(Backend backend, const AttentionArgs& args, const std::string& isa,
                     int threads);

}  // namespace hbsa::testing

#endif  // HBSA_TESTS_KERNELS_TEST_UTIL_H_
