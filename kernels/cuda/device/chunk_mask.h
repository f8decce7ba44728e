// device/chunk_mask.h: the visit words of the wgmma kernel and the mask logic around them, as
// host+device functions. The planner kernel (plan_kernel.cuh), the attention kernel
// (wgmma_kernel.cuh) and a CPU test of both (tests/cuda/cuda_host_test.cc) run exactly this code.
//
// Work unit: (KV head hk, query tile t). The tile's rows are tile.heads query heads x
// tile.q_rows query rows (params.h), all of KV head hk, so they share one mask plane. Its key
// side is the list of 16-key chunks of the sequence that at least one of its rows may see,
// ascending, four to a 64-key stage: word c of entry e describes chunk 4e + c. Softmax does not
// care about key order, so a stage may hold any four chunks (small key blocks are gathered);
// four consecutive chunks load as one TMA box, others as one box each.
//
// Word: bits 0-26 the chunk index k (local key rows [16k, 16k + 16); 2^27 chunks cover any
// int32 sequence length), bits 27-30 the row groups that may see the chunk, bit 31 "check":
// some pair of such a row group and the chunk is not allowed (causal cut, the sequence end
// inside the chunk, or a mask block edge inside the 16 x 16 sub-tile when Sq or Sk is not a
// multiple of 16), so the kernel evaluates the rule per element in that chunk. Chunks without
// the bit are allowed whole for the groups whose bit is set: the block mask costs one bit test
// per 16 x 16 sub-tile and no division in the loop. A word with no row-group bit is padding
// (only in the last entry of a list); the producer zeroes its V rows.
//
// Row groups: in a 64-row tile (one consumer warpgroup) group g is tile rows [16g, 16g + 16),
// i.e. warp g, whose query rows differ from the other warps' when q_rows > 16: each has its own
// bit. 128-row tiles are used only when every row shares one mask row (heuristics.h: Sq %
// q_rows == 0), so one group covers them and the four bits are equal.
#ifndef HBSA_CUDA_DEVICE_CHUNK_MASK_H_
#define HBSA_CUDA_DEVICE_CHUNK_MASK_H_

#include <cstdint>

#include "hbsa/layout.h"
#include "params.h"

