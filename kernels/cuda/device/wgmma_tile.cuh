// device/wgmma_tile.cuh: the per-tile steps of the wgmma kernel (wgmma_kernel.cuh) on one
// consumer warpgroup's 64 rows: the Q tile load, S = Q K^T issue, the online softmax, the O
// rescale, P packing, and the epilogue. Fragments are in the wgmma accumulator layout
// (wgmma.cuh): S element e of n-tile nt is acc_s[4 * nt + e]; rows (lane / 4) and
// (lane / 4 + 8) of the warp's 16 are e in {0, 1} and {2, 3}. Tile row r holds query row
// row0 + r % q_rows of head h0 + r / q_rows (GQA packing, chunk_mask.h TargetOfRow).
//
// Numerics (SEMANTICS.md): log2-domain softmax with ex2.approx, running max over allowed entries
// only (masking by selection, so NaN/Inf scores of excluded keys never propagate); a row with
// no allowed key ends with l = 0 and is written as exact 0 with LSE -inf.
#ifndef HBSA_CUDA_DEVICE_WGMMA_TILE_CUH_
#define HBSA_CUDA_DEVICE_WGMMA_TILE_CUH_

#include <cstdint>

#include "device/chunk_mask.h"
#include "device/mma.cuh"
#include "device/wgmma.cuh"
#include "params.h"

namespace hbsa::cuda_internal {

// Loads the Q tile [kBlockM rows, kD columns] into SW128 panels with 16-byte cp.async (D % 8 ==
// 0, which the kernel requires); rows past the sequence end and columns >= D are zero-filled.
// Thread `tid` of kThreads takes every kThreads-th 16-byte chunk. The caller commits and waits.
template <typename T, int kD, int kBlockM, int kThreads>
__device__ __forceinline__ void LoadQTile(T* sQ, const KernelParams& p, const TileRows& tr,
                                          int32_t h0, int tid) {
  constexpr int kChunks = kD / 8;
  const int d = p.head_dim;
  const T* q = static_cast<const T*>(p.q);
  const int64_t seq_row0 = p.layout.cu_seqlens_q[tr.b];
  for (int idx = tid; idx < kBlockM * kChunks; idx += kThreads) {
    const int r = idx / kChunks, col = (idx % kChunks) * 8;
    const RowTarget tgt = TargetOfRow(p.tile, tr, h0, r);
    const bool ok = tgt.qrow < tr.lq && col < d;
    const T* src = q + ((seq_row0 + tgt.qrow) * p.num_heads_q + tgt.head) * d + col;
    CpAsync16(sQ + Sw128Offset(kBlockM, r, col), ok ? src : q, ok ? 16 : 0);
  }
}

// Issues S = Q K^T for one 64-row warpgroup: kD / 16 wgmma steps of 16 reduction columns (32
// bytes) each. The caller fences, commits and waits.
template <typename T, int kD, int kBlockM, int kBlockN>
__device__ __forceinline__ void IssueQK(float (&acc_s)[32], uint32_t q_addr, uint32_t k_addr) {
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    const uint32_t panel = kk / 4, slice = (kk % 4) * 32;
    Wgmma<T>::SS(acc_s, Sw128Desc(q_addr + panel * kBlockM * 128 + slice),
                 Sw128Desc(k_addr + panel * kBlockN * 128 + slice), kk > 0 ? 1 : 0);
  }
}

