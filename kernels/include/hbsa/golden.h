// hbsa/golden.h: cases in the golden format (tests/golden/README.md) and the comparison
// against their expected output under the tolerances of SEMANTICS.md.
//
// One definition of "does this output pass", used by the golden tests, hbsa-check, the
// service's integration tests and the `hbsa attend --check` client. A case folder holds
// q.npy, k.npy, v.npy, block_mask.npy, out.npy, lse.npy and case.json.
#ifndef HBSA_GOLDEN_H_
#define HBSA_GOLDEN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hbsa/attention.h"

namespace hbsa::golden {

// A NumPy array as stored in a .npy file (little-endian, C order).
struct NpyArray {
  std::string descr;           // e.g. "<f4", "<f2", "<u2", "|u1", "<i4"
  std::vector<int64_t> shape;  // dimensions
  std::vector<uint8_t> data;   // raw bytes, product(shape) * ItemSize()
  size_t ItemSize() const;
  int64_t NumElements() const;
};

absl::StatusOr<NpyArray> LoadNpy(const std::string& path);
// Writes a C-order little-endian array; `descr` as in NpyArray.
absl::Status SaveNpy(const std::string& path, const std::string& descr,
                     const std::vector<int64_t>& shape, const void* data, size_t bytes);

// One golden case, loaded. Buffers are owned here; MakeArgs points into them.
struct Case {
  std::string name;                   // folder name
  DType dtype = DType::kFloat32;
  int32_t hq = 0, hk = 0, d = 0;      // heads and head dim
  int32_t sq = 0, sk = 0;             // block sizes
  bool causal = false;
  std::optional<float> scale;         // null in case.json = default 1/sqrt(d)
  std::vector<int32_t> cu_q, cu_k;    // [B+1]
  NpyArray q, k, v;                   // [total, heads, d] in dtype's storage
  NpyArray block_mask;                // uint8 [hk, Nq, Nk]
  NpyArray out;                       // float32 expected output [total_q, hq, d]
  NpyArray lse;                       // float32 expected LSE [total_q, hq]
  int64_t total_q() const { return cu_q.empty() ? 0 : cu_q.back(); }
  int64_t total_k() const { return cu_k.empty() ? 0 : cu_k.back(); }
  int32_t batch() const { return static_cast<int32_t>(cu_q.size()) - 1; }

  // Arguments for this case with a dense mask, writing into `out` (dtype, total_q*hq*d
  // elements) and `lse` (fp32 total_q*hq, or empty for no LSE).
  AttentionArgs MakeArgs(std::vector<uint8_t>* out, std::vector<float>* lse) const;
};

// Loads case folder `dir` (its name becomes Case::name); errors name the file and the problem.
absl::StatusOr<Case> LoadCase(const std::string& dir);

// The folder holding the golden cases: $HBSA_GOLDEN_DIR if set, else the build's default.
std::string DefaultGoldenRoot();
// Sorted sub-folders of `root` that contain a case.json.
std::vector<std::string> ListCaseDirs(const std::string& root);

// SEMANTICS.md tolerances: |out - ref| <= atol + rtol * |ref|; |lse - ref| <= lse_atol.
struct Tolerance {
  double atol, rtol, lse_atol;
};
Tolerance ToleranceFor(DType dtype);

// Result of comparing one output against the expected arrays.
struct Comparison {
  double max_abs_err_out = 0;   // max |out - ref| over finite elements
  double max_abs_err_lse = 0;   // max |lse - ref| over rows with finite ref (0 when not checked)
  int64_t out_failures = 0;     // elements outside tolerance (NaN counts as a failure)
  int64_t lse_failures = 0;     // LSE rows outside tolerance, or empty rows not exactly -inf
  bool lse_checked = false;
  std::string first_failure;    // human-readable description of the first failure, if any
  bool pass() const { return out_failures == 0 && lse_failures == 0; }
};

// Compares `out` (dtype elements, [total_q, hq, d]) and optionally `lse` (fp32 [total_q, hq],
// nullptr to skip) with the case's expected arrays. Empty rows (expected LSE -inf) must have
// out exactly 0 and LSE exactly -inf.
Comparison Compare(const Case& c, DType dtype, const void* out, const float* lse);

// Converts n elements of dtype storage to float.
std::vector<float> ToFloat(DType dtype, const void* data, int64_t n);

}  // namespace hbsa::golden

#endif  // HBSA_GOLDEN_H_
