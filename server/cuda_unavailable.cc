// server/cuda_unavailable.cc: the CUDA seam of a build without HBSA_WITH_CUDA (no devices).
#include "cuda_seam.h"

namespace hbsa::server {

int CudaDeviceCount() { return 0; }

absl::StatusOr<std::string> CudaPciBusId(int) {
  return absl::UnimplementedError("this hbsa-server was built without CUDA");
}

ShmRegistry::MapHook CudaShmMapHook() { return nullptr; }
ShmRegistry::UnmapHook CudaShmUnmapHook() { return nullptr; }

absl::StatusOr<std::unique_ptr<Executor>> MakeCudaExecutor(const CudaExecutorOptions&, Scheduler*,
                                                           Metrics*, FatalHandler) {
  return absl::UnimplementedError("--backend cuda: this hbsa-server was built without CUDA "
                                  "(configure with -DHBSA_WITH_CUDA=ON)");
}

}  // namespace hbsa::server
