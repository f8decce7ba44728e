// property_cuda_test.cc: randomized problems through the CUDA backend against the float64
// reference: ragged and empty sequences, Lq != Lk, block sizes 1..128 including non-multiples
// of 16, GQA and MQA, causal, empty rows, fp16/bf16/fp32, head dims 16..256 (odd ones too),
// explicit scales (0 and negative included), dense and compact masks. Plus the fast-path shape
// (lengths multiples of the tiles, 64/128 blocks). Every problem runs on every kernel that can
// run it on this device (CudaKernelsFor: the kAuto choice, then the portable fallback). Set
// HBSA_PROPERTY_CASES to change the count.
#include <cstdio>
#include <cstdlib>
#include <random>

#include "cuda_test_util.h"
#include "gtest/gtest.h"
#include "hbsa/golden.h"

namespace hbsa::testing {
namespace {

int CaseCount(int fallback) {
  const char* env = std::getenv("HBSA_PROPERTY_CASES");
  return env != nullptr ? std::atoi(env) : fallback;
}

void CheckSpec(const ProblemSpec& spec, bool with_lse) {
  const golden::Case c = MakeProblem(spec);
  const std::vector<CudaKernel> kernels = CudaKernelsFor(c);
  ASSERT_FALSE(kernels.empty()) << spec.Describe() << ": no kernel can run it";
  for (CudaKernel kernel : kernels) {
    CudaResult r = RunCudaOn(c, with_lse, spec.compact_mask, kernel);
    ASSERT_TRUE(r.status.ok()) << spec.Describe() << " " << CudaKernelName(kernel) << ": "
                               << r.status;
    const golden::Comparison cmp =
        golden::Compare(c, c.dtype, r.out.data(), with_lse ? r.lse.data() : nullptr);
    EXPECT_TRUE(cmp.pass()) << spec.Describe() << " " << CudaKernelName(kernel) << ": "
                            << cmp.first_failure << " (" << cmp.out_failures << " out, "
                            << cmp.lse_failures << " lse failures)";
    std::printf("PROPERTY kernel=%s %s max_err_out=%.3g max_err_lse=%.3g %s\n",
                std::string(CudaKernelName(kernel)).c_str(), spec.Describe().c_str(),
                cmp.max_abs_err_out, cmp.max_abs_err_lse, cmp.pass() ? "PASS" : "FAIL");
  }
}

TEST(PropertyCuda, RandomProblemsMatchReference) {
  std::mt19937_64 rng(20261126);
  auto pick = [&](std::initializer_list<int> v) {
    return *(v.begin() + std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng));
  };
  const int n = CaseCount(48);
  for (int i = 0; i < n; ++i) {
    ProblemSpec s;
    s.seed = 1000 + i;
    s.dtype = static_cast<DType>(i % 3);
    s.d = pick({16, 18, 24, 33, 40, 64, 72, 96, 128, 160, 200, 256});
    s.hk = pick({1, 1, 2, 3});
    s.hq = s.hk * pick({1, 2, 4});
    if (s.d > 128) s.hq = s.hk;  // keep the float64 reference quick
    s.sq = pick({1, 7, 16, 33, 64, 100, 128});
    s.sk = pick({1, 5, 16, 33, 64, 128});
    s.causal = rng() % 2 == 0;
    s.density = pick({30, 60, 100}) / 100.0;
    s.compact_mask = rng() % 4 == 0;
    const int choice = rng() % 6;
    if (choice == 0) s.scale = 0.f;
    if (choice == 1) s.scale = -0.4f;
    if (choice == 2) s.scale = 0.7f;
    const int batch = pick({1, 2, 3, 4});
    for (int b = 0; b < batch; ++b) {
      const int max_len = s.sq == 1 || s.sk == 1 ? 70 : 200;
      auto len = [&] { return rng() % 7 == 0 ? 0 : static_cast<int>(rng() % max_len) + 1; };
      s.lq.push_back(len());
      s.lk.push_back(len());
    }
    CheckSpec(s, /*with_lse=*/i % 5 != 4);
  }
}

TEST(PropertyCuda, FastPathTileAlignedProblems) {
  int seed = 5000;
  for (DType t : {DType::kBFloat16, DType::kFloat16}) {
    for (int d : {64, 128}) {
      for (auto [sq, sk] : {std::pair{128, 128}, {128, 64}, {64, 128}, {64, 64}}) {
        for (bool causal : {false, true}) {
          ProblemSpec s;
          s.dtype = t;
          s.d = d;
          s.hq = 2;
          s.hk = 1;
          s.sq = sq;
          s.sk = sk;
          s.causal = causal;
          s.density = 0.4;
          s.lq = {256, 384};
          s.lk = {256, 512};
          s.seed = seed++;
          CheckSpec(s, true);
        }
      }
    }
  }
}

}  // namespace
}  // namespace hbsa::testing
