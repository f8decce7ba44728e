// attention_d256_fp16.cu: instantiations of the tensor-core kernel for D <= 256, fp16.
#include "attention_launch.cuh"

namespace hbsa::cuda_internal {
template cudaError_t LaunchTensorCore<__half, 256, 64, 64>(const KernelParams&, cudaStream_t);
}  // namespace hbsa::cuda_internal
