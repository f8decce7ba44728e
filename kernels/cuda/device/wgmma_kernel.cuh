// device/wgmma_kernel.cuh: the Hopper (sm_90a) kernel, CudaKernel::kWgmmaTma.
//
// One CTA per (query tile t, group of tile.heads query heads of one KV head): kBlockM = 64 or
// 128 tile rows on one consumer warpgroup per 64 rows, plus one producer warp. The tile's rows
// are q_rows query rows x heads query heads (GQA packing: heads of one KV head share the mask,
// so small query blocks fill the 64-row wgmma tiles without computing more keys).
// * Key side: the planner's chunk list (chunk_mask.h): entries of four 16-key chunks, each
//   entry one 64-key pipeline stage. The producer's lane 0 streams entry it into stage
//   it % kStages with TMA (cp.async.bulk.tensor, 128-byte swizzle: the SW128 panel layout of
//   wgmma.cuh), one [64-key, 64-column] box per panel when the four chunks are consecutive,
//   else one [16-key, 64-column] box per live chunk, completing on mbarriers (full[s] armed
//   with the byte count; empty[s]: every consumer warp arrives when it no longer reads the
//   stage). Key blocks smaller than 64 keys are thereby gathered: a stage holds only chunks
//   some row may see.
// * The last entry of a list may hold padding chunks (not loaded) and a chunk past the
//   sequence end (its rows come from the next sequence, or are zero past the tensor). It lands
//   on its own mbarrier; the producer warp zeroes those V rows (0 * Inf would be NaN in P V),
//   fences them for the async proxy and only then completes the stage's full barrier. K rows
//   there are masked by selection in S (-inf whatever the score), so the consumer loop has no
//   tail case.
// * Consumers, per stage: S = Q K^T (SS wgmma), then the previous stage's O += P V (RS wgmma)
//   behind it; wait for S only; the stage's allowed bits (StageAllowedBits: one bit test per
//   16 x 16 sub-tile, element checks only in chunks flagged "check") and the online softmax run
//   while P V completes; then O is rescaled and P kept for the next stage (FA3's
//   intra-warpgroup overlap). No CTA barrier in the loop: the two warpgroups of a 128-row tile
//   drift apart, which overlaps one's softmax with the other's MMAs. Every wgmma is issued in
//   uniform control flow (ptxas serialises them otherwise, warning C7520): rows that see
//   nothing of a stage compute it with P = 0.
// Requires D % 8 == 0 and D <= kD (for D < kD the TMA maps view k and v as [total_k, Hk, D], so
// columns past D are outside the tensor and read as zeros).
#ifndef HBSA_CUDA_DEVICE_WGMMA_KERNEL_CUH_
#define HBSA_CUDA_DEVICE_WGMMA_KERNEL_CUH_

#include <cstdint>

#include "device/chunk_mask.h"
#include "device/wgmma_tile.cuh"

