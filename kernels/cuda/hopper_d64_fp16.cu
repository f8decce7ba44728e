// hopper_d64_fp16.cu: instantiations of the wgmma (sm_90a) kernel for D <= 64, fp16.
#include "hopper_launch.cuh"

namespace hbsa::cuda_internal {
template cudaError_t LaunchHopper<__half, 64, 64>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
template cudaError_t LaunchHopper<__half, 64, 128>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
}  // namespace hbsa::cuda_internal
