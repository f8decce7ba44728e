// small_blocks_cuda_test.cc: the block shapes the chunk-gathering wgmma path exists for, against
// the float64 reference (SEMANTICS.md tolerances), on every kernel that can run each problem
// (CudaKernelsFor: the kAuto choice, then the portable fallback):
// * small and odd mask blocks (16x16, 32x32, 128x16, 16x128, 32x128, 48x16, 7x33, 100x3), causal
//   or not, ragged lengths that leave partial tiles, an empty sequence, GQA groups 1, 2, 4, 8
//   (which select the head-packed tiles: 16 rows x 8 heads, 32 x 4, 64 x 2, ...);
// * Inf/NaN in K and V rows of key blocks the mask turns off for every query block of a KV head,
//   inside a sequence: they must not reach any output (the gathered key tiles never load them).
// On a compute capability 9.x device it also checks that kAuto picks the wgmma kernel for these
// fp16/bf16 shapes.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "cuda_test_util.h"
#include "gtest/gtest.h"
#include "hbsa/golden.h"
#include "hbsa/numeric.h"

namespace hbsa::testing {
namespace {

struct Blocks {
  int sq, sk;
};

int DeviceMajor() {
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    return 0;
  }
  return major;
}

void CheckOnEveryKernel(const ProblemSpec& s, const golden::Case& c, bool with_lse) {
  const std::vector<CudaKernel> kernels = CudaKernelsFor(c);
  ASSERT_FALSE(kernels.empty()) << s.Describe();
  if (DeviceMajor() == 9 && s.dtype != DType::kFloat32 && s.d % 8 == 0 && s.d <= 128) {
    EXPECT_EQ(kernels[0], CudaKernel::kWgmmaTma) << s.Describe();
  }
  for (CudaKernel kernel : kernels) {
    CudaResult r = RunCudaOn(c, with_lse, s.compact_mask, kernel);
    ASSERT_TRUE(r.status.ok()) << s.Describe() << " " << CudaKernelName(kernel) << ": " << r.status;
    const golden::Comparison cmp =
        golden::Compare(c, c.dtype, r.out.data(), with_lse ? r.lse.data() : nullptr);
    EXPECT_TRUE(cmp.pass()) << s.Describe() << " " << CudaKernelName(kernel) << ": "
                            << cmp.first_failure << " (" << cmp.out_failures << " out, "
                            << cmp.lse_failures << " lse failures)";
    std::printf("SMALL kernel=%s %s max_err_out=%.3g max_err_lse=%.3g %s\n",
                std::string(CudaKernelName(kernel)).c_str(), s.Describe().c_str(),
                cmp.max_abs_err_out, cmp.max_abs_err_lse, cmp.pass() ? "PASS" : "FAIL");
  }
}

TEST(SmallBlocksCuda, SmallOddBlocksGqaRaggedCausal) {
  const Blocks blocks[] = {{16, 16}, {32, 32}, {128, 16}, {16, 128},
                           {32, 128}, {48, 16}, {7, 33}, {100, 3}};
  int n = 0;
  for (const Blocks& bl : blocks) {
    for (int group : {1, 2, 4, 8}) {
      for (bool causal : {false, true}) {
        ProblemSpec s;
        s.dtype = n % 2 == 0 ? DType::kBFloat16 : DType::kFloat16;
        s.d = n % 3 == 0 ? 64 : (n % 3 == 1 ? 128 : 40);
        s.sq = bl.sq;
        s.sk = bl.sk;
        s.causal = causal;
        s.hk = group == 8 ? 1 : 2;
        s.hq = s.hk * group;
        s.density = n % 4 == 0 ? 0.15 : 0.4;  // sparse: rows with no key, gathered tiles
        s.compact_mask = n % 5 == 2;
        s.seed = 7000 + n;
        // Ragged: partial query and key tiles, an empty sequence, Lq != Lk, a long key side.
        s.lq = {150, 0, 77, 200};
        s.lk = {150, 40, 250, 97};
        if (n % 6 == 0) s.scale = 0.25f;
        const golden::Case c = MakeProblem(s);
        CheckOnEveryKernel(s, c, /*with_lse=*/n % 2 == 0);
        ++n;
      }
    }
  }
}

// Storage bits of +Inf, -Inf and a quiet NaN.
uint16_t SpecialBits(DType t, int kind) {
  static const uint16_t kHalf[3] = {0x7c00, 0xfc00, 0x7e00};
  static const uint16_t kBf16[3] = {0x7f80, 0xff80, 0x7fc0};
  return t == DType::kFloat16 ? kHalf[kind] : kBf16[kind];
}

// Inf/NaN in the K/V rows of key blocks whose mask column is off for every query block of their
// KV head; the reference is computed on clean inputs, the kernel runs on poisoned ones, and every
// output element is compared. Runs on the wgmma kernel for block sizes that are multiples of 16
// (docs/KERNEL.md: with other key block sizes a 16-key chunk holding an allowed key is loaded
// whole, and the mma.sync kernel loads whole 64-key tiles).
TEST(SmallBlocksCuda, InfNanInExcludedKeyRowsDoNotReachTheOutput) {
  if (DeviceMajor() != 9) GTEST_SKIP() << "the wgmma kernel needs a compute capability 9.x device";
  const Blocks blocks[] = {{16, 16}, {32, 32}, {128, 16}, {16, 128}, {64, 64}, {128, 128}};
  int n = 0, poisoned_rows_total = 0;
  for (const Blocks& bl : blocks) {
    for (bool causal : {false, true}) {
      const DType dtype = n % 2 == 0 ? DType::kBFloat16 : DType::kFloat16;
      {
        ProblemSpec s;
        s.dtype = dtype;
        s.d = n % 2 == 0 ? 64 : 128;
        s.sq = bl.sq;
        s.sk = bl.sk;
        s.causal = causal;
        s.hk = 2;
        s.hq = n % 3 == 0 ? 2 : 8;
        s.density = 0.5;
        s.seed = 8000 + n;
        s.lq = {200, 90, 160};
        s.lk = {256, 100, 200};
        golden::Case c = MakeProblem(s);
        // Turn off every third key block column of each head (all query blocks), recompute the
        // clean reference, then poison those blocks' K/V rows.
        const int64_t nq = c.block_mask.shape[1], nk = c.block_mask.shape[2];
        for (int64_t hk = 0; hk < s.hk; ++hk) {
          for (int64_t j = (hk + 1) % 3; j < nk; j += 3) {
            for (int64_t i = 0; i < nq; ++i) c.block_mask.data[(hk * nq + i) * nk + j] = 0;
          }
        }
        ASSERT_TRUE(FillReference(&c).ok());
        const int batch = c.batch();
        int64_t kb = 0;
        auto* kbits = reinterpret_cast<uint16_t*>(c.k.data.data());
        auto* vbits = reinterpret_cast<uint16_t*>(c.v.data.data());
        int poisoned = 0;
        for (int b = 0; b < batch; ++b) {
          const int64_t lk = c.cu_k[b + 1] - c.cu_k[b];
          for (int64_t j0 = 0; j0 < lk; j0 += s.sk, ++kb) {
            for (int64_t hk = 0; hk < s.hk; ++hk) {
              if ((kb - (hk + 1) % 3) % 3 != 0 || kb < (hk + 1) % 3) continue;
              for (int64_t j = j0; j < std::min<int64_t>(j0 + s.sk, lk); ++j) {
                const int64_t row = c.cu_k[b] + j;
                for (int64_t col = 0; col < s.d; ++col) {
                  const int64_t at = (row * s.hk + hk) * s.d + col;
                  kbits[at] = SpecialBits(dtype, int((j + col) % 3));
                  vbits[at] = SpecialBits(dtype, int((j + col + 1) % 3));
                }
                ++poisoned;
              }
            }
          }
        }
        ASSERT_GT(poisoned, 0) << s.Describe();
        poisoned_rows_total += poisoned;
        CudaResult r = RunCudaOn(c, /*with_lse=*/true, /*compact=*/false, CudaKernel::kWgmmaTma);
        ASSERT_TRUE(r.status.ok()) << s.Describe() << ": " << r.status;
        const golden::Comparison cmp = golden::Compare(c, c.dtype, r.out.data(), r.lse.data());
        EXPECT_TRUE(cmp.pass() && cmp.lse_checked)
            << s.Describe() << ": " << cmp.first_failure << " (" << cmp.out_failures << " out, "
            << cmp.lse_failures << " lse failures)";
        std::printf("EXCLUDED kernel=wgmma_tma %s poisoned_kv_rows=%d max_err_out=%.3g %s\n",
                    s.Describe().c_str(), poisoned, cmp.max_abs_err_out,
                    cmp.pass() ? "PASS" : "FAIL");
        ++n;
      }
    }
  }
  std::printf("EXCLUDED configs=%d poisoned_kv_rows=%d\n", n, poisoned_rows_total);
}

}  // namespace
}  // namespace hbsa::testing
