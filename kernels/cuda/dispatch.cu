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
  // The tile rows chosen by ChooseTile must match the compiled instance.
  const bool wide = p.tile.block_m == 128 && p.tile.block_n == 64;
  const bool narrow = p.tile.block_m == 64 && p.tile.block_n == 64;
  switch (CompiledHeadDim(p.head_dim)) {
    case 64:
      if (wide) return LaunchTensorCore<T, 64, 128, 64>(p, stream);
      if (narrow) return LaunchTensorCore<T, 64, 64, 64>(p, stream);
      break;
    case 128:
      if (wide) return LaunchTensorCore<T, 128, 128, 64>(p, stream);
      if (narrow) return LaunchTensorCore<T, 128, 64, 64>(p, stream);
      break;
    case 256:
      if (p.tile.block_m == 64 && p.tile.block_n == 64) return LaunchTensorCore<T, 256, 64, 64>(p, stream);
      break;
    default:
      break;
  }
  return cudaErrorInvalidConfiguration;
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
