// dispatch.cu: the one place that maps runtime (dtype, head dim, tile rows) to a compiled
// kernel instance. heuristics.h chose the tile; PlanRequest already refused what is not here.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "heuristics.h"
#include "launch.h"

namespace hbsa::cuda_internal {
namespace {

template <typename T>
cudaError_t LaunchHalfPrecision(const KernelParams& p, cudaStream_t stream) {
  const bool wide = p.tile.block_m == 128;
  switch (CompiledHeadDim(p.head_dim)) {
    case 64:
      return wide ? LaunchTensorCore<T, 64, 128>(p, stream) : LaunchTensorCore<T, 64, 64>(p, stream);
    case 128:
      return wide ? LaunchTensorCore<T, 128, 128>(p, stream) : LaunchTensorCore<T, 128, 64>(p, stream);
    case 256:
      return wide ? cudaErrorInvalidConfiguration : LaunchTensorCore<T, 256, 64>(p, stream);
    default:
      return cudaErrorInvalidConfiguration;
  }
}

}  // namespace

cudaError_t LaunchAttention(DType dtype, const KernelParams& p, cudaStream_t stream) {
  switch (dtype) {
    case DType::kFloat16: return LaunchHalfPrecision<__half>(p, stream);
    case DType::kBFloat16: return LaunchHalfPrecision<__nv_bfloat16>(p, stream);
    case DType::kFloat32: return LaunchSimtFp32(p, stream);
  }
  return cudaErrorInvalidConfiguration;
}

}  // namespace hbsa::cuda_internal
