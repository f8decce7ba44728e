// hopper_d64_bf16.cu: instantiations of the wgmma (sm_90a) kernel for D <= 64, bf16.
#include "hopper_launch.cuh"

namespace hbsa::cuda_internal {
template cudaError_t LaunchHopper<__nv_bfloat16, 64, 64>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
template cudaError_t LaunchHopper<__nv_bfloat16, 64, 128>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
}  // namespace hbsa::cuda_internal
