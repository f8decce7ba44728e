// hopper_ws_kernel.cuh: the warp-specialized Hopper (sm_90a) kernel, v2 of the wgmma path.
//
// Same work split and contract as HopperAttentionKernel (hopper_kernel.cuh: one CTA per (query
// tile, query head), a consumer warpgroup per 64-row half, 64-key tiles from the planner's visit
// list, 128B-swizzled shared memory, wgmma m64n64k16), with two changes that keep the tensor
// cores busy:
// * A producer thread streams K/V tiles into a kStages-deep ring with TMA (cp.async.bulk.tensor,
//   128-byte swizzle, tensor maps built by the launcher) and mbarriers (full[s]: armed with the
//   stage's byte count; empty[s]: every consumer warp arrives when it no longer reads the
//   stage). Requires D == kD (the box must not reach the next head's columns); other head dims
//   use HopperAttentionKernel. Rows past a sequence's end come from the next sequence (or are
//   zero past the tensor): masked in S by selection (-inf, so Inf/NaN scores vanish). The
//   sequence's partial last tile (always the last visit) lands on its own mbarrier: the
//   producer warp zeroes its V rows past the sequence end (0 * Inf would be NaN in P V) and
//   only then completes the stage's full barrier, so the consumer loop is unchanged. Consumers
//   never run a CTA-wide barrier in the loop, so the two warpgroups drift apart and one's
//   softmax overlaps the other's MMAs.
// * Inside a warpgroup, O += P V of the previous live tile is issued right after S = Q K^T of
//   the current one and completes while the softmax of the current tile runs (the accumulator
//   is rescaled only after that MMA has been waited for).
// Every consumer warpgroup takes every tile of the list in order (a half that needs nothing
// from a tile computes it fully masked), so the ring's phases stay in step.
#ifndef HBSA_CUDA_HOPPER_WS_KERNEL_CUH_
#define HBSA_CUDA_HOPPER_WS_KERNEL_CUH_

#include <cstdint>

#include "hopper_kernel.cuh"

