// hopper_launch.cuh: grid, shared memory and launch of HopperAttentionKernel, plus the probe that
// says whether its sm_90a machine code can run on the current device. Included only by the
// hopper_d<D>_<dtype>.cu instantiation files (compiled for sm_90a only).
#ifndef HBSA_CUDA_HOPPER_LAUNCH_CUH_
#define HBSA_CUDA_HOPPER_LAUNCH_CUH_

#include "hopper_kernel.cuh"
#include "launch.h"

namespace hbsa::cuda_internal {

template <typename T, int kD, int kBlockM>
cudaError_t LaunchHopper(const KernelParams& p, cudaStream_t stream) {
  using Cfg = HopperConfig<T, kD, kBlockM>;
  if (p.num_q_tiles == 0 || p.num_heads_q == 0) return cudaSuccess;
  auto kernel = HopperAttentionKernel<T, kD, kBlockM>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Cfg::kSmemBytes));
  if (err != cudaSuccess) return err;
  const dim3 grid(p.num_q_tiles, p.num_heads_q);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_HOPPER_LAUNCH_CUH_
