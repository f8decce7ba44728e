// attention_d128_fp16.cu: instantiations of the tensor-core kernel for D <= 128, fp16.
#include "attention_launch.cuh"

namespace hbsa::cuda_internal {
template cudaError_t LaunchTensorCore<__half, 128, 64, 64>(const KernelParams&, cudaStream_t);
template cudaError_t LaunchTensorCore<__half, 128, 128, 64>(const KernelParams&, cudaStream_t);
}  // namespace hbsa::cuda_internal