namespace hbsa::cuda_internal {

template <typename T, int kD, int kBlockM>
struct HopperWsConfig {
  static_assert(kD == 64 || kD == 128, "compiled head dims of the wgmma path: 64, 128");
  static_assert(kBlockM == 64 || kBlockM == 128, "query tiles of 64 or 128 rows");
  static constexpr int kBlockN = 64;
  static constexpr int kWarpGroups = kBlockM / 64;
  static constexpr int kConsumerThreads = kWarpGroups * 128;
  static constexpr int kThreads = kConsumerThreads + 32;  // + one producer warp (one thread works)
  // 128-row tiles: 3 stages (128 KB of tiles, one CTA of 288 threads per SM: registers). 64-row
  // tiles: 2 stages (80 KB), so two CTAs fit in an SM's 228 KB (three stages would need 115 KB).
  // The pending O += P V holds one stage while the next tile's S is computed; with 2 stages the
  // producer refills it once that MMA has completed.
  static constexpr int kStages = kBlockM == 128 ? 3 : 2;
  static constexpr int kPanels = kD / 64;
  static constexpr int kQElems = kBlockM * kD;
  static constexpr int kKVElems = kBlockN * kD;
  static constexpr size_t kTileBytes = size_t{kQElems + 2 * kStages * kKVElems} * sizeof(T);
  // Tiles, 2 x kStages + 1 mbarriers, and 1 KB to round the base up to the swizzle period.
  static constexpr size_t kSmemBytes = kTileBytes + 16 * kStages + 8 + 1024;
};

// Zeroes rows [valid_rows, kRows) of every 64-column SW128 panel of a [kRows, 64 * kPanels] tile
// (the swizzle permutes 16-byte chunks inside a 128-byte row, so whole rows stay rows). Thread
// `tid` of kThreads takes every kThreads-th 16-byte chunk.
template <int kPanels, int kRows, int kThreads>
__device__ __forceinline__ void ZeroSw128Rows(unsigned char* tile, int valid_rows, int tid) {
  const int chunks_per_panel = (kRows - valid_rows) * 8;
  for (int idx = tid; idx < kPanels * chunks_per_panel; idx += kThreads) {
    const int pn = idx / chunks_per_panel, c = idx % chunks_per_panel;
    *reinterpret_cast<uint4*>(tile + pn * kRows * 128 + valid_rows * 128 + c * 16) =
        make_uint4(0u, 0u, 0u, 0u);
  }
}

template <typename T, int kD, int kBlockM>
__global__ void __launch_bounds__(HopperWsConfig<T, kD, kBlockM>::kThreads, 1)
    HopperWsAttentionKernel(const KernelParams p, const __grid_constant__ CUtensorMap tmap_k,
                            const __grid_constant__ CUtensorMap tmap_v) {
#if HBSA_HOPPER_DEVICE
  using Cfg = HopperWsConfig<T, kD, kBlockM>;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kPanels = Cfg::kPanels;
  constexpr int kStages = Cfg::kStages;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (SmemAddr(smem_raw) & 1023u)) & 1023u);
  T* sQ = reinterpret_cast<T*>(smem);  // [kBlockM, kD] SW128 panels
  T* sK = sQ + Cfg::kQElems;           // [kStages][kBlockN, kD]
  T* sV = sK + kStages * Cfg::kKVElems;
  constexpr uint32_t kStageBytes = Cfg::kKVElems * sizeof(T);
  const uint32_t full_bar = SmemAddr(smem + Cfg::kTileBytes);  // kStages x 8 bytes
  const uint32_t empty_bar = full_bar + 8 * kStages;            // kStages x 8 bytes
  const uint32_t tail_bar = empty_bar + 8 * kStages;            // the partial last tile's TMA

  const int32_t t = p.num_q_tiles - 1 - static_cast<int32_t>(blockIdx.x);
  const int32_t h = blockIdx.y;
  const int32_t hk = h / p.group;
  const TileRows tr = TileRowsOf(p, t);
  const int d = p.head_dim;
  const bool vec = (d % 8) == 0;
  const int64_t q_stride = int64_t{p.num_heads_q} * d;
  const int32_t n_visits = p.visit_count[int64_t{hk} * p.num_q_tiles + t];
  const uint32_t* visits = p.visits + int64_t{hk} * p.plane_slots + p.q_tile_base[t];

  // Q by every thread; barriers by thread 0; one CTA-wide barrier publishes both.
  {
    const T* gQ = static_cast<const T*>(p.q) +
                  (int64_t{p.layout.cu_seqlens_q[tr.b]} + tr.row0) * q_stride + int64_t{h} * d;
    LoadTileSw128<T, kD, kBlockM, Cfg::kThreads>(sQ, gQ, q_stride, tr.lq - tr.row0, d, vec,
                                                 threadIdx.x);
    CpAsyncCommit();
    if (threadIdx.x == 0) {
      for (int s = 0; s < kStages; ++s) {
        MbarInit(full_bar + 8 * s, 1);
        MbarInit(empty_bar + 8 * s, Cfg::kConsumerThreads / 32);
      }
      MbarInit(tail_bar, 1);
      FenceMbarInit();
    }
    CpAsyncWaitAll();
    FenceProxyAsync();
    __syncthreads();
  }

  if (threadIdx.x >= Cfg::kConsumerThreads) {
    // Producer warp. Lane 0 streams tile it to stage it % kStages once every consumer warp
    // released the stage's previous tile; kPanels TMA boxes of [64 keys, 64 columns] each for K
    // and V (the maps' 128-byte swizzle is the SW128 panel layout). A partial last tile (the
    // boxes reach into the next sequence) lands on tail_bar instead; the whole warp then zeroes
    // its V rows past the sequence end, fences them for wgmma's async proxy and completes the
    // stage's full barrier with a plain arrive (its count is 1).
    const int lane = threadIdx.x & 31;
    const int32_t row_base = p.layout.cu_seqlens_k[tr.b];
    const uint32_t k_base = SmemAddr(sK), v_base = SmemAddr(sV);
    const int64_t last_j0 =
        n_visits > 0 ? int64_t{visits[n_visits - 1] & kTileIndexMask} * kBlockN : 0;
    const bool tail = n_visits > 0 && last_j0 + kBlockN > tr.lk;
    auto load = [&](int32_t it, uint32_t bar) {
      const int s = it % kStages;
      if (it >= kStages) MbarWait(empty_bar + 8 * s, ((it / kStages) - 1) & 1);
      const int32_t row = row_base + static_cast<int32_t>(visits[it] & kTileIndexMask) * kBlockN;
      MbarArriveExpectTx(bar, 2 * kStageBytes);
#pragma unroll
      for (int pn = 0; pn < kPanels; ++pn) {
        const uint32_t off = s * kStageBytes + pn * kBlockN * 128;
        TmaLoad2d(k_base + off, &tmap_k, hk * kD + pn * 64, row, bar);
        TmaLoad2d(v_base + off, &tmap_v, hk * kD + pn * 64, row, bar);
      }
    };
    if (lane == 0) {
      const int32_t n_plain = tail ? n_visits - 1 : n_visits;
      for (int32_t it = 0; it < n_plain; ++it) load(it, full_bar + 8 * (it % kStages));
      if (tail) load(n_visits - 1, tail_bar);
    }
    if (!tail) return;  // uniform over the warp
    __syncwarp();
    const int s = (n_visits - 1) % kStages;
    MbarWait(tail_bar, 0);
    ZeroSw128Rows<kPanels, kBlockN, 32>(reinterpret_cast<unsigned char*>(sV + s * Cfg::kKVElems),
                                        static_cast<int>(tr.lk - last_j0), lane);
    FenceProxyAsync();
    __syncwarp();
    if (lane == 0) MbarArrive(full_bar + 8 * s);
    return;
  }

  // Consumer warpgroup wg: rows [64 wg, 64 wg + 64) of the tile.
  const int wg = threadIdx.x >> 7;
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  float acc_o[kPanels][32];
#pragma unroll
  for (int pn = 0; pn < kPanels; ++pn)
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[pn][i] = 0.f;
  float row_max[2], row_sum[2];
  int64_t my_row[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.f;
    my_row[r] = tr.row0 + wg * 64 + warp * 16 + (lane >> 2) + r * 8;
  }
  const uint32_t q_addr = SmemAddr(sQ) + wg * 64 * 128;
  const uint32_t k_base = SmemAddr(sK), v_base = SmemAddr(sV);

  uint32_t pa[kBlockN / 16][4] = {};  // P of the pending tile (O += P V not yet issued)
  int pending_stage = -1;        // its stage, or -1
  auto release = [&](int s) {
    __syncwarp();
    if (lane == 0) MbarArrive(empty_bar + 8 * s);
  };
  auto issue_pv = [&](int s) {
    const uint32_t v_addr = v_base + s * kStageBytes;
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks)
#pragma unroll
      for (int pn = 0; pn < kPanels; ++pn)
        Wgmma<T>::RS(acc_o[pn], pa[ks], Sw128Desc(v_addr + pn * kBlockN * 128 + ks * 16 * 128));
  };

  for (int32_t it = 0; it < n_visits; ++it) {
    const int s = it % kStages;
    const uint32_t entry = visits[it];
    MbarWait(full_bar + 8 * s, (it / kStages) & 1);
    // A half that needs nothing from the tile computes it fully masked (P = 0): wgmma issue
    // stays in uniform control flow, which ptxas needs to keep the MMAs asynchronous. Only the
    // causal diagonal of 128-row tiles over 128-row blocks takes this path.
    const uint32_t flags = HalfFlags(entry, wg);
    const bool live = (flags & kHalfLive) != 0;

    // S = Q K^T (async), then the pending O += P V (async) behind it.
    float acc_s[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_s[i] = 0.f;
    FenceRegs(acc_s);
#pragma unroll
    for (int pn = 0; pn < kPanels; ++pn) FenceRegs(acc_o[pn]);
    WgmmaFence();
    const uint32_t k_addr = k_base + s * kStageBytes;
    IssueQK<T, kD, kBlockM, kBlockN>(acc_s, q_addr, k_addr);
    WgmmaCommit();
    // The pending O += P V (P = 0 before the first tile: any loaded stage will do).
    const bool had_pending = pending_stage >= 0;
    issue_pv(had_pending ? pending_stage : s);
    WgmmaCommit();
    WgmmaWait<1>();  // S is done; O += P V may still run
    FenceRegs(acc_s);

    // Mask per element in partial halves; then the online softmax on S (the O rescale waits
    // for the pending MMA).
    const int64_t j0 = int64_t{entry & kTileIndexMask} * kBlockN;
    uint32_t allowed = live ? 0xffffffffu : 0u;
    if (live && (flags & kHalfPartial)) {
      allowed = PartialAllowedBits<kBlockN>(p, tr, hk, (flags & kHalfSingleBlock) != 0, j0, my_row,
                                            lane);
    }
    float alpha[2];
    OnlineSoftmax<kBlockN>(acc_s, allowed, p.scale_log2, row_max, row_sum, alpha);
    WgmmaWait<0>();
#pragma unroll
    for (int pn = 0; pn < kPanels; ++pn) FenceRegs(acc_o[pn]);
    if (had_pending) release(pending_stage);
    RescaleO<kPanels>(acc_o, alpha);
    PackP<T, kBlockN>(acc_s, pa);
    pending_stage = s;
  }
  if (pending_stage >= 0) {  // n_visits > 0: uniform over the CTA
#pragma unroll
    for (int pn = 0; pn < kPanels; ++pn) FenceRegs(acc_o[pn]);
    WgmmaFence();
    issue_pv(pending_stage);
    WgmmaCommit();
    WgmmaWait<0>();
#pragma unroll
    for (int pn = 0; pn < kPanels; ++pn) FenceRegs(acc_o[pn]);
  }

  HopperEpilogue<T, kD>(p, tr, h, acc_o, row_max, row_sum, my_row, lane);
#endif  // HBSA_HOPPER_DEVICE
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_HOPPER_WS_KERNEL_CUH_
