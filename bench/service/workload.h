// bench/service/workload.h: the requests of the service benchmark, built in caller memory.
//
// Two families:
//   sweep<BYTES>  one sequence, Hq = Hk = 8, D = 128, bf16, 128 x 128 blocks, each query block
//                 sees only its own key block (compute grows linearly, so the payload dominates);
//                 the token count is chosen so q + k + v hold about BYTES bytes.
//   void<BYTES>   the same shapes with every block off: out is all zeros and the kernel does
//                 next to nothing, so the call is pure data path
//   named cases   the requests of issue 10's table:
//                   small128  1 x 128 tokens, 8/8 heads, D 128, bf16, all blocks on
//                   req3mb    1 x 512 tokens, 8/8 heads, D 128, bf16, all blocks on (3.1 MB)
//                   req200mb  1 x 16384 tokens, 32/8 heads, D 128, bf16, causal (201 MB)
// Inputs are small random bf16 values; the mask is compact CSR.
#ifndef HBSA_BENCH_SERVICE_WORKLOAD_H_
#define HBSA_BENCH_SERVICE_WORKLOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hbsa/attention.h"

namespace hbsa::bench {

struct BenchRequest {
  std::string name;
  AttentionArgs args;                 // points into the vectors below
  std::vector<uint16_t> q, k, v;      // bf16 bits
  std::vector<int32_t> cu_q, cu_k;
  std::vector<int64_t> row_offsets;   // compact mask
  std::vector<int32_t> col_indices;
  std::vector<uint16_t> out;          // caller memory for the answer
  std::vector<float> lse;             // empty: no LSE asked
  int64_t input_bytes = 0;            // q + k + v
  int64_t output_bytes = 0;           // out
};

// "sweep65536", "small128", "req3mb", "req200mb"; INVALID_ARGUMENT for other names.
absl::StatusOr<std::unique_ptr<BenchRequest>> MakeBenchRequest(const std::string& name);

// Parses "64K,1M,256M" into byte counts.
absl::StatusOr<std::vector<int64_t>> ParseSizes(const std::string& list);

}  // namespace hbsa::bench

#endif  // HBSA_BENCH_SERVICE_WORKLOAD_H_
