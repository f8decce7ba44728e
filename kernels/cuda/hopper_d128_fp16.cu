// hopper_d128_fp16.cu: instantiations of the wgmma (sm_90a) kernel for D <= 128, fp16.
#include "hopper_launch.cuh"

namespace hbsa::cuda_internal {
template cudaError_t LaunchHopper<__half, 128, 64>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
template cudaError_t LaunchHopper<__half, 128, 128>(const KernelParams&, HopperVariant,
                                                   cudaStream_t);
}  // namespace hbsa::cuda_internal
