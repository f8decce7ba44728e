// launch/simt_fp32.cu: launch of the exact fp32 kernel (device/simt_fp32_kernel.cuh).
#include "device/simt_fp32_kernel.cuh"
#include "launch/launch.h"

namespace hbsa::cuda_internal {

LaunchResult LaunchSimtFp32(const KernelParams& p, cudaStream_t stream) {
  using namespace simt;  // NOLINT: the kernel and its constants
  if (p.num_q_tiles == 0 || p.num_heads_q == 0) return {};
  const int d = p.head_dim;
  const size_t smem = static_cast<size_t>(kRows * d + kKeys * (d + 1) + kKeys * d) * sizeof(float);
  cudaError_t err = cudaFuncSetAttribute(
      SimtFp32Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return {err, "cudaFuncSetAttribute (dynamic shared memory)"};
  SimtFp32Kernel<<<dim3(p.num_q_tiles, p.num_heads_q), kWarps * 32, smem, stream>>>(p);
  return {cudaGetLastError(), "kernel launch"};
}

}  // namespace hbsa::cuda_internal
