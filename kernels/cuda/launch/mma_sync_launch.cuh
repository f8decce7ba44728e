// launch/mma_sync_launch.cuh: grid, shared memory and launch of TcAttentionKernel (the portable
// mma.sync kernel, device/mma_sync_kernel.cuh). Included only by the generated per-(dtype, head
// dim) instantiation files, so each compiles in parallel.
#ifndef HBSA_CUDA_LAUNCH_MMA_SYNC_LAUNCH_CUH_
#define HBSA_CUDA_LAUNCH_MMA_SYNC_LAUNCH_CUH_

#include "device/mma_sync_kernel.cuh"
#include "launch/launch.h"

namespace hbsa::cuda_internal {

template <typename T, int kD, int kBlockM, int kBlockN>
LaunchResult LaunchMmaSync(const KernelParams& p, cudaStream_t stream) {
  using Cfg = TcConfig<T, kD, kBlockM, kBlockN>;
  if (p.num_q_tiles == 0 || p.num_heads_q == 0) return {};
  auto kernel = TcAttentionKernel<T, kD, kBlockM, kBlockN>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Cfg::kSmemBytes));
  if (err != cudaSuccess) return {err, "cudaFuncSetAttribute (dynamic shared memory)"};
  const dim3 grid(p.num_q_tiles, p.num_heads_q);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return {cudaGetLastError(), "kernel launch"};
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_LAUNCH_MMA_SYNC_LAUNCH_CUH_
