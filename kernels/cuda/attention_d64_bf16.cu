// attention_d64_bf16.cu: instantiations of the tensor-core kernel for D <= 64, bf16.
#include "attention_launch.cuh"

namespace hbsa::cuda_internal {
template cudaError_t LaunchTensorCore<__nv_bfloat16, 64, 64, 64>(const KernelParams&, cudaStream_t);
template cudaError_t LaunchTensorCore<__nv_bfloat16, 64, 128, 64>(const KernelParams&, cudaStream_t);
}  // namespace hbsa::cuda_internal
