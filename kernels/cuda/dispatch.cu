// dispatch.cu: the one place that maps runtime (dtype, head dim, tile rows) to a compiled
// kernel instance. heuristics.h chose the tile and says when the wgmma (sm_90a) kernel runs;
// PlanRequest already refused what is not here.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "heuristics.h"
#include "launch.h"

namespace hbsa::cuda_internal {
namespace {

// Whether the current device takes the wgmma path for fp16/bf16 requests of D <= 128: its
// compute capability and the sm_90a image probe, cached per device (no synchronisation: both
// are attribute queries), and the HBSA_CUDA_NO_WGMMA=1 override.
bool DeviceUsesHopper(DType dtype, int32_t head_dim) {
#ifdef HBSA_HAVE_HOPPER
  static const bool disabled = [] {
    const char* env = std::getenv("HBSA_CUDA_NO_WGMMA");
    return env != nullptr && std::strcmp(env, "1") == 0;
  }();
  constexpr int kMaxDevices = 64;
  static std::atomic<int8_t> cached[kMaxDevices];  // 0 unknown, 1 no, 2 yes
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) {
    (void)cudaGetLastError();
    return false;
  }
  int8_t state = cached[dev].load(std::memory_order_relaxed);
  if (state == 0) {
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      major = 0;
    }
    const bool image = major == 9 && HopperImagePresent();
    state = UseHopperPath(major, image, DType::kBFloat16, 128, false) ? 2 : 1;
    cached[dev].store(state, std::memory_order_relaxed);
  }
  return UseHopperPath(state == 2 ? 9 : 0, state == 2, dtype, head_dim, disabled);
#else
  (void)dtype;
  (void)head_dim;
  return false;
#endif
}

template <typename T>
cudaError_t LaunchHalfPrecision(DType dtype, const KernelParams& p, cudaStream_t stream) {
  // The tile rows chosen by ChooseTile must match the compiled instance.
  const bool wide = p.tile.block_m == 128 && p.tile.block_n == 64;
  const bool narrow = p.tile.block_m == 64 && p.tile.block_n == 64;
#ifdef HBSA_HAVE_HOPPER
  if (DeviceUsesHopper(dtype, p.head_dim)) {
    // HBSA_HOPPER_KERNEL=simple selects the v1 kernel (A/B measurements).
    static const HopperVariant variant = [] {
      const char* env = std::getenv("HBSA_HOPPER_KERNEL");
      return env != nullptr && std::strcmp(env, "simple") == 0 ? HopperVariant::kSimple
                                                                 : HopperVariant::kWarpSpecialized;
    }();
    switch (CompiledHeadDim(p.head_dim)) {
      case 64:
        if (wide) return LaunchHopper<T, 64, 128>(p, variant, stream);
        if (narrow) return LaunchHopper<T, 64, 64>(p, variant, stream);
        break;
      case 128:
        if (wide) return LaunchHopper<T, 128, 128>(p, variant, stream);
        if (narrow) return LaunchHopper<T, 128, 64>(p, variant, stream);
        break;
      default:
        break;
    }
  }
#else
  (void)dtype;
#endif
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
    case DType::kFloat16: return LaunchHalfPrecision<__half>(dtype, p, stream);
    case DType::kBFloat16: return LaunchHalfPrecision<__nv_bfloat16>(dtype, p, stream);
    case DType::kFloat32: return LaunchSimtFp32(p, stream);
  }
  return cudaErrorInvalidConfiguration;
}

}  // namespace hbsa::cuda_internal
