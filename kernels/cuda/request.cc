// request.cc: the hbsa/cuda.h executor contract (PlanRequest, PackInputs, Enqueue) and the
// synchronous hbsa::Run path built on it (RunCuda).
//
// One request uses one device buffer, laid out by PlanRequest:
//   [inputs: q, k, v, cu_seqlens, layout arrays, tile table, mask]   <- one H2D copy
//   [outputs: out, lse]                                              <- one D2H copy
//   [workspace: visit counts, visit lists]                           <- written by the planner
// Enqueue launches the planner and the attention kernel on the caller's stream; neither
// synchronises nor allocates, so the sequence can be captured in a CUDA graph.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../common/backends.h"
#include "absl/strings/str_cat.h"
#include "cuda_status.h"
#include "hbsa/cuda.h"
#include "hbsa/plan.h"
#include "heuristics.h"
#include "launch.h"
#include "request_internal.h"

namespace hbsa::cuda {
namespace {

using cuda_internal::KernelParams;
using cuda_internal::TileShape;

// Indices into RequestLayout::offsets.
enum Piece : int {
  kQ, kK, kV,
  kCuSeqQ, kCuSeqK, kQBlockStart, kKBlockStart, kQBlockSeq,  // BlockLayout arrays
  kQTileSeq, kQTileRow0, kQTileBase,                          // compute-tile table
  kMaskDense, kMaskRowOffsets, kMaskColIndices,               // one form is non-empty
  kVisitCount, kVisits,                                       // planner workspace
  kNumPieces,
};

constexpr size_t kAlign = 256;
size_t AlignUp(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Query tiles and visit slots per KV head implied by the host cu_seqlens.
struct TileCounts {
  int64_t num_q_tiles = 0;
  int64_t plane_slots = 0;
};

TileCounts CountTiles(const AttentionArgs& a, const TileShape& tile) {
  const auto* cq = static_cast<const int32_t*>(a.cu_seqlens_q.data);
  const auto* ck = static_cast<const int32_t*>(a.cu_seqlens_k.data);
  TileCounts c;
  for (int32_t b = 0; b < a.batch; ++b) {
    const int64_t qt = CeilDiv(cq[b + 1] - cq[b], tile.block_m);
    c.num_q_tiles += qt;
    c.plane_slots += qt * CeilDiv(ck[b + 1] - ck[b], tile.block_n);
  }
  return c;
}

TileShape TileFor(const AttentionArgs& a) {
  return cuda_internal::ChooseTile(a.dtype, a.head_dim, a.q_block_size);
}

int64_t MaskNnz(const AttentionArgs& a, int64_t rows) {
  return static_cast<const int64_t*>(a.compact_mask.row_offsets.data)[rows];
}

template <typename T>
T* At(void* base, const RequestLayout& layout, Piece piece) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + layout.offsets[piece]);
}

}  // namespace

absl::StatusOr<RequestLayout> PlanRequest(const AttentionArgs& a) {
  if (a.dtype != DType::kFloat32 && cuda_internal::CompiledHeadDim(a.head_dim) == 0) {
    return absl::UnimplementedError(
        absl::StrCat("cuda backend: no compiled tile for head_dim ", a.head_dim, " (max 256)"));
  }
  if (a.head_dim > kMaxHeadDim) {
    return absl::UnimplementedError(absl::StrCat("cuda backend: head_dim ", a.head_dim, " > 256"));
  }
  const TileShape tile = TileFor(a);
  const TileCounts tc = CountTiles(a, tile);
  if (tc.num_q_tiles > std::numeric_limits<int32_t>::max()) {
    return absl::ResourceExhaustedError("cuda backend: more than 2^31 query tiles");
  }
  const auto* cq = static_cast<const int32_t*>(a.cu_seqlens_q.data);
  const auto* ck = static_cast<const int32_t*>(a.cu_seqlens_k.data);
  const int64_t nq = CountBlocks(a.batch, cq, a.q_block_size);
  const int64_t nk = CountBlocks(a.batch, ck, a.k_block_size);
  const size_t esz = DTypeSize(a.dtype);
  const size_t q_bytes = size_t(a.total_q) * a.num_heads_q * a.head_dim * esz;
  const size_t kv_bytes = size_t(a.total_k) * a.num_heads_k * a.head_dim * esz;
  const size_t seq_bytes = size_t(a.batch + 1) * sizeof(int32_t);
  const int64_t mask_rows = int64_t{a.num_heads_k} * nq;

  size_t sizes[kNumPieces] = {};
  sizes[kQ] = q_bytes;
  sizes[kK] = sizes[kV] = kv_bytes;
  sizes[kCuSeqQ] = sizes[kCuSeqK] = sizes[kQBlockStart] = sizes[kKBlockStart] = seq_bytes;
  sizes[kQBlockSeq] = size_t(nq) * sizeof(int32_t);
  sizes[kQTileSeq] = sizes[kQTileRow0] = size_t(tc.num_q_tiles) * sizeof(int32_t);
  sizes[kQTileBase] = size_t(tc.num_q_tiles) * sizeof(int64_t);
  if (a.mask_format == MaskFormat::kDense) {
    sizes[kMaskDense] = size_t(mask_rows) * size_t(nk);
  } else {
    sizes[kMaskRowOffsets] = size_t(mask_rows + 1) * sizeof(int64_t);
    sizes[kMaskColIndices] = size_t(MaskNnz(a, mask_rows)) * sizeof(int32_t);
  }
  sizes[kVisitCount] = size_t(a.num_heads_k) * size_t(tc.num_q_tiles) * sizeof(int32_t);
  sizes[kVisits] = size_t(a.num_heads_k) * size_t(tc.plane_slots) * sizeof(uint32_t);

  RequestLayout layout;
  layout.offsets.assign(kNumPieces, 0);
  size_t cursor = 0;
  for (int piece = kQ; piece <= kMaskColIndices; ++piece) {
    layout.offsets[piece] = cursor;
    cursor = AlignUp(cursor + sizes[piece]);
  }
  layout.input_bytes = cursor;
  layout.out_offset = cursor;
  const size_t out_bytes = size_t(a.total_q) * a.num_heads_q * a.head_dim * esz;
  layout.lse_offset = AlignUp(cursor + out_bytes);
  const size_t lse_bytes =
      a.lse.data != nullptr ? size_t(a.total_q) * a.num_heads_q * sizeof(float) : 0;
  layout.output_bytes = a.lse.data != nullptr ? layout.lse_offset - cursor + lse_bytes : out_bytes;
  cursor = AlignUp(cursor + layout.output_bytes);
  for (int piece = kVisitCount; piece <= kVisits; ++piece) {
    layout.offsets[piece] = cursor;
    cursor = AlignUp(cursor + sizes[piece]);
  }
  layout.total_bytes = cursor;
  return layout;
}

