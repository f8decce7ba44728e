// hopper_kernel.cuh: Hopper (sm_90a) fp16/bf16 forward kernel v1 on warpgroup MMA (wgmma), and
// the epilogue both Hopper kernels share. v1 runs head dims that are not exactly 64 or 128 (and
// HBSA_HOPPER_KERNEL=simple); hopper_ws_kernel.cuh (v2, TMA + warp specialisation) runs the rest.
//
// One CTA per (query tile t, query head h), as the mma.sync kernel, over the same planner
// visit lists (plan_kernel.cuh): kBlockM = 64 or 128 query rows on kBlockM / 64 warpgroups, each
// warpgroup owning one 64-row half of the tile (so the visit entry's per-half flags say which
// warpgroup computes a key tile), key tiles of kBlockN = 64 rows. All threads load the Q tile
// once and K/V tiles double-buffered with cp.async into 128B-swizzled shared memory (wgmma.cuh);
// tile it + 1 loads while tile it is computed. Per live key tile and warpgroup:
//   S[64 x 64] = Q K^T   wgmma m64n64k16, A = Q and B = K from shared memory (K-major),
//   mask + online softmax on the fp32 accumulator registers (log2 domain, as the mma.sync
//   kernel; the rule is hbsa::ElementAllowed / hbsa::CausalAllows, evaluated only in partial
//   tiles), P rounded to T in registers,
//   O[64 x kD] += P V    wgmma m64n64k16 per 64-column panel of V, A = P from registers,
//   B = V from shared memory (MN-major, transpose bit).
// Rows with no allowed key end with l = 0 and are written as 0 with LSE -inf. Columns past D
// and rows past the sequence end are zero-filled on load and never stored; offsets are 64-bit.
#ifndef HBSA_CUDA_HOPPER_KERNEL_CUH_
#define HBSA_CUDA_HOPPER_KERNEL_CUH_

#include <cstdint>

#include "mma.cuh"
#include "params.h"
#include "wgmma.cuh"

namespace hbsa::cuda_internal {

template <typename T, int kD, int kBlockM>
struct HopperConfig {
  static_assert(kD == 64 || kD == 128, "compiled head dims of the wgmma path: 64, 128");
  static_assert(kBlockM == 64 || kBlockM == 128, "query tiles of 64 or 128 rows");
  static constexpr int kBlockN = 64;                // key rows per tile
  static constexpr int kWarpGroups = kBlockM / 64;  // one 64-row half each
  static constexpr int kThreads = kWarpGroups * 128;
  static constexpr int kMinBlocks = kWarpGroups == 1 ? 2 : 1;
  static constexpr int kPanels = kD / 64;           // 64-column panels of a tile
  static constexpr int kQElems = kBlockM * kD;
  static constexpr int kKVElems = kBlockN * kD;
  // Tiles plus 1 KB so the base can be rounded up to the 1024-byte swizzle period.
  static constexpr size_t kSmemBytes = size_t{kQElems + 4 * kKVElems} * sizeof(T) + 1024;
};

// Loads rows [0, kRows) x columns [0, kD) of a global tile into an SW128-panel tile. Row r lives
// at g + r * row_stride; rows >= valid_rows and columns >= d are zero-filled. `vec` (d % 8 == 0)
// selects 16-byte cp.async; otherwise element loads. Thread `tid` of kThreads takes every kThreads-th
// 16-byte chunk.
template <typename T, int kD, int kRows, int kThreads>
__device__ __forceinline__ void LoadTileSw128(T* s, const T* g, int64_t row_stride,
                                              int64_t valid_rows, int d, bool vec, int tid) {
  constexpr int kChunks = kD / 8;
  for (int idx = tid; idx < kRows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, col = (idx % kChunks) * 8;
    T* dst = s + Sw128Offset(kRows, r, col);
    const bool row_ok = r < valid_rows;
    if (vec) {
      const bool ok = row_ok && col < d;
      CpAsync16(dst, ok ? g + r * row_stride + col : g, ok ? 16 : 0);
    } else {
      const T zero = MmaType<T>::FromFloat(0.f);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        dst[e] = row_ok && col + e < d ? g[r * row_stride + col + e] : zero;
      }
    }
  }
}