namespace hbsa::cuda_internal {

template <typename T, int kD, int kBlockM>
struct WgmmaConfig {
  static_assert(kD == 64 || kD == 128, "compiled head dims of the wgmma kernel: 64, 128");
  static_assert(kBlockM == 64 || kBlockM == 128, "tiles of 64 or 128 rows");
  static constexpr int kBlockN = kTileChunks * kChunkKeys;  // 64 keys per stage
  static constexpr int kWarpGroups = kBlockM / 64;
  static constexpr int kConsumerThreads = kWarpGroups * 128;
  static constexpr int kThreads = kConsumerThreads + 32;  // + one producer warp
  // 128-row tiles: 3 stages (128 KB of tiles, one CTA of 288 threads per SM: registers). 64-row
  // tiles: 2 stages (80 KB), so two CTAs fit in an SM's 228 KB (three stages would need 115 KB).
  // The pending O += P V holds one stage while the next stage's S is computed; with 2 stages
  // the producer refills it once that MMA has completed.
  static constexpr int kStages = kBlockM == 128 ? 3 : 2;
  static constexpr int kPanels = kD / 64;
  static constexpr int kQElems = kBlockM * kD;
  static constexpr int kKVElems = kBlockN * kD;
  static constexpr uint32_t kStageBytes = kKVElems * sizeof(T);        // K or V of one stage
  static constexpr uint32_t kChunkBytes = kChunkKeys * 128;            // one chunk of one panel
  static constexpr size_t kTileBytes = size_t{kQElems + 2 * kStages * kKVElems} * sizeof(T);
  // Tiles, 2 x kStages + 1 mbarriers, and 1 KB to round the base up to the swizzle period.
  static constexpr size_t kSmemBytes = kTileBytes + 16 * kStages + 8 + 1024;
  // Registers: an SM's 64K registers are four 16K files, one per sub-partition, and warp w of
  // a CTA runs on sub-partition w % 4 with registers allocated in 256-register units per warp.
  // kCtasPerSm CTAs of kThreads / 32 warps put ceil(warps / 4) warps on a sub-partition, so each
  // thread may hold at most 16384 / (32 * that) registers, rounded down to 8. Measured (run 11,
  // H200): the 64-row kernel at 174 registers (2 warps per sub-partition, so one CTA per SM
  // instead of two) ran 1.75x slower than at 166.
  static constexpr int kCtasPerSm = kBlockM == 64 ? 2 : 1;  // smem: 2 x 81 KB or 1 x 129 KB
  static constexpr int kWarpsPerSubpartition = (kCtasPerSm * kThreads / 32 + 3) / 4;
  static constexpr int kMaxRegisters = 16384 / (32 * kWarpsPerSubpartition) / 8 * 8;
};

// Zeroes rows [row0, row1) of every 64-column SW128 panel of a [kRows, 64 * kPanels] tile (the
// swizzle permutes 16-byte chunks inside a 128-byte row, so whole rows stay rows). Thread `tid`
// of kThreads takes every kThreads-th 16-byte chunk.
template <int kPanels, int kRows, int kThreads>
__device__ __forceinline__ void ZeroSw128Rows(unsigned char* tile, int row0, int row1, int tid) {
  const int chunks_per_panel = (row1 - row0) * 8;
  for (int idx = tid; idx < kPanels * chunks_per_panel; idx += kThreads) {
    const int pn = idx / chunks_per_panel, c = idx % chunks_per_panel;
    *reinterpret_cast<uint4*>(tile + pn * kRows * 128 + row0 * 128 + c * 16) =
        make_uint4(0u, 0u, 0u, 0u);
  }
}

// Whether the stage of entry `e` needs V rows zeroed after its TMA: a padding chunk, or a chunk
// reaching past the sequence end (lk keys).
__device__ __forceinline__ bool EntryNeedsFixup(const uint32_t (&w)[kTileChunks], int64_t lk) {
  bool fix = false;
#pragma unroll
  for (int c = 0; c < kTileChunks; ++c) {
    fix = fix || ChunkRowGroups(w[c]) == 0 ||
          int64_t{ChunkIndex(w[c])} * kChunkKeys + kChunkKeys > lk;
  }
  return fix;
}

template <typename T, int kD, int kBlockM>
__global__ void __maxnreg__((WgmmaConfig<T, kD, kBlockM>::kMaxRegisters))
    WgmmaAttentionKernel(const KernelParams p, const __grid_constant__ CUtensorMap tmap_k64,
                         const __grid_constant__ CUtensorMap tmap_v64,
                         const __grid_constant__ CUtensorMap tmap_k16,
                         const __grid_constant__ CUtensorMap tmap_v16) {
#if HBSA_HOPPER_DEVICE
  using Cfg = WgmmaConfig<T, kD, kBlockM>;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kPanels = Cfg::kPanels;
  constexpr int kStages = Cfg::kStages;
  constexpr uint32_t kStageBytes = Cfg::kStageBytes;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (SmemAddr(smem_raw) & 1023u)) & 1023u);
  T* sQ = reinterpret_cast<T*>(smem);  // [kBlockM, kD] SW128 panels
  T* sK = sQ + Cfg::kQElems;           // [kStages][kBlockN, kD]
  T* sV = sK + kStages * Cfg::kKVElems;
  const uint32_t full_bar = SmemAddr(smem + Cfg::kTileBytes);  // kStages x 8 bytes
  const uint32_t empty_bar = full_bar + 8 * kStages;            // kStages x 8 bytes
  const uint32_t tail_bar = empty_bar + 8 * kStages;            // the last entry's TMA

  // Heaviest tiles (last of each causal sequence) first.
  const int32_t t = p.num_q_tiles - 1 - static_cast<int32_t>(blockIdx.x);
  const int32_t h0 = static_cast<int32_t>(blockIdx.y) * p.tile.heads;
  const int32_t hk = h0 / p.group;
  const TileRows tr = TileRowsOf(p, t);
  const int32_t n_visits = p.visit_count[int64_t{hk} * p.num_q_tiles + t];
  const uint4* visits = reinterpret_cast<const uint4*>(p.visits) +
                        (int64_t{hk} * p.plane_slots + p.q_tile_base[t]);

  // Q by every thread; barriers by thread 0; one CTA-wide barrier publishes both.
  LoadQTile<T, kD, kBlockM, Cfg::kThreads>(sQ, p, tr, h0, threadIdx.x);
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

  if (threadIdx.x >= Cfg::kConsumerThreads) {
    // Producer warp: lane 0 issues the loads; the whole warp fixes up the last entry.
    const int lane = threadIdx.x & 31;
    const int32_t row_base = p.layout.cu_seqlens_k[tr.b];
    const uint32_t k_base = SmemAddr(sK), v_base = SmemAddr(sV);
    uint32_t last[kTileChunks] = {0u, 0u, 0u, 0u};
    if (n_visits > 0) {
      const uint4 e = visits[n_visits - 1];
      last[0] = e.x, last[1] = e.y, last[2] = e.z, last[3] = e.w;
    }
    const bool fixup = n_visits > 0 && EntryNeedsFixup(last, tr.lk);
    // D == kD: 2-D maps over [total_k, Hk * D] (a box never reaches the next head); narrower D:
    // 3-D maps over [total_k, Hk, D], whose columns past D read as zeros (launch/wgmma_launch.cuh).
    const bool flat = p.head_dim == kD;
    auto tma = [&](uint32_t dst, const CUtensorMap* map, int pn, int32_t row, uint32_t bar) {
      if (flat) {
        TmaLoad2d(dst, map, hk * kD + pn * 64, row, bar);
      } else {
        TmaLoad3d(dst, map, pn * 64, hk, row, bar);
      }
    };
    uint4 next = n_visits > 0 ? visits[0] : make_uint4(0u, 0u, 0u, 0u);
    auto load = [&](int32_t it, uint32_t bar) {
      const int s = it % kStages;
      // The entry is read one stage ahead, so its load latency overlaps the wait for the stage.
      const uint4 e = next;
      if (it + 1 < n_visits) next = visits[it + 1];
      if (it >= kStages) MbarWait(empty_bar + 8 * s, ((it / kStages) - 1) & 1);
      const uint32_t w[kTileChunks] = {e.x, e.y, e.z, e.w};
      const uint32_t c0 = ChunkIndex(w[0]);  // the first chunk is always live
      bool runs = true;                      // four consecutive chunks: one box per panel
      int live = 0;
#pragma unroll
      for (int c = 0; c < kTileChunks; ++c) {
        const bool on = ChunkRowGroups(w[c]) != 0;
        live += on ? 1 : 0;
        runs = runs && on && ChunkIndex(w[c]) == c0 + c;
      }
      const uint32_t stage = s * kStageBytes;
      if (runs) {
        MbarArriveExpectTx(bar, 2 * kStageBytes);
        const int32_t row = row_base + static_cast<int32_t>(c0) * kChunkKeys;
#pragma unroll
        for (int pn = 0; pn < kPanels; ++pn) {
          const uint32_t off = stage + pn * kBlockN * 128;
          tma(k_base + off, &tmap_k64, pn, row, bar);
          tma(v_base + off, &tmap_v64, pn, row, bar);
        }
        return;
      }
      MbarArriveExpectTx(bar, 2 * live * kPanels * Cfg::kChunkBytes);
#pragma unroll
      for (int c = 0; c < kTileChunks; ++c) {
        if (ChunkRowGroups(w[c]) == 0) continue;
        const int32_t row = row_base + static_cast<int32_t>(ChunkIndex(w[c])) * kChunkKeys;
#pragma unroll
        for (int pn = 0; pn < kPanels; ++pn) {
          const uint32_t off = stage + pn * kBlockN * 128 + c * Cfg::kChunkBytes;
          tma(k_base + off, &tmap_k16, pn, row, bar);
          tma(v_base + off, &tmap_v16, pn, row, bar);
        }
      }
    };
    if (lane == 0) {
      const int32_t n_plain = fixup ? n_visits - 1 : n_visits;
      for (int32_t it = 0; it < n_plain; ++it) load(it, full_bar + 8 * (it % kStages));
      if (fixup) load(n_visits - 1, tail_bar);
    }
    if (!fixup) return;  // uniform over the warp
    __syncwarp();
    const int s = (n_visits - 1) % kStages;
    MbarWait(tail_bar, 0);
    unsigned char* stage_v = reinterpret_cast<unsigned char*>(sV + s * Cfg::kKVElems);
#pragma unroll
    for (int c = 0; c < kTileChunks; ++c) {
      int zero_from = 0;  // padding: the whole chunk
      if (ChunkRowGroups(last[c]) != 0) {
        const int64_t valid = tr.lk - int64_t{ChunkIndex(last[c])} * kChunkKeys;
        if (valid >= kChunkKeys) continue;
        zero_from = static_cast<int>(valid);
      }
      ZeroSw128Rows<kPanels, kBlockN, 32>(stage_v, c * kChunkKeys + zero_from,
                                          (c + 1) * kChunkKeys, lane);
    }
    FenceProxyAsync();
    __syncwarp();
    if (lane == 0) MbarArrive(full_bar + 8 * s);
    return;
  }

  // Consumer warpgroup wg: tile rows [64 wg, 64 wg + 64); warp = row group (chunk_mask.h).
  const int wg = threadIdx.x >> 7;
  const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  float acc_o[kPanels][32];