void PackInputs(const AttentionArgs& a, const RequestLayout& layout, void* dst) {
  const size_t esz = DTypeSize(a.dtype);
  std::memcpy(At<char>(dst, layout, kQ), a.q.data,
              size_t(a.total_q) * a.num_heads_q * a.head_dim * esz);
  const size_t kv_bytes = size_t(a.total_k) * a.num_heads_k * a.head_dim * esz;
  std::memcpy(At<char>(dst, layout, kK), a.k.data, kv_bytes);
  std::memcpy(At<char>(dst, layout, kV), a.v.data, kv_bytes);
  cuda_internal::PackMetadata(a, layout, dst);
}

InputOffsets InputOffsetsOf(const RequestLayout& layout) {
  InputOffsets o;
  o.q = layout.offsets[kQ];
  o.k = layout.offsets[kK];
  o.v = layout.offsets[kV];
  o.metadata = layout.offsets[kCuSeqQ];
  return o;
}

void PackMetadata(const AttentionArgs& args, const RequestLayout& layout, void* dst) {
  cuda_internal::PackMetadata(args, layout, dst);
}

}  // namespace hbsa::cuda

namespace hbsa::cuda_internal {

using cuda::RequestLayout;

TensorOffsets OffsetsOf(const RequestLayout& layout) {
  TensorOffsets t;
  t.q = layout.offsets[cuda::kQ];
  t.k = layout.offsets[cuda::kK];
  t.v = layout.offsets[cuda::kV];
  t.metadata = layout.offsets[cuda::kCuSeqQ];
  return t;
}

void PackMetadata(const AttentionArgs& a, const RequestLayout& layout, void* dst) {
  using namespace cuda;  // NOLINT: the piece names and helpers of this file
  const BlockLayoutStorage storage(a);
  auto copy_vec = [&](const auto& vec, Piece piece) {
    if (!vec.empty()) std::memcpy(At<char>(dst, layout, piece), vec.data(), vec.size() * sizeof(vec[0]));
  };
  copy_vec(storage.cu_seqlens_q(), kCuSeqQ);
  copy_vec(storage.cu_seqlens_k(), kCuSeqK);
  copy_vec(storage.q_block_start(), kQBlockStart);
  copy_vec(storage.k_block_start(), kKBlockStart);
  copy_vec(storage.q_block_seq(), kQBlockSeq);

  // Compute-tile table: sequence, first local row, and first visit slot of each query tile.
  const TileShape tile = TileFor(a);
  auto* tile_seq = At<int32_t>(dst, layout, kQTileSeq);
  auto* tile_row0 = At<int32_t>(dst, layout, kQTileRow0);
  auto* tile_base = At<int64_t>(dst, layout, kQTileBase);
  const BlockLayout& view = storage.view();
  int64_t t = 0, slots = 0;
  for (int32_t b = 0; b < a.batch; ++b) {
    const int64_t lq = view.QLen(b), k_tiles = CeilDiv(view.KLen(b), tile.block_n);
    for (int64_t row0 = 0; row0 < lq; row0 += tile.block_m, ++t) {
      tile_seq[t] = b;
      tile_row0[t] = static_cast<int32_t>(row0);
      tile_base[t] = slots;
      slots += k_tiles;
    }
  }

  const int64_t mask_rows = int64_t{a.num_heads_k} * view.num_q_blocks;
  if (a.mask_format == MaskFormat::kDense) {
    std::memcpy(At<char>(dst, layout, kMaskDense), a.dense_mask.data.data,
                size_t(mask_rows) * size_t(view.num_k_blocks));
  } else {
    std::memcpy(At<char>(dst, layout, kMaskRowOffsets), a.compact_mask.row_offsets.data,
                size_t(mask_rows + 1) * sizeof(int64_t));
    std::memcpy(At<char>(dst, layout, kMaskColIndices), a.compact_mask.col_indices.data,
                size_t(MaskNnz(a, mask_rows)) * sizeof(int32_t));
  }
}

}  // namespace hbsa::cuda_internal