// Epilogue of one warpgroup: normalise O and store the rows inside the sequence; LSE in natural
// log (-inf and an all-zero row when no key was allowed). acc_o, row_max, row_sum, my_row are the
// thread's registers in the accumulator fragment layout (wgmma.cuh).
template <typename T, int kD>
__device__ __forceinline__ void HopperEpilogue(const KernelParams& p, const TileRows& tr,
                                               int32_t h, const float (&acc_o)[kD / 64][32],
                                               const float (&row_max)[2],
                                               const float (&row_sum)[2],
                                               const int64_t (&my_row)[2], int lane) {
  const int d = p.head_dim;
  const int64_t q_stride = int64_t{p.num_heads_q} * d;
  T* gO = static_cast<T*>(p.out) +
          (int64_t{p.layout.cu_seqlens_q[tr.b]} + tr.row0) * q_stride + int64_t{h} * d;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (my_row[r] >= tr.lq) continue;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    T* row_out = gO + (my_row[r] - tr.row0) * q_stride;
#pragma unroll
    for (int pn = 0; pn < kD / 64; ++pn) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int col = pn * 64 + j * 8 + 2 * (lane & 3);
        const float x0 = acc_o[pn][4 * j + 2 * r] * inv, x1 = acc_o[pn][4 * j + 2 * r + 1] * inv;
        if ((d & 1) == 0) {
          if (col < d) *reinterpret_cast<uint32_t*>(row_out + col) = MmaType<T>::Pack(x0, x1);
        } else {
          if (col < d) row_out[col] = MmaType<T>::FromFloat(x0);
          if (col + 1 < d) row_out[col + 1] = MmaType<T>::FromFloat(x1);
        }
      }
    }
    if (p.lse != nullptr && (lane & 3) == 0) {
      const int64_t grow = int64_t{p.layout.cu_seqlens_q[tr.b]} + my_row[r];
      p.lse[grow * p.num_heads_q + h] =
          l > 0.f ? (row_max[r] + __log2f(l)) * 0.6931471805599453f : -INFINITY;
    }
  }
}

// The per-tile steps both Hopper kernels share (this one and hopper_ws_kernel.cuh). Fragments are
// in the wgmma accumulator layout (wgmma.cuh): S element e of n-tile nt is acc_s[4 * nt + e],
// rows (lane / 4) and (lane / 4 + 8) of the warp's 16 are e in {0, 1} and {2, 3}.

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