#pragma unroll
  for (int pn = 0; pn < kPanels; ++pn)
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_o[pn][i] = 0.f;
  float row_max[2], row_sum[2];
  int tile_row[2];
  int64_t qrow[2], key_limit[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.f;
    tile_row[r] = wg * 64 + warp * 16 + (lane >> 2) + r * 8;
    qrow[r] = TargetOfRow(p.tile, tr, h0, tile_row[r]).qrow;
    key_limit[r] = RowKeyLimit(p.causal, qrow[r], tr.lq, tr.lk);
  }
  const uint32_t q_addr = SmemAddr(sQ) + wg * 64 * 128;
  const uint32_t k_base = SmemAddr(sK), v_base = SmemAddr(sV);

  uint32_t pa[kBlockN / 16][4] = {};  // P of the pending stage (O += P V not yet issued)
  int pending_stage = -1;             // its stage, or -1
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
    const uint4 e = visits[it];
    MbarWait(full_bar + 8 * s, (it / kStages) & 1);

    // S = Q K^T (async), then the pending O += P V (async) behind it.
    float acc_s[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) acc_s[i] = 0.f;
    FenceRegs(acc_s);
#pragma unroll
    for (int pn = 0; pn < kPanels; ++pn) FenceRegs(acc_o[pn]);
    WgmmaFence();
    IssueQK<T, kD, kBlockM, kBlockN>(acc_s, q_addr, k_base + s * kStageBytes);
    WgmmaCommit();
    // The pending O += P V (P = 0 before the first stage: any loaded stage will do).
    const bool had_pending = pending_stage >= 0;
    issue_pv(had_pending ? pending_stage : s);
    WgmmaCommit();
    WgmmaWait<1>();  // S is done; O += P V may still run
    FenceRegs(acc_s);

    // Allowed bits, then the online softmax on S (the O rescale waits for the pending MMA).
    const uint32_t w[kTileChunks] = {e.x, e.y, e.z, e.w};
    const uint32_t allowed = StageAllowedBits(p, tr, hk, w, warp, lane, qrow, key_limit);
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

  StoreTileRows<T, kD>(p, tr, h0, acc_o, row_max, row_sum, tile_row, lane);
#endif  // HBSA_HOPPER_DEVICE
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_WGMMA_KERNEL_CUH_