namespace hbsa::cuda {

absl::Status Enqueue(const AttentionArgs& a, const RequestLayout& layout, void* device_base,
                     cudaStream_t stream) {
  const TileShape tile = TileFor(a);
  const TileCounts tc = CountTiles(a, tile);
  const auto* cq = static_cast<const int32_t*>(a.cu_seqlens_q.data);
  const auto* ck = static_cast<const int32_t*>(a.cu_seqlens_k.data);

  KernelParams p;
  p.q = At<const char>(device_base, layout, kQ);
  p.k = At<const char>(device_base, layout, kK);
  p.v = At<const char>(device_base, layout, kV);
  p.out = static_cast<char*>(device_base) + layout.out_offset;
  p.lse = a.lse.data != nullptr
              ? reinterpret_cast<float*>(static_cast<char*>(device_base) + layout.lse_offset)
              : nullptr;
  p.num_heads_q = a.num_heads_q;
  p.num_heads_k = a.num_heads_k;
  p.head_dim = a.head_dim;
  p.total_k = a.total_k;
  p.group = a.num_heads_q / a.num_heads_k;
  p.scale = EffectiveScale(a);
  p.scale_log2 = static_cast<float>(static_cast<double>(EffectiveScale(a)) * M_LOG2E);
  p.causal = a.causal;
  p.layout.batch = a.batch;
  p.layout.q_block_size = a.q_block_size;
  p.layout.k_block_size = a.k_block_size;
  p.layout.num_q_blocks = static_cast<int32_t>(CountBlocks(a.batch, cq, a.q_block_size));
  p.layout.num_k_blocks = static_cast<int32_t>(CountBlocks(a.batch, ck, a.k_block_size));
  p.layout.cu_seqlens_q = At<const int32_t>(device_base, layout, kCuSeqQ);
  p.layout.cu_seqlens_k = At<const int32_t>(device_base, layout, kCuSeqK);
  p.layout.q_block_start = At<const int32_t>(device_base, layout, kQBlockStart);
  p.layout.k_block_start = At<const int32_t>(device_base, layout, kKBlockStart);
  p.layout.q_block_seq = At<const int32_t>(device_base, layout, kQBlockSeq);
  p.mask.num_q_blocks = p.layout.num_q_blocks;
  p.mask.num_k_blocks = p.layout.num_k_blocks;
  if (a.mask_format == MaskFormat::kDense) {
    p.mask.dense = At<const uint8_t>(device_base, layout, kMaskDense);
  } else {
    p.mask.row_offsets = At<const int64_t>(device_base, layout, kMaskRowOffsets);
    p.mask.col_indices = At<const int32_t>(device_base, layout, kMaskColIndices);
  }
  p.tile = tile;
  p.num_q_tiles = static_cast<int32_t>(tc.num_q_tiles);
  p.q_tile_seq = At<const int32_t>(device_base, layout, kQTileSeq);
  p.q_tile_row0 = At<const int32_t>(device_base, layout, kQTileRow0);
  p.q_tile_base = At<const int64_t>(device_base, layout, kQTileBase);
  p.plane_slots = tc.plane_slots;
  p.visit_count = At<int32_t>(device_base, layout, kVisitCount);
  p.visits = At<uint32_t>(device_base, layout, kVisits);

  if (absl::Status s = cuda_internal::CudaStatus(cuda_internal::LaunchPlan(p, stream),
                                                 "launch of the visit-list planner");
      !s.ok()) {
    return s;
  }
  return cuda_internal::CudaStatus(cuda_internal::LaunchAttention(a.dtype, p, stream),
                                   "launch of the attention kernel");
}

std::vector<int32_t> FastHeadDims() { return {64, 128}; }

}  // namespace hbsa::cuda
