// backends.h (internal): the entry points hbsa::Run dispatches to. Each receives arguments that
// Validate accepted, plus the host layout and visit lists built once by Run.
#ifndef HBSA_COMMON_BACKENDS_H_
#define HBSA_COMMON_BACKENDS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "hbsa/attention.h"
#include "hbsa/plan.h"

namespace hbsa::internal {

// kernels/cpu/reference.cc: float64 oracle.
// CANCELLED once `should_stop` (may be empty) returns true; it is asked once per query row.
absl::Status RunReference(const AttentionArgs& args, const BlockLayout& layout,
                          const VisitList& visits, const std::function<bool()>& should_stop);

// Reusable buffers of ReferencePair (one per thread).
struct ReferenceScratch {
  std::vector<double> scores;  // scaled scores of the allowed keys
  std::vector<int64_t> keys;   // global key rows allowed for the pair
  std::vector<double> acc;     // [D] output accumulator
};

// The reference's float64 computation of one (query row, query head) pair: local row `li` of
// global query block `i`, query head `h`. Writes out[r, h, :] and, when args.lse is set,
// lse[r, h]. RunReference is this over every pair; the fast CPU backend calls it for the pairs
// its fp32 arithmetic could not represent (NaN/Inf inputs, overflowing scores).
void ReferencePair(const AttentionArgs& args, const BlockLayout& layout, const VisitList& visits,
                   const MaskView& mask, int32_t i, int64_t li, int64_t h, ReferenceScratch* s);

// kernels/cpu/cpu_backend.cc: fast fp32-accumulating backend on a thread pool.
absl::Status RunCpu(const AttentionArgs& args, const BlockLayout& layout, const VisitList& visits,
                    const RunOptions& options);

// kernels/cuda/ when HBSA_WITH_CUDA, else kernels/common/cuda_unavailable.cc (UNIMPLEMENTED).
// Plans on the device from the layout and mask; the host VisitList is not needed.
absl::Status RunCuda(const AttentionArgs& args, const RunOptions& options);

}  // namespace hbsa::internal

#endif  // HBSA_COMMON_BACKENDS_H_
