// device/simt_fp32_kernel.cuh: the fp32 forward kernel (CudaKernel::kSimtFp32), in true fp32 on
// the CUDA cores (no TF32); launched by launch/simt_fp32.cu. Same visit lists, same masking
// rule and the same online softmax as the mma.sync kernel (natural-log domain here), written
// for clarity over speed: fp32 requests are for exactness.
//
// One CTA (8 warps) per (32-row query tile, query head); each warp owns 4 query rows. For each
// live 32-key tile, lane j scores key j for each of the warp's rows, then every lane
// accumulates its columns d = lane + 32 c of O with the probabilities broadcast by shuffles.
#ifndef HBSA_CUDA_DEVICE_SIMT_FP32_KERNEL_CUH_
#define HBSA_CUDA_DEVICE_SIMT_FP32_KERNEL_CUH_

#include <cstdint>

#include "params.h"

namespace hbsa::cuda_internal {
namespace simt {

constexpr int kRows = 32;          // query rows per tile (TileShape{32, 32})
constexpr int kKeys = 32;          // key rows per tile
constexpr int kWarps = 8;
constexpr int kRowsPerWarp = kRows / kWarps;
constexpr int kMaxColsPerLane = 256 / 32;  // D <= 256

__global__ void __launch_bounds__(kWarps * 32) SimtFp32Kernel(const KernelParams p) {
  extern __shared__ float smem[];
  const int d = p.head_dim, kd_pad = d + 1;
  float* sQ = smem;                 // [kRows, d]
  float* sK = sQ + kRows * d;       // [kKeys, d + 1] (padded: lanes read different rows)
  float* sV = sK + kKeys * kd_pad;  // [kKeys, d]

  const int32_t t = p.num_q_tiles - 1 - static_cast<int32_t>(blockIdx.x);
  const int32_t h = blockIdx.y, hk = h / p.group;
  const TileRows tr = TileRowsOf(p, t);
  const int64_t q_stride = int64_t{p.num_heads_q} * d, kv_stride = int64_t{p.num_heads_k} * d;
  const int64_t q_row0 = int64_t{p.layout.cu_seqlens_q[tr.b]} + tr.row0;
  const float* gQ = static_cast<const float*>(p.q) + q_row0 * q_stride + int64_t{h} * d;
  const int64_t kv_off = int64_t{p.layout.cu_seqlens_k[tr.b]} * kv_stride + int64_t{hk} * d;
  const float* gK = static_cast<const float*>(p.k) + kv_off;
  const float* gV = static_cast<const float*>(p.v) + kv_off;
  const int32_t n_visits = p.visit_count[int64_t{hk} * p.num_q_tiles + t];
  const uint32_t* visits = p.visits + int64_t{hk} * p.plane_slots + p.q_tile_base[t];

  for (int idx = threadIdx.x; idx < kRows * d; idx += blockDim.x) {
    const int r = idx / d, c = idx % d;
    sQ[idx] = tr.row0 + r < tr.lq ? gQ[r * q_stride + c] : 0.f;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float acc[kRowsPerWarp][kMaxColsPerLane] = {};
  float row_max[kRowsPerWarp], row_sum[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) row_max[r] = -INFINITY, row_sum[r] = 0.f;

  for (int32_t it = 0; it < n_visits; ++it) {
    const uint32_t entry = visits[it];
    const int64_t j0 = int64_t{entry & kTileIndexMask} * kKeys;
    __syncthreads();  // previous tile fully consumed
    for (int idx = threadIdx.x; idx < kKeys * d; idx += blockDim.x) {
      const int r = idx / d, c = idx % d;
      const bool ok = j0 + r < tr.lk;
      sK[r * kd_pad + c] = ok ? gK[(j0 + r) * kv_stride + c] : 0.f;
      sV[r * d + c] = ok ? gV[(j0 + r) * kv_stride + c] : 0.f;
    }
    __syncthreads();
    const uint32_t flags = HalfFlags(entry, 0);  // 32-row tiles: one half
    const bool partial = (flags & kHalfPartial) != 0;
    const bool single = (flags & kHalfSingleBlock) != 0;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      const int64_t i = tr.row0 + row, j = j0 + lane;
      // The dot product accumulates in fp64 (cheap on sm_90) so the score, and with it the LSE,
      // stays within fp32 rounding of the float64 reference for any D.
      double dot = 0.0;
      for (int c = 0; c < d; ++c) dot = fma(double(sQ[row * d + c]), double(sK[lane * kd_pad + c]), dot);
      float s = static_cast<float>(dot * double(p.scale));
      if (partial) {
        bool ok = i < tr.lq && j < tr.lk;
        if (ok) {
          ok = single ? (!p.causal || CausalAllows(i, j, tr.lq, tr.lk))
                      : ElementAllowed(p.layout, p.mask, p.causal, hk, tr.b, i, j);
        }
        if (!ok) s = -INFINITY;
      }
      float mx = s;
      for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      mx = fmaxf(mx, row_max[r]);
      const float m_use = mx == -INFINITY ? 0.f : mx;
      const float alpha = expf(row_max[r] - m_use);
      row_max[r] = mx;
      const float pr = expf(s - m_use);
      float sum = pr;
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      row_sum[r] = row_sum[r] * alpha + sum;
#pragma unroll
      for (int c = 0; c < kMaxColsPerLane; ++c) acc[r][c] *= alpha;
      for (int key = 0; key < kKeys; ++key) {
        const float pk = __shfl_sync(0xffffffffu, pr, key);
#pragma unroll
        for (int c = 0; c < kMaxColsPerLane; ++c) {
          const int col = c * 32 + lane;
          if (col < d) acc[r][c] = fmaf(pk, sV[key * d + col], acc[r][c]);
        }
      }
    }
  }

  float* gO = static_cast<float*>(p.out) + q_row0 * q_stride + int64_t{h} * d;
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = warp * kRowsPerWarp + r;
    if (tr.row0 + row >= tr.lq) continue;
    const float l = row_sum[r];
    const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int c = 0; c < kMaxColsPerLane; ++c) {
      const int col = c * 32 + lane;
      if (col < d) gO[row * q_stride + col] = acc[r][c] * inv;
    }
    if (p.lse != nullptr && lane == 0) {
      p.lse[(q_row0 + row) * p.num_heads_q + h] =
          l > 0.f ? row_max[r] + logf(l) : -INFINITY;
    }
  }
}

}  // namespace simt
}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_SIMT_FP32_KERNEL_CUH_
