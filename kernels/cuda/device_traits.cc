// device_traits.cc: CurrentDeviceTraits (device_traits.h).
#include "device_traits.h"

#include <cuda_runtime_api.h>

#include <atomic>

#include "launch/launch.h"

namespace hbsa::cuda_internal {

DeviceTraits CurrentDeviceTraits() {
  constexpr int kMaxDevices = 64;
  // Per device: 0 unknown, else 1 + cc_major * 2 + sm90a_image.
  static std::atomic<int> cached[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) {
    (void)cudaGetLastError();
    return DeviceTraits{};
  }
  int state = cached[dev].load(std::memory_order_relaxed);
  if (state == 0) {
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return DeviceTraits{};
    }
#ifdef HBSA_HAVE_WGMMA
    const bool image = major == 9 && WgmmaImageLoads();
#else
    const bool image = false;
#endif
    state = 1 + major * 2 + (image ? 1 : 0);
    cached[dev].store(state, std::memory_order_relaxed);
  }
  return DeviceTraits{(state - 1) / 2, ((state - 1) & 1) != 0};
}

}  // namespace hbsa::cuda_internal
