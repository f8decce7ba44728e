// heuristics.h (internal): tile choices as pure functions of the request (host only).
//
// Tensor-core path (fp16/bf16): key tiles are always 64 rows (kBlockN). Query tiles are 128 rows
// (8 warps) when the query block size is a multiple of 128, so a tile never straddles two mask
// blocks with different bits and each key tile is read once per 128 query rows; otherwise 64
// rows (4 warps), so 64-row mask blocks map one-to-one onto tiles and a sparse mask does not
// pay for the union of two blocks' key sets (at 90 % sparsity that union nearly doubles the
// work). Head dims above 128 use 64-row tiles only: the 256-wide O accumulator needs the whole
// register budget of one CTA per SM.
//
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
  const bool wide_m = CompiledHeadDim(head_dim) <= 128 && q_block_size % 128 == 0;
  return TileShape{wide_m ? 128 : 64, 64};
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_HEURISTICS_H_
