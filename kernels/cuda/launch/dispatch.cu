// launch/dispatch.cu: the one map from a planned kernel and runtime (dtype, head dim, tile rows)
// to a compiled instance. The table is generated from the instance list
// (instances/instances.cmake), the same list heuristics.h checks when PlanRequest chooses the
// kernel, so PlanRequest refuses what is not here and nothing falls back silently.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "heuristics.h"
#include "launch/launch.h"

namespace hbsa::cuda_internal {
namespace {

using Launcher = LaunchResult (*)(const KernelParams&, cudaStream_t);

struct Instance {
  CudaKernel kernel;
  DType dtype;
  int32_t head_dim;  // compiled (64, 128, 256)
  int32_t block_m;   // tile rows
  Launcher launch;
};

constexpr Instance kInstances[] = {
#define HBSA_MMA_SYNC_INSTANCE(T, E, D, M) \
  {CudaKernel::kMmaSync, DType::E, D, M, &LaunchMmaSync<T, D, M, 64>},
#define HBSA_WGMMA_INSTANCE(T, E, D, M) \
  {CudaKernel::kWgmmaTma, DType::E, D, M, &LaunchWgmma<T, D, M>},
#include "hbsa_cuda_instances.inc"
#undef HBSA_MMA_SYNC_INSTANCE
#undef HBSA_WGMMA_INSTANCE
};

}  // namespace

LaunchResult LaunchAttention(CudaKernel kernel, DType dtype, const KernelParams& p,
                             cudaStream_t stream) {
  if (kernel == CudaKernel::kSimtFp32) return LaunchSimtFp32(p, stream);
  const int32_t d = CompiledHeadDim(p.head_dim);
  for (const Instance& in : kInstances) {
    if (in.kernel == kernel && in.dtype == dtype && in.head_dim == d &&
        in.block_m == p.tile.block_m) {
      return in.launch(p, stream);
    }
  }
  return {cudaErrorInvalidConfiguration, "no compiled instance"};
}

}  // namespace hbsa::cuda_internal
