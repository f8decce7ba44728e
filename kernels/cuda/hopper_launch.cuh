// hopper_launch.cuh: grid, shared memory and launch of the wgmma kernels (HopperAttentionKernel,
// HopperWsAttentionKernel). Included only by the
// hopper_d<D>_<dtype>.cu instantiation files (compiled for sm_90a only).
#ifndef HBSA_CUDA_HOPPER_LAUNCH_CUH_
#define HBSA_CUDA_HOPPER_LAUNCH_CUH_

#include <cuda.h>
#include <cudaTypedefs.h>

#include <tuple>
#include <type_traits>

#include "hopper_kernel.cuh"
#include "hopper_ws_kernel.cuh"
#include "launch.h"

namespace hbsa::cuda_internal {

// cuTensorMapEncodeTiled from the driver (through the runtime: no link against libcuda), or
// nullptr when the driver does not offer it.
inline PFN_cuTensorMapEncodeTiled_v12000 TensorMapEncoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                         &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      f = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// TMA map of k or v viewed as [total_k rows, Hk * D columns], boxes of 64 x 64 elements with the
// 128-byte swizzle (one SW128 panel of a 64-key tile). Pure host work, no synchronisation.
template <typename T>
bool MakeKvTensorMap(CUtensorMap* map, const void* base, const KernelParams& p) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = TensorMapEncoder();
  if (encode == nullptr || p.total_k <= 0) return false;
  const cuuint64_t dims[2] = {cuuint64_t(p.num_heads_k) * cuuint64_t(p.head_dim),
                              cuuint64_t(p.total_k)};
  const cuuint64_t strides[1] = {dims[0] * sizeof(T)};
  const cuuint32_t box[2] = {64, 64};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUtensorMapDataType type = std::is_same<T, __half>::value
                                       ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                       : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  return encode(map, type, 2, const_cast<void*>(base), dims, strides, box, elem_strides,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename Cfg, typename Kernel, typename... Args>
cudaError_t LaunchHopperKernel(Kernel kernel, cudaStream_t stream, const Args&... args) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Cfg::kSmemBytes));
  if (err != cudaSuccess) return err;
  const KernelParams& p = std::get<0>(std::tie(args...));
  const dim3 grid(p.num_q_tiles, p.num_heads_q);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(args...);
  return cudaGetLastError();
}

// kWarpSpecialized runs HopperWsAttentionKernel when D == kD and both TMA maps could be built;
// everything else (narrower D, kSimple) runs HopperAttentionKernel.
template <typename T, int kD, int kBlockM>
cudaError_t LaunchHopper(const KernelParams& p, HopperVariant variant, cudaStream_t stream) {
  if (p.num_q_tiles == 0 || p.num_heads_q == 0) return cudaSuccess;
  if (variant == HopperVariant::kWarpSpecialized && p.head_dim == kD) {
    CUtensorMap map_k, map_v;
    if (MakeKvTensorMap<T>(&map_k, p.k, p) && MakeKvTensorMap<T>(&map_v, p.v, p)) {
      return LaunchHopperKernel<HopperWsConfig<T, kD, kBlockM>>(
          HopperWsAttentionKernel<T, kD, kBlockM>, stream, p, map_k, map_v);
    }
  }
  return LaunchHopperKernel<HopperConfig<T, kD, kBlockM>>(HopperAttentionKernel<T, kD, kBlockM>,
                                                          stream, p);
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_HOPPER_LAUNCH_CUH_
