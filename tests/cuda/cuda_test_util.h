// cuda_test_util.h: helpers of the GPU tests. Builds random problems as golden::Case objects
// whose expected output comes from the float64 reference backend (run on fp32 copies of the
// inputs, which are exact for fp16/bf16, so the expectation is rounded once), and runs the CUDA
// backend on them with NaN-poisoned outputs. golden::Compare then applies SEMANTICS.md's
// tolerances exactly as for the golden cases.
#ifndef HBSA_TESTS_CUDA_CUDA_TEST_UTIL_H_
#define HBSA_TESTS_CUDA_CUDA_TEST_UTIL_H_

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hbsa/attention.h"
#include "hbsa/golden.h"

namespace hbsa::testing {

// What a random problem looks like; lengths are per sequence (0 allowed).
struct ProblemSpec {
  DType dtype = DType::kBFloat16;
  std::vector<int32_t> lq, lk;
  int32_t hq = 1, hk = 1, d = 64;
  int32_t sq = 16, sk = 16;
  bool causal = false;
  double density = 0.5;            // probability a mask bit is on
  std::optional<float> scale;      // unset: default 1/sqrt(D)
  bool compact_mask = false;       // pass the mask in CSR form
  uint64_t seed = 1;
  std::string Describe() const;
};

// Random inputs (uniform in [-2, 2], never all zero) and a random mask for `spec`, with the
// reference output and LSE filled in. The mask is kept dense in the Case; see MakeArgsFor.
golden::Case MakeProblem(const ProblemSpec& spec);

// The outputs of one CUDA run.
struct CudaResult {
  absl::Status status;
  std::vector<uint8_t> out;
  std::vector<float> lse;
};

// Runs the CUDA backend on `c` (outputs poisoned with NaN first); `compact` passes the mask as
// CSR. `with_lse` asks for the LSE. `kernel` is RunOptions::cuda_kernel (kAuto: the library's
// choice; anything else runs exactly that kernel or fails UNIMPLEMENTED).
CudaResult RunCudaOn(const golden::Case& c, bool with_lse, bool compact,
                     CudaKernel kernel = CudaKernel::kAuto);

// The kernels that can run `c` on the current device: the kAuto choice first, then every other
// kernel whose planning succeeds (so a test covers the fast path and the portable fallback).
std::vector<CudaKernel> CudaKernelsFor(const golden::Case& c);

// Runs the float64 reference on fp32 copies of c's inputs and stores out/lse into c.
absl::Status FillReference(golden::Case* c);

}  // namespace hbsa::testing

#endif  // HBSA_TESTS_CUDA_CUDA_TEST_UTIL_H_