// Online softmax over one tile of S (a quad of 4 lanes shares a row): scales to the log2 domain,
// masks by selection (-inf where `allowed` is clear, so NaN scores never propagate), updates the
// running max over allowed entries only, turns S into P in place and returns each row's O
// rescale factor in alpha.
template <int kBlockN>
__device__ __forceinline__ void OnlineSoftmax(float (&acc_s)[32], uint32_t allowed,
                                              float scale_log2, float (&row_max)[2],
                                              float (&row_sum)[2], float (&alpha)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = row_max[r];
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int e = 2 * r + c;
        const float sc = acc_s[4 * nt + e] * scale_log2;
        acc_s[4 * nt + e] = (allowed >> (4 * nt + e)) & 1u ? sc : -INFINITY;
        mx = fmaxf(mx, acc_s[4 * nt + e]);
      }
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_use = mx == -INFINITY ? 0.f : mx;
    alpha[r] = Exp2(row_max[r] - m_use);
    row_max[r] = mx;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < kBlockN / 8; ++nt) {
      acc_s[4 * nt + 2 * r] = Exp2(acc_s[4 * nt + 2 * r] - m_use);
      acc_s[4 * nt + 2 * r + 1] = Exp2(acc_s[4 * nt + 2 * r + 1] - m_use);
      sum += acc_s[4 * nt + 2 * r] + acc_s[4 * nt + 2 * r + 1];
    }
    row_sum[r] = row_sum[r] * alpha[r] + sum;
  }
}

// O *= alpha per row.
template <int kPanels>
__device__ __forceinline__ void RescaleO(float (&acc_o)[kPanels][32], const float (&alpha)[2]) {
#pragma unroll
  for (int pn = 0; pn < kPanels; ++pn)
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      acc_o[pn][4 * j] *= alpha[0];
      acc_o[pn][4 * j + 1] *= alpha[0];
      acc_o[pn][4 * j + 2] *= alpha[1];
      acc_o[pn][4 * j + 3] *= alpha[1];
    }
}

// P (fp32 S fragment) packed into the register A operand of O += P V (m16n8k16 A layout: keys
// 16 ks .. 16 ks + 15 per step).
template <typename T, int kBlockN>
__device__ __forceinline__ void PackP(const float (&acc_s)[32], uint32_t (&pa)[kBlockN / 16][4]) {
#pragma unroll
  for (int ks = 0; ks < kBlockN / 16; ++ks) {
    pa[ks][0] = MmaType<T>::Pack(acc_s[8 * ks + 0], acc_s[8 * ks + 1]);
    pa[ks][1] = MmaType<T>::Pack(acc_s[8 * ks + 2], acc_s[8 * ks + 3]);
    pa[ks][2] = MmaType<T>::Pack(acc_s[8 * ks + 4], acc_s[8 * ks + 5]);
    pa[ks][3] = MmaType<T>::Pack(acc_s[8 * ks + 6], acc_s[8 * ks + 7]);
  }
}

// Epilogue of one warpgroup: normalises O and stores the rows inside the sequence; LSE in
// natural log (-inf and an all-zero row when no key was allowed). tile_row[r] is the tile row
// of the thread's row r.
template <typename T, int kD>
__device__ __forceinline__ void StoreTileRows(const KernelParams& p, const TileRows& tr,
                                              int32_t h0, const float (&acc_o)[kD / 64][32],
                                              const float (&row_max)[2], const float (&row_sum)[2],
                                              const int (&tile_row)[2], int lane) {
  const int d = p.head_dim;
  const int64_t seq_row0 = p.layout.cu_seqlens_q[tr.b];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const RowTarget tgt = TargetOfRow(p.tile, tr, h0, tile_row[r]);
    if (tgt.qrow >= tr.lq) continue;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int64_t grow = seq_row0 + tgt.qrow;  // global query row
    T* row_out = static_cast<T*>(p.out) + (grow * p.num_heads_q + tgt.head) * d;
#pragma unroll
    for (int pn = 0; pn < kD / 64; ++pn) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int col = pn * 64 + j * 8 + 2 * (lane & 3);  // even; d is even (d % 8 == 0)
        const float x0 = acc_o[pn][4 * j + 2 * r] * inv, x1 = acc_o[pn][4 * j + 2 * r + 1] * inv;
        if (col < d) *reinterpret_cast<uint32_t*>(row_out + col) = MmaType<T>::Pack(x0, x1);
      }
    }
    if (p.lse != nullptr && (lane & 3) == 0) {
      p.lse[grow * p.num_heads_q + tgt.head] =
          l > 0.f ? (row_max[r] + __log2f(l)) * 0.6931471805599453f : -INFINITY;
    }
  }
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_WGMMA_TILE_CUH_
