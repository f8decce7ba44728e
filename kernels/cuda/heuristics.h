// heuristics.h (internal): tile choices as pure functions of the request (host only).
//
// Tensor-core path (fp16/bf16): key tiles are always 64 rows.
// * Query block size a multiple of 128 (and D <= 128): 128-row tiles on 4 warps of 32 rows, so
//   each K/V fragment read from shared memory feeds two MMAs. On an H100 this ran at 266-282
//   effective TFLOP/s on the 128-row rows of the ANCHORS grid, against 209-257 for 4 warps of 16
//   rows (docs/KERNEL.md, v1 -> v2).
// * Otherwise: 64-row tiles on 4 warps of 16 rows. With 64-row mask blocks, a 128-row tile
//   must load the union of two blocks' key tiles and leaves half its warps idle on the tiles
//   only one block needs (each 64-row half has its own visit flags): measured 155-181 TFLOP/s
//   against 175-206 for 64-row tiles (v2 vs v1). 64 x 32 tiles on 2 warps of 32 rows (4 CTAs
//   per SM, v4) measured the same on N = 16384 and up to 9 % slower on N = 4096, so 64 x 64.
// * D > 128: 64-row tiles of 16-row warps: the 256-wide O accumulator takes the register
//   budget of two row atoms.
// fp32 path (SIMT, exact): 32 x 32 tiles keep K, V and Q of D = 256 in about 97 KB of shared
// memory.
#ifndef HBSA_CUDA_HEURISTICS_H_
#define HBSA_CUDA_HEURISTICS_H_

#include <cstdint>

#include "hbsa/attention.h"
#include "params.h"

namespace hbsa::cuda_internal {

// The compiled tensor-core head dim that covers `d` (64, 128 or 256), or 0 when none does.
inline int32_t CompiledHeadDim(int32_t d) {
  if (d <= 0) return 0;
  if (d <= 64) return 64;
  if (d <= 128) return 128;
  if (d <= 256) return 256;
  return 0;
}

inline TileShape ChooseTile(DType dtype, int32_t head_dim, int32_t q_block_size) {
  if (dtype == DType::kFloat32) return TileShape{32, 32};
  if (CompiledHeadDim(head_dim) > 128) return TileShape{64, 64};
  return TileShape{q_block_size % 128 == 0 ? 128 : 64, 64};
}

// Whether the wgmma (Hopper, sm_90a) kernel runs a request instead of the mma.sync kernel: the
// device is compute capability 9.x, the binary carries its sm_90a image, the dtype is fp16/bf16
// and D <= 128 (D = 256 would need 128 accumulator registers per thread for O alone: fallback).
// `disabled` is the HBSA_CUDA_NO_WGMMA=1 override (A/B measurements). Tiles are ChooseTile's
// either way (64 keys; 128 query rows when Sq % 128 == 0, one warpgroup per 64-row half).
inline bool UseHopperPath(int cc_major, bool sm90a_image, DType dtype, int32_t head_dim,
                          bool disabled) {
  if (disabled || cc_major != 9 || !sm90a_image) return false;
  if (dtype == DType::kFloat32) return false;
  const int32_t d = CompiledHeadDim(head_dim);
  return d == 64 || d == 128;
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_HEURISTICS_H_
