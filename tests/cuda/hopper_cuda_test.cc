// hopper_cuda_test.cc: problems aimed at the wgmma (sm_90a) path of the CUDA backend (fp16/bf16,
// D <= 128): 64x64, 128x128 and 7x33 mask blocks, causal, GQA, empty rows and empty sequences,
// ragged lengths that leave partial tiles, against the float64 reference with SEMANTICS.md's
// tolerances. On a compute capability 9.x device it also asserts that the path is the one taken.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_test_util.h"
#include "gtest/gtest.h"
#include "heuristics.h"
#include "hbsa/golden.h"
#include "launch.h"

namespace hbsa::testing {
namespace {

TEST(HopperCuda, PathIsSelectedOnHopper) {
  int dev = 0, major = 0;
  ASSERT_EQ(cudaGetDevice(&dev), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), cudaSuccess);
  const bool image = cuda_internal::HopperImagePresent();
  const bool used = cuda_internal::UseHopperPath(major, image, DType::kBFloat16, 128, false);
  std::printf("HOPPER_PATH cc_major=%d sm90a_image=%d selected=%d\n", major, image ? 1 : 0,
              used ? 1 : 0);
  if (major == 9) {
    EXPECT_TRUE(image);
    EXPECT_TRUE(used);
  }
}

void Check(const ProblemSpec& spec, bool with_lse) {
  const golden::Case c = MakeProblem(spec);
  CudaResult r = RunCudaOn(c, with_lse, spec.compact_mask);
  ASSERT_TRUE(r.status.ok()) << spec.Describe() << ": " << r.status;
  const golden::Comparison cmp =
      golden::Compare(c, c.dtype, r.out.data(), with_lse ? r.lse.data() : nullptr);
  EXPECT_TRUE(cmp.pass()) << spec.Describe() << ": " << cmp.first_failure << " ("
                          << cmp.out_failures << " out, " << cmp.lse_failures << " lse failures)";
  std::printf("HOPPER %s max_err_out=%.3g max_err_lse=%.3g %s\n", spec.Describe().c_str(),
              cmp.max_abs_err_out, cmp.max_abs_err_lse, cmp.pass() ? "PASS" : "FAIL");
}

TEST(HopperCuda, BlockShapesCausalGqaEmptyRows) {
  struct Blocks {
    int sq, sk;
  };
  const Blocks blocks[] = {{64, 64}, {128, 128}, {7, 33}, {128, 64}};
  int n = 0;
  for (const Blocks& bl : blocks) {
    for (int d : {64, 128, 40, 33}) {
      for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
        for (bool causal : {false, true}) {
          ProblemSpec s;
          s.dtype = dtype;
          s.d = d;
          s.sq = bl.sq;
          s.sk = bl.sk;
          s.causal = causal;
          s.hk = 2;
          s.hq = n % 2 == 0 ? 4 : 2;  // GQA group 2 or plain
          s.density = n % 3 == 0 ? 0.25 : 0.6;  // sparse masks leave rows with no key
          s.compact_mask = n % 4 == 1;
          s.seed = 500 + n;
          // Ragged lengths: partial tiles, an empty sequence, Lq != Lk.
          s.lq = {300, 0, 129, 64};
          s.lk = {300, 17, 200, 64};
          if (n % 5 == 0) s.scale = 0.3f;
          Check(s, n % 2 == 0);
          ++n;
        }
      }
    }
  }
}

}  // namespace
}  // namespace hbsa::testing
