// bench_workload.h: what hbsa-bench sends: a synthetic batch built from shape flags, or a golden
// case folder, turned into one prebuilt AttendRequest, plus the expected answer for correctness
// spot-checks (the case's own out/lse, or hbsa::Run(kCpu) for synthetic inputs).
#ifndef HBSA_CLIENT_TOOLS_BENCH_WORKLOAD_H_
#define HBSA_CLIENT_TOOLS_BENCH_WORKLOAD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "hbsa/client.h"
#include "hbsa/golden.h"

namespace hbsa::tools {

// Shape of a synthetic request. Every sequence has the same lengths.
struct SyntheticSpec {
  int32_t batch = 4;             // B sequences
  int32_t seqlen_q = 512;        // Lq per sequence
  int32_t seqlen_k = 512;        // Lk per sequence
  int32_t heads_q = 8;           // Hq
  int32_t heads_k = 2;           // Hk (Hq % Hk == 0)
  int32_t head_dim = 64;         // D
  DType dtype = DType::kFloat16;
  int32_t q_block_size = 64;     // Sq
  int32_t k_block_size = 64;     // Sk
  double density = 0.5;          // fraction of same-sequence mask blocks switched on, (0, 1]
  bool causal = false;
  uint64_t seed = 1;             // inputs are uniform in [-1, 1), mask bits Bernoulli(density)
};

struct Workload {
  std::string description;                          // one line for reports
  golden::Case data;                                // inputs and (once computed) expected arrays
  bool has_expected = false;                        // data.out / data.lse hold the answer
  std::shared_ptr<const v1::AttendRequest> request; // what is sent, every time
  int64_t allowed_pairs = 0;                        // useful (row, key, head) triples per request
};

// Builds a synthetic workload; the mask always has at least one block on per sequence and head.
absl::StatusOr<std::unique_ptr<Workload>> MakeSyntheticWorkload(
    const SyntheticSpec& spec, const client::RequestOptions& options);

// Loads a golden case folder; its out.npy/lse.npy are the expected answer.
absl::StatusOr<std::unique_ptr<Workload>> LoadCaseWorkload(const std::string& dir,
                                                           const client::RequestOptions& options);

// Fills data.out/data.lse with hbsa::Run(kCpu), the fast CPU backend (no-op when has_expected).
absl::Status ComputeExpected(Workload* w);

}  // namespace hbsa::tools

#endif  // HBSA_CLIENT_TOOLS_BENCH_WORKLOAD_H_
