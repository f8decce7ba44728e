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
  const int rows = p.tile.block_m;
  switch (CompiledHeadDim(p.head_dim)) {
    case 64:
      return rows == 128 ? LaunchTensorCore<T, 64, 128>(p, stream) : LaunchTensorCore<T, 64, 64>(p, stream);
    case 128:
      return rows == 128 ? LaunchTensorCore<T, 128, 128>(p, stream) : LaunchTensorCore<T, 128, 64>(p, stream);
    case 256:
      return rows == 64 ? LaunchTensorCore<T, 256, 64>(p, stream) : cudaErrorInvalidConfiguration;
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
