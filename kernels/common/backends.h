// backends.h (internal): the entry points hbsa::Run dispatches to. Each receives arguments that
// Validate accepted, plus the host layout and visit lists built once by Run.
#ifndef HBSA_COMMON_BACKENDS_H_
#define HBSA_COMMON_BACKENDS_H_

#include "absl/status/status.h"
#include "hbsa/attention.h"
#include "hbsa/plan.h"

namespace hbsa::internal {

// kernels/cpu/reference.cc: float64 oracle.
absl::Status RunReference(const AttentionArgs& args, const BlockLayout& layout,
                          const VisitList& visits);

// kernels/cpu/cpu_backend.cc: fast fp32-accumulating backend on a thread pool.
absl::Status RunCpu(const AttentionArgs& args, const BlockLayout& layout, const VisitList& visits,
                    const RunOptions& options);

// kernels/cuda/ when HBSA_WITH_CUDA, else kernels/common/cuda_unavailable.cc (UNIMPLEMENTED).
// Plans on the device from the layout and mask; the host VisitList is not needed.
absl::Status RunCuda(const AttentionArgs& args, const RunOptions& options);

}  // namespace hbsa::internal

#endif  // HBSA_COMMON_BACKENDS_H_
