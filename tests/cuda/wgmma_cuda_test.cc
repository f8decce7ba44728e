// wgmma_cuda_test.cc: problems aimed at the wgmma (sm_90a) kernel of the CUDA backend
// (CudaKernel::kWgmmaTma: fp16/bf16, D <= 128, D % 8 == 0): 64x64, 128x128, 7x33 and 128x64
// mask blocks, causal, GQA, empty rows and empty sequences, ragged lengths that leave partial
// tiles, head dims narrower than the compiled one (40: columns past D read as zeros), against
// the float64 reference with SEMANTICS.md's tolerances. On a compute capability 9.x device it
// also asserts that kAuto chooses this kernel, and that an explicit request for it is refused
// (UNIMPLEMENTED) where it cannot run, never silently replaced.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda_test_util.h"
#include "gtest/gtest.h"
#include "device_traits.h"
#include "hbsa/cuda.h"
#include "hbsa/golden.h"
#include "heuristics.h"

namespace hbsa::testing {
namespace {

TEST(WgmmaCuda, ChosenOnHopperAndNeverSubstituted) {
  int dev = 0, major = 0;
  ASSERT_EQ(cudaGetDevice(&dev), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), cudaSuccess);
  const cuda_internal::DeviceTraits traits = cuda_internal::CurrentDeviceTraits();
  const absl::StatusOr<cuda_internal::KernelPlan> plan = cuda_internal::ChooseKernel(
      traits, cuda_internal::RequestShape{DType::kBFloat16, 128, 128, 1}, CudaKernel::kAuto);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::printf("WGMMA_PATH cc_major=%d sm90a_image=%d chosen=%s\n", traits.cc_major,
              traits.sm90a_image ? 1 : 0, std::string(CudaKernelName(plan->kernel)).c_str());
  EXPECT_EQ(traits.cc_major, major);
  if (major == 9) {
    EXPECT_TRUE(traits.sm90a_image);
    EXPECT_EQ(plan->kernel, CudaKernel::kWgmmaTma);
  }
  // D = 33 cannot run on the wgmma kernel: an explicit request is refused, kAuto picks mma.sync.
  ProblemSpec s;
  s.d = 33;
  s.lq = {40};
  s.lk = {40};
  const golden::Case c = MakeProblem(s);
  CudaResult r = RunCudaOn(c, false, false, CudaKernel::kWgmmaTma);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnimplemented) << r.status;
  const std::vector<CudaKernel> kernels = CudaKernelsFor(c);
  ASSERT_FALSE(kernels.empty());
  EXPECT_EQ(kernels[0], CudaKernel::kMmaSync);
}

void Check(const ProblemSpec& spec, bool with_lse) {
  const golden::Case c = MakeProblem(spec);
  const CudaKernel kernel = spec.d % 8 == 0 ? CudaKernel::kWgmmaTma : CudaKernel::kMmaSync;
  CudaResult r = RunCudaOn(c, with_lse, spec.compact_mask, kernel);
  ASSERT_TRUE(r.status.ok()) << spec.Describe() << ": " << r.status;
  const golden::Comparison cmp =
      golden::Compare(c, c.dtype, r.out.data(), with_lse ? r.lse.data() : nullptr);
  EXPECT_TRUE(cmp.pass()) << spec.Describe() << ": " << cmp.first_failure << " ("
                          << cmp.out_failures << " out, " << cmp.lse_failures << " lse failures)";
  std::printf("WGMMA kernel=%s %s max_err_out=%.3g max_err_lse=%.3g %s\n",
              std::string(CudaKernelName(kernel)).c_str(), spec.Describe().c_str(),
              cmp.max_abs_err_out, cmp.max_abs_err_lse, cmp.pass() ? "PASS" : "FAIL");
}

TEST(WgmmaCuda, BlockShapesCausalGqaEmptyRows) {
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
