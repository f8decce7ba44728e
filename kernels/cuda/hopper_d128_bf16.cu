// hopper_d128_bf16.cu: instantiations of the wgmma (sm_90a) kernel for D <= 128, bf16.
#include "hopper_launch.cuh"

namespace hbsa::cuda_internal {
template cudaError_t LaunchHopper<__nv_bfloat16, 128, 64>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
template cudaError_t LaunchHopper<__nv_bfloat16, 128, 128>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
}  // namespace hbsa::cuda_internal

namespace hbsa::cuda_internal {
// The sm_90a image is present and loadable on the current device when the runtime can describe
// one of its kernels; a failed probe's error is cleared so the next launch does not report it.
bool HopperImagePresent() {
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, HopperAttentionKernel<__nv_bfloat16, 128, 128>) == cudaSuccess) {
    return true;
  }
  (void)cudaGetLastError();
  return false;
}
}  // namespace hbsa::cuda_internal
