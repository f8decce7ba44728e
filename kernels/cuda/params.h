// params.h (internal): what the CUDA kernels of this folder receive. Built once per request by
// request.cc from validated AttentionArgs plus the device buffer that PackInputs filled; every
// pointer is a device pointer into that one buffer. Host and device code include this header.
//
// Compute tiles (block_m tile rows x block_n key rows) are independent of the mask blocks
// (Sq x Sk): the planners (device/plan_kernel.cuh) classify key tiles or 16-key chunks with
// hbsa::TileCoverage (or its block-aligned shortcut, device/chunk_mask.h) and the attention
// kernels mask elements with hbsa::ElementAllowed / hbsa::CausalAllows, the one definition of
// the rule in hbsa/layout.h.
#ifndef HBSA_CUDA_PARAMS_H_
#define HBSA_CUDA_PARAMS_H_

#include <cstdint>

#include "hbsa/layout.h"

namespace hbsa::cuda_internal {

// A visit-list entry of the mma.sync and fp32 kernels (the wgmma kernel's chunk words are in
// device/chunk_mask.h): the sequence-local key tile index in the low 26 bits, plus three flags
// for each 64-row half of the query tile (half 0 = rows [0, 64), half 1 = rows [64, 128)), so
// a 128-row tile over 64-row mask blocks computes each half only where its own block is on.
inline constexpr uint32_t kTileIndexMask = (1u << 26) - 1;
inline constexpr int kHalfRows = 64;
// Shift of half h's flags.
HBSA_HD constexpr int HalfShift(int half) { return 26 + 3 * half; }
// The half has at least one allowed pair in this key tile.
inline constexpr uint32_t kHalfLive = 1u;
// Some pairs of the half are not allowed (causal cut, mask blocks that differ inside it, or
// the tile runs past the sequence end): mask per element.
inline constexpr uint32_t kHalfPartial = 2u;
// The half lies inside one (query block, key block) pair whose bit is on, so only the causal
// rule and the sequence end can remove elements (no mask look-up per element).
inline constexpr uint32_t kHalfSingleBlock = 4u;
HBSA_HD uint32_t HalfFlags(uint32_t entry, int half) { return (entry >> HalfShift(half)) & 7u; }

// Compute-tile geometry of one request; a pure function of the request and the kernel
// (heuristics.h). A query tile holds `q_rows` consecutive query rows of one sequence for each
// of `heads` consecutive query heads of one KV head (GQA packing): tile row r is query row
// row0 + r % q_rows of head h0 + r / q_rows, so block_m = q_rows * heads.
struct TileShape {
  int32_t block_m = 64;  // tile rows (and rows per CTA)
  int32_t block_n = 64;  // key rows per key tile
  int32_t q_rows = 64;   // query rows of one head per tile (the row step of the tile table)
  int32_t heads = 1;     // query heads per tile (divides Hq / Hk)
};

// Everything the planner and the attention kernels read. Shapes use the SEMANTICS.md names.
struct KernelParams {
  const void* q = nullptr;   // dtype [total_q, Hq, D]
  const void* k = nullptr;   // dtype [total_k, Hk, D]
  const void* v = nullptr;   // dtype [total_k, Hk, D]
  void* out = nullptr;       // dtype [total_q, Hq, D]
  float* lse = nullptr;      // fp32 [total_q, Hq], nullptr when not requested
  int32_t num_heads_q = 0;   // Hq
  int32_t num_heads_k = 0;   // Hk
  int32_t head_dim = 0;      // D (the kernel's compiled tile may be wider; extra columns are 0)
  int64_t total_k = 0;       // key rows over all sequences (host-side bound of the TMA maps)
  int32_t group = 1;         // Hq / Hk
  float scale = 0.f;         // softmax scale (fp32 kernel: natural-log domain)
  float scale_log2 = 0.f;    // softmax scale * log2(e) (tensor-core kernel: log2 domain)
  bool causal = false;       // bottom-right causal rule
  bool aligned16 = false;    // Sq % 16 == 0 and Sk % 16 == 0: every 16 x 16 sub-tile lies in
                             // one mask block pair (the wgmma planner's shortcut)
  BlockLayout layout;        // device view of the block geometry (arrays in the device buffer)
  MaskView mask;             // device view of the mask (dense or compact)
  TileShape tile;            // compute tile
  int32_t num_q_tiles = 0;             // query tiles over all sequences (q_rows rows each)
  const int32_t* q_tile_seq = nullptr;   // [num_q_tiles] sequence of tile t
  const int32_t* q_tile_row0 = nullptr;  // [num_q_tiles] first local query row of tile t
  const int64_t* q_tile_base = nullptr;  // [num_q_tiles] first visit slot of tile t in a head's
                                         // plane (prefix sum of key tiles of each tile's seq)
  int64_t plane_slots = 0;               // visit slots per KV head (sum over tiles of key tiles)
  int32_t* visit_count = nullptr;        // [Hk, num_q_tiles] workspace: entries per row
  uint32_t* visits = nullptr;            // [Hk, plane_slots] workspace: entries, ascending
                                         // (wgmma: [Hk, plane_slots, 4] chunk words)
};

// Local-row bounds of query tile t and sequence lengths, shared by the kernels.
struct TileRows {
  int32_t b;       // sequence
  int64_t row0;    // first local query row of the tile
  int64_t lq, lk;  // sequence lengths
};

HBSA_HD TileRows TileRowsOf(const KernelParams& p, int32_t t) {
  TileRows r;
  r.b = p.q_tile_seq[t];
  r.row0 = p.q_tile_row0[t];
  r.lq = p.layout.QLen(r.b);
  r.lk = p.layout.KLen(r.b);
  return r;
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_PARAMS_H_