namespace hbsa::cuda_internal {

inline constexpr int kChunkKeys = 16;   // keys per chunk (the gather unit)
inline constexpr int kTileChunks = 4;   // chunks per 64-key stage (words per entry)
inline constexpr uint32_t kChunkIndexMask = (1u << 27) - 1;
inline constexpr int kChunkRowShift = 27;
inline constexpr uint32_t kChunkCheck = 1u << 31;

HBSA_HD uint32_t ChunkIndex(uint32_t word) { return word & kChunkIndexMask; }
HBSA_HD uint32_t ChunkRowGroups(uint32_t word) { return (word >> kChunkRowShift) & 0xFu; }

// Local query-row ranges [i0, i1) of a tile's row groups (empty when i0 >= i1) and, for
// aligned16 requests, the query block of each non-empty group.
struct RowGroups {
  int count = 0;  // 4 (64-row tiles) or 1 (128-row tiles)
  int64_t i0[4] = {0, 0, 0, 0};
  int64_t i1[4] = {0, 0, 0, 0};
  int32_t qb[4] = {0, 0, 0, 0};
};

HBSA_HD RowGroups RowGroupsOf(const KernelParams& p, const TileRows& tr) {
  RowGroups g;
  g.count = p.tile.block_m == 64 ? 4 : 1;
  for (int k = 0; k < g.count; ++k) {
    const int64_t a = tr.row0 + (g.count == 4 ? (16 * k) % p.tile.q_rows : 0);
    const int64_t len = g.count == 4 ? 16 : p.tile.q_rows;
    g.i0[k] = a;
    g.i1[k] = MinI64(a + len, tr.lq);
    if (p.aligned16 && a < tr.lq) g.qb[k] = p.layout.QBlockOf(tr.b, a);
  }
  return g;
}

// Coverage of row group k x local keys [j0, j1) (one chunk; kb = its key block when aligned16).
HBSA_HD Coverage ChunkGroupCoverage(const KernelParams& p, const TileRows& tr, int32_t hk,
                                    const RowGroups& g, int k, int64_t j0, int64_t j1,
                                    int32_t kb) {
  if (g.i0[k] >= g.i1[k]) return Coverage::kNone;
  if (p.aligned16) {  // the sub-tile lies in one block pair: one mask bit, then causal
    if (!p.mask.Get(hk, g.qb[k], kb)) return Coverage::kNone;
    return CausalCoverage(p.causal, g.i0[k], g.i1[k], j0, j1, tr.lq, tr.lk);
  }
  return TileCoverage(p.layout, p.mask, p.causal, hk, tr.b, g.i0[k], g.i1[k], j0, j1);
}

// The visit word of chunk c (0 <= c < ceil(Lk / 16)) for this tile; 0 when no row may see it.
HBSA_HD uint32_t ChunkWord(const KernelParams& p, const TileRows& tr, int32_t hk,
                           const RowGroups& g, int64_t c) {
  const int64_t j0 = c * kChunkKeys, j1 = MinI64(j0 + kChunkKeys, tr.lk);
  const int32_t kb = p.aligned16 ? p.layout.k_block_start[tr.b] +
                                       static_cast<int32_t>(j0) / p.layout.k_block_size
                                 : 0;
  uint32_t rows = 0;
  bool check = j1 - j0 < kChunkKeys;  // the sequence ends inside the chunk
  for (int k = 0; k < g.count; ++k) {
    const Coverage cov = ChunkGroupCoverage(p, tr, hk, g, k, j0, j1, kb);
    if (cov == Coverage::kNone) continue;
    rows |= g.count == 1 ? 0xFu : 1u << k;
    check = check || cov == Coverage::kPartial;
  }
  if (rows == 0) return 0u;
  return static_cast<uint32_t>(c) | rows << kChunkRowShift | (check ? kChunkCheck : 0u);
}

// Keys past the causal limit of the tile's last row are never live: the planner scans chunks
// [0, ceil(KeyEnd / 16)) only.
HBSA_HD int64_t TileKeyEnd(const KernelParams& p, const TileRows& tr) {
  const int64_t last = MinI64(tr.row0 + p.tile.q_rows, tr.lq) - 1;
  return CausalKeyLimit(p.causal, last, tr.lq, tr.lk);
}

// Keys [0, limit) may pair with local query row i under the causal rule and the sequence end;
// no key for a row past the sequence end (it is computed on zeros and never stored).
HBSA_HD int64_t RowKeyLimit(bool causal, int64_t i, int64_t lq, int64_t lk) {
  return i < lq ? CausalKeyLimit(causal, i, lq, lk) : 0;
}

// Query row and head of tile row r (0 <= r < block_m) of the tile starting at local row
// tr.row0 for query heads [h0, h0 + tile.heads).
struct RowTarget {
  int64_t qrow;  // local query row in sequence tr.b
  int32_t head;  // query head
};
HBSA_HD RowTarget TargetOfRow(const TileShape& tile, const TileRows& tr, int32_t h0, int r) {
  return RowTarget{tr.row0 + r % tile.q_rows, h0 + r / tile.q_rows};
}

// The allowed bits of one thread's S fragment for the stage holding chunks w[0..3]: bit
// 4 nt + e is key column 8 nt + 2 (lane % 4) + e % 2 of the stage (chunk nt / 2) and the
// thread's row e / 2 (the wgmma accumulator layout, wgmma.cuh). `group` is the thread's row
// group (its warp in the warpgroup), qrow[r] the local query rows of its rows lane / 4 and
// lane / 4 + 8 of the warp, limit[r] their RowKeyLimit.
HBSA_HD uint32_t StageAllowedBits(const KernelParams& p, const TileRows& tr, int32_t hk,
                                  const uint32_t (&w)[kTileChunks], int group, int lane,
                                  const int64_t (&qrow)[2], const int64_t (&limit)[2]) {
  uint32_t allowed = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int c = 0; c < kTileChunks; ++c) {
    if ((w[c] >> (kChunkRowShift + group)) & 1u) allowed |= 0xFFu << (8 * c);
  }
  if (((w[0] | w[1] | w[2] | w[3]) & kChunkCheck) == 0 || allowed == 0) return allowed;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int c = 0; c < kTileChunks; ++c) {
    if ((w[c] & kChunkCheck) == 0) continue;
    const int64_t jc = int64_t{ChunkIndex(w[c])} * kChunkKeys;
    // Causal limit and sequence end: one compare per element against the row's key limit.
    int lim[2];
    for (int r = 0; r < 2; ++r) {
      lim[r] = static_cast<int>(MaxI64(0, MinI64(kChunkKeys, limit[r] - jc)));
    }
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int b = 0; b < 8; ++b) {
      const int col = 8 * (b >> 2) + 2 * (lane & 3) + (b & 1);
      if (col >= lim[(b >> 1) & 1]) allowed &= ~(1u << (8 * c + b));
    }
    if (p.aligned16) continue;
    // Block sizes that are not multiples of 16: a mask block edge may cross the sub-tile.
#if defined(__CUDA_ARCH__)
#pragma unroll 1
#endif
    for (int b = 0; b < 8; ++b) {
      const int bit = 8 * c + b;
      if (((allowed >> bit) & 1u) == 0) continue;
      const int64_t j = jc + 8 * (b >> 2) + 2 * (lane & 3) + (b & 1);
      const int64_t i = ((b >> 1) & 1) != 0 ? qrow[1] : qrow[0];  // no run-time array index
      if (!ElementAllowed(p.layout, p.mask, p.causal, hk, tr.b, i, j)) {
        allowed &= ~(1u << bit);
      }
    }
  }
  return allowed;
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_CHUNK_MASK_H_
