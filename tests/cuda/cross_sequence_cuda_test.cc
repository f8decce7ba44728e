// cross_sequence_cuda_test.cc: sequences of a packed batch are independent (SEMANTICS.md), also
// when a neighbour holds +Inf, -Inf or NaN. Key lengths that are not multiples of the key tile
// make a sequence's last key tile reach into the next sequence's K/V rows (or past total_k);
// whatever those rows hold must not reach this sequence's out or LSE (0 * Inf = NaN in P V).
//
// Per configuration (fp16/bf16, D 64/128, causal or not, blocks 64x64, 128x128, 7x33, 16x16) the
// float64 reference runs once on clean inputs; then the K, V and Q rows of every other sequence
// are poisoned with +Inf/-Inf/NaN and the outputs of the untouched sequences must match the
// clean reference (golden::Compare, SEMANTICS.md tolerances). The poisoned sequences' own
// outputs are not checked. Every configuration runs on every kernel that can run it on this
// device (CudaKernelsFor: the kAuto choice, then the portable fallback), chosen through
// RunOptions::cuda_kernel.
// HBSA_XSEQ_CONFIGS=N limits a run to the first N configurations (for the sanitizers).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda_test_util.h"
#include "tests/common/sequence_subset.h"
#include "gtest/gtest.h"
#include "hbsa/golden.h"

namespace hbsa::testing {
namespace {

// Storage bits of +Inf, -Inf and a quiet NaN in a 16-bit dtype.
void SpecialBits(DType t, uint16_t bits[3]) {
  if (t == DType::kFloat16) {
    bits[0] = 0x7c00, bits[1] = 0xfc00, bits[2] = 0x7e00;
  } else {
    bits[0] = 0x7f80, bits[1] = 0xff80, bits[2] = 0x7fc0;
  }
}

// Writes +Inf/-Inf/NaN into rows [row0, row1) of a [rows, heads, d] 16-bit array: the first and
// last row and every third row, three of every four columns.
void PoisonRows(golden::NpyArray* a, DType t, int64_t row0, int64_t row1, int64_t width) {
  uint16_t bits[3];
  SpecialBits(t, bits);
  auto* x = reinterpret_cast<uint16_t*>(a->data.data());
  for (int64_t r = row0; r < row1; ++r) {
    if (r != row0 && r != row1 - 1 && (r - row0) % 3 != 0) continue;
    for (int64_t c = 0; c < width; ++c) {
      const int64_t kind = (r + c) % 4;
      if (kind < 3) x[r * width + c] = bits[kind];
    }
  }
}

TEST(CrossSequenceCuda, PoisonedNeighboursDoNotLeak) {
  struct Blocks {
    int sq, sk;
  };
  const Blocks blocks[] = {{64, 64}, {128, 128}, {7, 33}, {16, 16}};
  // HBSA_XSEQ_CONFIGS=N runs the first N of the 32 configurations only (sanitizer runs).
  const char* limit_env = std::getenv("HBSA_XSEQ_CONFIGS");
  const int limit = limit_env != nullptr ? std::atoi(limit_env) : 32;
  int n = 0, runs = 0, failed = 0;
  for (int d : {64, 128}) {
    for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
      for (bool causal : {false, true}) {
        for (const Blocks& bl : blocks) {
          if (n >= limit) break;
          ProblemSpec s;
          s.dtype = dtype;
          s.d = d;
          s.sq = bl.sq;
          s.sk = bl.sk;
          s.causal = causal;
          s.hq = 4;
          s.hk = 2;
          s.density = 0.7;
          s.seed = 900 + n;
          // No key length is a multiple of 64 (tails read the next sequence; the last one reads
          // past total_k); Lq != Lk; the middle sequence is short enough for one partial tile.
          s.lq = {70, 37, 260, 41};
          s.lk = {100, 37, 300, 77};
          const golden::Case clean = MakeProblem(s);
          const int batch = clean.batch();
          for (CudaKernel kernel : CudaKernelsFor(clean)) {
          const std::string kname(CudaKernelName(kernel));
          for (int parity = 0; parity < 2; ++parity) {
            // Poison the sequences of the other parity; check this parity's.
            std::vector<bool> keep(batch);
            golden::Case poisoned = clean;
            for (int b = 0; b < batch; ++b) {
              keep[b] = b % 2 == parity;
              if (keep[b]) continue;
              PoisonRows(&poisoned.k, dtype, clean.cu_k[b], clean.cu_k[b + 1], int64_t{s.hk} * d);
              PoisonRows(&poisoned.v, dtype, clean.cu_k[b], clean.cu_k[b + 1], int64_t{s.hk} * d);
              PoisonRows(&poisoned.q, dtype, clean.cu_q[b], clean.cu_q[b + 1], int64_t{s.hq} * d);
            }
            CudaResult r = RunCudaOn(poisoned, /*with_lse=*/true, /*compact=*/false, kernel);
            ASSERT_TRUE(r.status.ok()) << s.Describe() << ": " << r.status;
            const golden::Case expect = KeepSequences(clean, keep);
            const std::vector<uint8_t> out =
                KeepRows(r.out.data(), clean.cu_q, keep, int64_t{s.hq} * d, 2);
            const std::vector<uint8_t> lse =
                KeepRows(reinterpret_cast<const uint8_t*>(r.lse.data()), clean.cu_q, keep, s.hq, 4);
            const golden::Comparison cmp = golden::Compare(
                expect, dtype, out.data(), reinterpret_cast<const float*>(lse.data()));
            EXPECT_TRUE(cmp.pass() && cmp.lse_checked)
                << kname << " " << s.Describe() << " checked parity " << parity << ": "
                << cmp.first_failure << " (" << cmp.out_failures << " out, " << cmp.lse_failures
                << " lse failures)";
            failed += cmp.pass() ? 0 : 1;
            ++runs;
            std::printf("XSEQ kernel=%s %s parity=%d max_err_out=%.3g max_err_lse=%.3g %s\n",
                        kname.c_str(), s.Describe().c_str(), parity, cmp.max_abs_err_out,
                        cmp.max_abs_err_lse, cmp.pass() ? "PASS" : "FAIL");
          }
          }
          ++n;
        }
      }
    }
  }
  std::printf("XSEQ configs=%d runs=%d failed_runs=%d\n", n, runs, failed);
}

}  // namespace
}  // namespace hbsa::testing
