// server/cuda_seam.h: the one seam between the server and its CUDA executor.
//
// With HBSA_WITH_CUDA, cuda_executor.cc implements these; without it,
// cuda_unavailable.cc reports no devices, so the rest of the server has no #ifdefs.
#ifndef HBSA_SERVER_CUDA_SEAM_H_
#define HBSA_SERVER_CUDA_SEAM_H_

#include <memory>

#include "absl/status/statusor.h"
#include "executor.h"
#include "metrics.h"
#include "scheduler.h"

namespace hbsa::server {

struct CudaExecutorOptions {
  int device = 0;                   // ordinal
  int streams = 4;                  // streams (and pinned staging slots) on this device
  int64_t memory_budget_bytes = 0;  // 0 = 80% of the device's free memory at start
};

// GPUs visible to this process (0 without a driver, a GPU, or CUDA support in the build).
int CudaDeviceCount();

// An executor for one GPU; UNIMPLEMENTED when the build has no CUDA backend.
absl::StatusOr<std::unique_ptr<Executor>> MakeCudaExecutor(const CudaExecutorOptions& options,
                                                           Scheduler* scheduler, Metrics* metrics,
                                                           FatalHandler on_fatal);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_CUDA_SEAM_H_
