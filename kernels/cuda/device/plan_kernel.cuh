// device/plan_kernel.cuh: device-side planning. Turns the block mask into the compact visit
// lists the attention kernels iterate, on the GPU, so a request needs no host round trip.
//
// One warp per row (KV head hk, query tile t); lanes classify 32 candidates at a time and
// compact the live ones in ascending order with a ballot. A row's slots start at
// hk * plane_slots + q_tile_base[t] and hold at most ceil(Lk / 64) entries, so rows never
// collide and no global scan is needed.
// * PlanTilesKernel (mma.sync and fp32 kernels): candidates are key tiles of block_n keys,
//   classified with hbsa::TileCoverage once per 64-row half of the query tile (params.h flags).
// * PlanChunksKernel (wgmma kernel): candidates are 16-key chunks, classified per row group
//   (chunk_mask.h); the live ones are written four to an entry, the last entry padded.
#ifndef HBSA_CUDA_DEVICE_PLAN_KERNEL_CUH_
#define HBSA_CUDA_DEVICE_PLAN_KERNEL_CUH_

#include "device/chunk_mask.h"
#include "params.h"

namespace hbsa::cuda_internal {

inline constexpr int kPlanWarpsPerBlock = 4;

__global__ void __launch_bounds__(kPlanWarpsPerBlock * 32)
    PlanTilesKernel(const KernelParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t{blockIdx.x} * kPlanWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= int64_t{p.num_heads_k} * p.num_q_tiles) return;
  const int32_t hk = static_cast<int32_t>(row / p.num_q_tiles);
  const int32_t t = static_cast<int32_t>(row % p.num_q_tiles);
  const TileRows tr = TileRowsOf(p, t);
  const BlockLayout& L = p.layout;
  const int64_t i0 = tr.row0, i1 = MinI64(tr.row0 + p.tile.q_rows, tr.lq);
  const int64_t num_k_tiles = CeilDiv(tr.lk, p.tile.block_n);
  uint32_t* out = p.visits + hk * p.plane_slots + p.q_tile_base[t];
  int32_t count = 0;
  for (int64_t base = 0; base < num_k_tiles; base += 32) {
    const int64_t kt = base + lane;
    uint32_t entry = 0;
    if (kt < num_k_tiles) {
      const int64_t j0 = kt * p.tile.block_n;
      const int64_t j1_full = j0 + p.tile.block_n;
      const int64_t j1 = MinI64(j1_full, tr.lk);
      const bool single_k_block = L.KBlockOf(tr.b, j0) == L.KBlockOf(tr.b, j1 - 1);
      for (int half = 0; half * kHalfRows < p.tile.q_rows; ++half) {
        const int64_t h0 = i0 + half * kHalfRows, h1 = MinI64(h0 + kHalfRows, i1);
        if (h0 >= h1) break;
        const Coverage c = TileCoverage(L, p.mask, p.causal, hk, tr.b, h0, h1, j0, j1);
        if (c == Coverage::kNone) continue;
        const bool single = single_k_block && L.QBlockOf(tr.b, h0) == L.QBlockOf(tr.b, h1 - 1);
        const uint32_t flags = kHalfLive |
                               (c == Coverage::kPartial || j1 < j1_full ? kHalfPartial : 0u) |
                               (single ? kHalfSingleBlock : 0u);
        entry |= flags << HalfShift(half);
      }
      if (entry != 0) entry |= static_cast<uint32_t>(kt);
    }
    const bool live = entry != 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, live);
    if (live) out[count + __popc(ballot & ((1u << lane) - 1u))] = entry;
    count += __popc(ballot);
  }
  if (lane == 0) p.visit_count[row] = count;
}

__global__ void __launch_bounds__(kPlanWarpsPerBlock * 32)
    PlanChunksKernel(const KernelParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t{blockIdx.x} * kPlanWarpsPerBlock + (threadIdx.x >> 5);
  if (row >= int64_t{p.num_heads_k} * p.num_q_tiles) return;
  const int32_t hk = static_cast<int32_t>(row / p.num_q_tiles);
  const int32_t t = static_cast<int32_t>(row % p.num_q_tiles);
  const TileRows tr = TileRowsOf(p, t);
  const RowGroups groups = RowGroupsOf(p, tr);
  const int64_t num_chunks = CeilDiv(TileKeyEnd(p, tr), kChunkKeys);
  uint32_t* out = p.visits + (hk * p.plane_slots + p.q_tile_base[t]) * kTileChunks;
  int32_t count = 0;  // words written (< 2^27)
  for (int64_t base = 0; base < num_chunks; base += 32) {
    const int64_t c = base + lane;
    const uint32_t word = c < num_chunks ? ChunkWord(p, tr, hk, groups, c) : 0u;
    const bool live = word != 0;
    const unsigned ballot = __ballot_sync(0xffffffffu, live);
    if (live) out[count + __popc(ballot & ((1u << lane) - 1u))] = word;
    count += __popc(ballot);
  }
  const int32_t entries = static_cast<int32_t>(CeilDiv(count, kTileChunks));
  if (lane < entries * kTileChunks - count) out[count + lane] = 0u;  // padding words
  if (lane == 0) p.visit_count[row] = entries;
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_PLAN_KERNEL_CUH_