// Bit set of the allowed elements of this thread's S fragment (bit 4 * nt + e) in a partial
// half-tile whose key tile starts at local key row j0; rolled loop. `single`: the half lies in
// one mask block pair that is on, so only the causal rule and the sequence ends apply.
template <int kBlockN>
__device__ __forceinline__ uint32_t PartialAllowedBits(const KernelParams& p, const TileRows& tr,
                                                       int32_t hk, bool single, int64_t j0,
                                                       const int64_t (&my_row)[2], int lane) {
  uint32_t bits = 0;
#pragma unroll 1
  for (int bit = 0; bit < kBlockN / 2; ++bit) {
    const int64_t i = my_row[(bit >> 1) & 1];
    const int64_t j = j0 + (bit >> 2) * 8 + 2 * (lane & 3) + (bit & 1);
    bool ok = i < tr.lq && j < tr.lk;
    if (ok) {
      ok = single ? (!p.causal || CausalAllows(i, j, tr.lq, tr.lk))
                  : ElementAllowed(p.layout, p.mask, p.causal, hk, tr.b, i, j);
    }
    bits |= uint32_t{ok} << bit;
  }
  return bits;
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

template <typename T, int kD, int kBlockM>
__global__ void __launch_bounds__(HopperConfig<T, kD, kBlockM>::kThreads,
                                  HopperConfig<T, kD, kBlockM>::kMinBlocks)
    HopperAttentionKernel(const KernelParams p) {
#if HBSA_HOPPER_DEVICE
  using Cfg = HopperConfig<T, kD, kBlockM>;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kPanels = Cfg::kPanels;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (SmemAddr(smem_raw) & 1023u)) & 1023u);
  T* sQ = reinterpret_cast<T*>(smem);  // [kBlockM, kD] SW128 panels
  T* sK = sQ + Cfg::kQElems;           // [2 stages][kBlockN, kD]
  T* sV = sK + 2 * Cfg::kKVElems;      // [2 stages][kBlockN, kD]

  // Heaviest tiles (last of each causal sequence) first.
  const int32_t t = p.num_q_tiles - 1 - static_cast<int32_t>(blockIdx.x);
  const int32_t h = blockIdx.y;
  const int32_t hk = h / p.group;
  const TileRows tr = TileRowsOf(p, t);
  const int d = p.head_dim;
  const bool vec = (d % 8) == 0;
  const int64_t q_stride = int64_t{p.num_heads_q} * d;
  const int64_t kv_stride = int64_t{p.num_heads_k} * d;
  const T* gQ = static_cast<const T*>(p.q) +
                (int64_t{p.layout.cu_seqlens_q[tr.b]} + tr.row0) * q_stride + int64_t{h} * d;
  const int64_t kv_off = int64_t{p.layout.cu_seqlens_k[tr.b]} * kv_stride + int64_t{hk} * d;
  const T* gK = static_cast<const T*>(p.k) + kv_off;
  const T* gV = static_cast<const T*>(p.v) + kv_off;
  const int32_t n_visits = p.visit_count[int64_t{hk} * p.num_q_tiles + t];
  const uint32_t* visits = p.visits + int64_t{hk} * p.plane_slots + p.q_tile_base[t];

  LoadTileSw128<T, kD, kBlockM, Cfg::kThreads>(sQ, gQ, q_stride, tr.lq - tr.row0, d, vec,
                                               threadIdx.x);
  auto load_kv = [&](uint32_t entry, int stage) {
    const int64_t j0 = int64_t{entry & kTileIndexMask} * kBlockN;
    LoadTileSw128<T, kD, kBlockN, Cfg::kThreads>(sK + stage * Cfg::kKVElems,
                                                 gK + j0 * kv_stride, kv_stride, tr.lk - j0, d, vec,
                                                 threadIdx.x);
    LoadTileSw128<T, kD, kBlockN, Cfg::kThreads>(sV + stage * Cfg::kKVElems,
                                                 gV + j0 * kv_stride, kv_stride, tr.lk - j0, d, vec,
                                                 threadIdx.x);
  };
  uint32_t next_entry = n_visits > 0 ? visits[0] : 0;
  if (n_visits > 0) load_kv(next_entry, 0);
  CpAsyncCommit();

  const int wg = threadIdx.x >> 7;  // warpgroup = 64-row half of the tile
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  float acc_o[kPanels][32];  // O [64, kD] of this warpgroup, one accumulator per panel
#pragma unroll
  for (int pn = 0; pn < kPanels; ++pn)
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[pn][i] = 0.f;
  // Rows (lane / 4) and (lane / 4 + 8) of the warp's 16: log2-domain running max, partial sums.
  float row_max[2], row_sum[2];
  int64_t my_row[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.f;
    my_row[r] = tr.row0 + wg * 64 + warp * 16 + (lane >> 2) + r * 8;
  }
  // Shared addresses: this warpgroup's 64 rows of Q inside each panel.
  const uint32_t q_addr = SmemAddr(sQ) + wg * 64 * 128;

  for (int32_t it = 0; it < n_visits; ++it) {
    const uint32_t entry = next_entry;
    const int stage = it & 1;
    CpAsyncWaitAll();
    FenceProxyAsync();
    __syncthreads();  // tile `it` visible to every warpgroup's wgmma; the other stage is free
    if (it + 1 < n_visits) {
      next_entry = visits[it + 1];
      load_kv(next_entry, stage ^ 1);
    }
    CpAsyncCommit();
    const uint32_t flags = HalfFlags(entry, wg);
    if ((flags & kHalfLive) == 0) continue;  // this half needs nothing from the tile
    const uint32_t k_addr = SmemAddr(sK + stage * Cfg::kKVElems);
    const uint32_t v_addr = SmemAddr(sV + stage * Cfg::kKVElems);

    // S = Q K^T.
    float acc_s[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_s[i] = 0.f;
    FenceRegs(acc_s);
    WgmmaFence();
    IssueQK<T, kD, kBlockM, kBlockN>(acc_s, q_addr, k_addr);
    WgmmaCommit();
    WgmmaWait<0>();
    FenceRegs(acc_s);

    // Mask per element in partial halves, into a bit set; then the online softmax.
    const int64_t j0 = int64_t{entry & kTileIndexMask} * kBlockN;
    const uint32_t allowed =
        (flags & kHalfPartial)
            ? PartialAllowedBits<kBlockN>(p, tr, hk, (flags & kHalfSingleBlock) != 0, j0, my_row, lane)
            : 0xffffffffu;
    float alpha[2];
    OnlineSoftmax<kBlockN>(acc_s, allowed, p.scale_log2, row_max, row_sum, alpha);
    RescaleO<kPanels>(acc_o, alpha);

    // O += P V: P in registers.
    uint32_t pa[kBlockN / 16][4];
    PackP<T, kBlockN>(acc_s, pa);
#pragma unroll
    for (int pn = 0; pn < kPanels; ++pn) FenceRegs(acc_o[pn]);
    WgmmaFence();
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks)
#pragma unroll
      for (int pn = 0; pn < kPanels; ++pn)
        Wgmma<T>::RS(acc_o[pn], pa[ks], Sw128Desc(v_addr + pn * kBlockN * 128 + ks * 16 * 128));
    WgmmaCommit();
    WgmmaWait<0>();
#pragma unroll
    for (int pn = 0; pn < kPanels; ++pn) FenceRegs(acc_o[pn]);
  }
  CpAsyncWaitAll();

  HopperEpilogue<T, kD>(p, tr, h, acc_o, row_max, row_sum, my_row, lane);
#endif  // HBSA_HOPPER_DEVICE
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_HOPPER_KERNEL_CUH_
