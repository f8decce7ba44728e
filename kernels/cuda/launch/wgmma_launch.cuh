// launch/wgmma_launch.cuh: TMA descriptors, grid, shared memory and launch of
// WgmmaAttentionKernel (device/wgmma_kernel.cuh). Included only by the generated
// per-(dtype, head dim) instantiation files, which are compiled for sm_90a only.
#ifndef HBSA_CUDA_LAUNCH_WGMMA_LAUNCH_CUH_
#define HBSA_CUDA_LAUNCH_WGMMA_LAUNCH_CUH_

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <type_traits>

#include "device/wgmma_kernel.cuh"
#include "launch/launch.h"

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

// TMA map of k or v with boxes of [box_rows keys, 64 columns] and the 128-byte swizzle (one
// SW128 panel of box_rows rows). `flat` (D == the compiled head dim): viewed as [total_k,
// Hk * D], the addressing the kernel had before gathering (a box of head hk never reaches the
// next head). Otherwise viewed as [total_k, Hk, D] (innermost first: D, Hk, rows) with boxes of
// one head: columns past D are outside the tensor and read as zeros. Needs D % 8 == 0 (16-byte
// strides). Pure host work, no synchronisation.
template <typename T>
bool MakeKvTensorMap(CUtensorMap* map, const void* base, const KernelParams& p, int box_rows,
                     bool flat) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = TensorMapEncoder();
  if (encode == nullptr) return false;
  const cuuint64_t d = cuuint64_t(p.head_dim), hk = cuuint64_t(p.num_heads_k);
  const cuuint64_t rows = cuuint64_t(std::max<int64_t>(p.total_k, 1));
  const cuuint64_t dims3[3] = {d, hk, rows}, dims2[2] = {d * hk, rows};
  const cuuint64_t strides3[2] = {d * sizeof(T), d * hk * sizeof(T)};
  const cuuint64_t strides2[1] = {d * hk * sizeof(T)};
  const cuuint32_t box3[3] = {64, 1, cuuint32_t(box_rows)}, box2[2] = {64, cuuint32_t(box_rows)};
  const cuuint32_t elem_strides[3] = {1, 1, 1};
  const CUtensorMapDataType type = std::is_same<T, __half>::value
                                       ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                       : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  return encode(map, type, flat ? 2 : 3, const_cast<void*>(base), flat ? dims2 : dims3,
                flat ? strides2 : strides3, flat ? box2 : box3, elem_strides,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename T, int kD, int kBlockM>
LaunchResult LaunchWgmma(const KernelParams& p, cudaStream_t stream) {
  using Cfg = WgmmaConfig<T, kD, kBlockM>;
  if (p.num_q_tiles == 0 || p.num_heads_q == 0) return {};
  if (TensorMapEncoder() == nullptr) {
    return {cudaErrorNotSupported, "cuTensorMapEncodeTiled (the driver does not offer it)"};
  }
  const bool flat = p.head_dim == kD;  // the kernel makes the same test
  CUtensorMap k64, v64, k16, v16;
  if (!MakeKvTensorMap<T>(&k64, p.k, p, Cfg::kBlockN, flat)) {
    return {cudaErrorInvalidValue, "TMA descriptor of k (64-key boxes)"};
  }
  if (!MakeKvTensorMap<T>(&v64, p.v, p, Cfg::kBlockN, flat)) {
    return {cudaErrorInvalidValue, "TMA descriptor of v (64-key boxes)"};
  }
  if (!MakeKvTensorMap<T>(&k16, p.k, p, kChunkKeys, flat)) {
    return {cudaErrorInvalidValue, "TMA descriptor of k (16-key boxes)"};
  }
  if (!MakeKvTensorMap<T>(&v16, p.v, p, kChunkKeys, flat)) {
    return {cudaErrorInvalidValue, "TMA descriptor of v (16-key boxes)"};
  }
  auto kernel = WgmmaAttentionKernel<T, kD, kBlockM>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Cfg::kSmemBytes));
  if (err != cudaSuccess) return {err, "cudaFuncSetAttribute (dynamic shared memory)"};
  const dim3 grid(p.num_q_tiles, p.num_heads_q / p.tile.heads);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p, k64, v64, k16, v16);
  return {cudaGetLastError(), "kernel launch"};
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_LAUNCH_WGMMA_LAUNCH_CUH_
