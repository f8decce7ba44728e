// server/cuda_seam.h: the one seam between the server and its CUDA executor.
//
// With HBSA_WITH_CUDA, cuda_executor.cc implements these; without it,
// cuda_unavailable.cc reports no devices, so the rest of the server has no #ifdefs.
#ifndef HBSA_SERVER_CUDA_SEAM_H_
#define HBSA_SERVER_CUDA_SEAM_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "executor.h"
#include "metrics.h"
#include "scheduler.h"
#include "shm.h"

namespace hbsa::server {

struct CudaExecutorOptions {
  int device = 0;                   // ordinal
  int streams = 4;                  // CUDA streams on this device
  int64_t memory_budget_bytes = 0;  // device arena; 0 = 80% of the device's free memory at start
  int staging_threads = 4;          // host threads staging and issuing requests
  int64_t host_staging_bytes = 0;   // pinned staging arena; 0 = 4 GiB
  BatchPolicy batch;                // dynamic batching (off when batch.max_tokens is 0)
  ShmRegistry* shm = nullptr;       // shared-memory registrations (may be null)
};

// Hooks that register shared-memory mappings with CUDA (cudaHostRegister) so copies to and from
// them are DMA without staging; empty functions without CUDA.
ShmRegistry::MapHook CudaShmMapHook();
ShmRegistry::UnmapHook CudaShmUnmapHook();

// GPUs visible to this process (0 without a driver, a GPU, or CUDA support in the build).
int CudaDeviceCount();

// The PCI bus id of CUDA device `device` ("0000:3b:00.0"), which names it to NVML
// (gpu_metrics.h); NOT_FOUND when CUDA cannot tell, UNIMPLEMENTED without CUDA in the build.
absl::StatusOr<std::string> CudaPciBusId(int device);

// An executor for one GPU; UNIMPLEMENTED when the build has no CUDA backend.
absl::StatusOr<std::unique_ptr<Executor>> MakeCudaExecutor(const CudaExecutorOptions& options,
                                                           Scheduler* scheduler, Metrics* metrics,
                                                           FatalHandler on_fatal);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_CUDA_SEAM_H_
