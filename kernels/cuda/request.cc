// request.cc: the hbsa/cuda.h executor contract (PlanRequest, PackInputs, Enqueue) and the
// internal pieces the benchmark and the tests use (request_internal.h).
//
// One request uses one device buffer, laid out by PlanRequest:
//   [inputs: q, k, v, cu_seqlens, layout arrays, tile table, mask]   <- one H2D copy
//   [outputs: out, lse]                                              <- one D2H copy
//   [workspace: visit counts, visit lists]                           <- written by the planner
// Enqueue launches the planner and the attention kernel on the caller's stream; neither
// synchronises nor allocates, so the sequence can be captured in a CUDA graph. The kernel and
// its tiles are chosen once, in PlanRequest (heuristics.h ChooseKernel), and read back from the
// layout everywhere else.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../common/backends.h"
#include "absl/strings/str_cat.h"
#include "cuda_status.h"
#include "device/chunk_mask.h"
#include "device_traits.h"
#include "hbsa/cuda.h"
#include "hbsa/plan.h"
#include "heuristics.h"
#include "launch/launch.h"
#include "request_internal.h"

namespace hbsa::cuda_internal {
namespace {

using cuda::RequestLayout;

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
    const int64_t qt = CeilDiv(cq[b + 1] - cq[b], tile.q_rows);
    c.num_q_tiles += qt;
    c.plane_slots += qt * CeilDiv(ck[b + 1] - ck[b], tile.block_n);
  }
  return c;
}

// The tiles PlanRequest chose, as stored in the layout.
TileShape TileOf(const RequestLayout& layout) {
  return TileShape{layout.tile_rows, layout.tile_keys, layout.tile_q_rows, layout.tile_heads};
}

int64_t MaskNnz(const AttentionArgs& a, int64_t rows) {
  return static_cast<const int64_t*>(a.compact_mask.row_offsets.data)[rows];
}

template <typename T>
T* At(void* base, const RequestLayout& layout, Piece piece) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + layout.offsets[piece]);
}

// "wgmma_tma bf16 D=128 (compiled 128), 128-row tiles (64 query rows x 2 heads)".
std::string InstanceName(const AttentionArgs& a, const RequestLayout& layout) {
  return absl::StrCat(std::string(CudaKernelName(layout.kernel)), " ",
                      std::string(DTypeName(a.dtype)), " D=", a.head_dim,
                      " (compiled ", CompiledHeadDim(a.head_dim), "), ", layout.tile_rows,
                      "-row tiles (", layout.tile_q_rows, " query rows x ", layout.tile_heads,
                      " heads)");
}

}  // namespace

absl::StatusOr<RequestLayout> PlanRequestFor(const AttentionArgs& a, const DeviceTraits& device,
                                             CudaKernel requested) {
  if (a.head_dim > kMaxHeadDim) {
    return absl::UnimplementedError(absl::StrCat("cuda backend: head_dim ", a.head_dim, " > 256"));
  }
  absl::StatusOr<KernelPlan> plan = ChooseKernel(device, ShapeOf(a), requested);
  if (!plan.ok()) return plan.status();
  const TileShape tile = plan->tile;
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
  // An entry is one 32-bit word (key-tile planner) or four chunk words (wgmma, chunk_mask.h).
  const size_t entry_bytes =
      plan->kernel == CudaKernel::kWgmmaTma ? kTileChunks * sizeof(uint32_t) : sizeof(uint32_t);
  sizes[kVisits] = size_t(a.num_heads_k) * size_t(tc.plane_slots) * entry_bytes;

  RequestLayout layout;
  layout.kernel = plan->kernel;
  layout.tile_rows = tile.block_m;
  layout.tile_keys = tile.block_n;
  layout.tile_q_rows = tile.q_rows;
  layout.tile_heads = tile.heads;
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

}  // namespace hbsa::cuda_internal

namespace hbsa::cuda {

using namespace cuda_internal;  // NOLINT: the pieces and helpers above

InputOffsets InputOffsetsOf(const RequestLayout& layout) {
  InputOffsets o;
  o.q = layout.offsets[kQ];
  o.k = layout.offsets[kK];
  o.v = layout.offsets[kV];
  o.metadata = layout.offsets[kCuSeqQ];
  return o;
}

void PackMetadata(const AttentionArgs& a, const RequestLayout& layout, void* dst) {
  const BlockLayoutStorage storage(a);
  auto copy_vec = [&](const auto& vec, Piece piece) {
    if (!vec.empty()) {
      std::memcpy(At<char>(dst, layout, piece), vec.data(), vec.size() * sizeof(vec[0]));
    }
  };
  copy_vec(storage.cu_seqlens_q(), kCuSeqQ);
  copy_vec(storage.cu_seqlens_k(), kCuSeqK);
  copy_vec(storage.q_block_start(), kQBlockStart);
  copy_vec(storage.k_block_start(), kKBlockStart);
  copy_vec(storage.q_block_seq(), kQBlockSeq);

  // Compute-tile table: sequence, first local row, and first visit slot of each query tile.
  const TileShape tile = TileOf(layout);
  auto* tile_seq = At<int32_t>(dst, layout, kQTileSeq);
  auto* tile_row0 = At<int32_t>(dst, layout, kQTileRow0);
  auto* tile_base = At<int64_t>(dst, layout, kQTileBase);
  const BlockLayout& view = storage.view();
  int64_t t = 0, slots = 0;
  for (int32_t b = 0; b < a.batch; ++b) {
    const int64_t lq = view.QLen(b), k_tiles = CeilDiv(view.KLen(b), tile.block_n);
    for (int64_t row0 = 0; row0 < lq; row0 += tile.q_rows, ++t) {
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

}  // namespace hbsa::cuda

namespace hbsa::cuda_internal {

KernelParams ParamsFor(const AttentionArgs& a, const RequestLayout& layout, void* device_base) {
  const TileShape tile = TileOf(layout);
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
  p.aligned16 = a.q_block_size % 16 == 0 && a.k_block_size % 16 == 0;
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
  return p;
}

}  // namespace hbsa::cuda_internal

namespace hbsa::cuda {

using cuda_internal::CudaStatus;

absl::StatusOr<RequestLayout> PlanRequest(const AttentionArgs& a, const PlanOptions& options) {
  return cuda_internal::PlanRequestFor(a, cuda_internal::CurrentDeviceTraits(), options.kernel);
}

void PackInputs(const AttentionArgs& a, const RequestLayout& layout, void* dst) {
  const size_t esz = DTypeSize(a.dtype);
  const InputOffsets off = InputOffsetsOf(layout);
  char* base = static_cast<char*>(dst);
  std::memcpy(base + off.q, a.q.data, size_t(a.total_q) * a.num_heads_q * a.head_dim * esz);
  const size_t kv_bytes = size_t(a.total_k) * a.num_heads_k * a.head_dim * esz;
  std::memcpy(base + off.k, a.k.data, kv_bytes);
  std::memcpy(base + off.v, a.v.data, kv_bytes);
  PackMetadata(a, layout, dst);
}

absl::Status Enqueue(const AttentionArgs& a, const RequestLayout& layout, void* device_base,
                     cudaStream_t stream) {
  if (layout.kernel == CudaKernel::kAuto) {
    return absl::InvalidArgumentError("layout: not planned by PlanRequest (kernel is auto)");
  }
  // An error left pending by earlier work on this thread is not this request's: a sticky one is
  // reported as what it is; any other was already returned to the call that caused it.
  if (const cudaError_t prior = cudaGetLastError(); prior != cudaSuccess) {
    if (cuda_internal::IsStickyError(prior)) {
      return CudaStatus(prior, "earlier work on this device (pending before this request)");
    }
  }
  const cuda_internal::KernelParams p = cuda_internal::ParamsFor(a, layout, device_base);
  const cuda_internal::LaunchResult plan = layout.kernel == CudaKernel::kWgmmaTma
                                               ? cuda_internal::LaunchPlanChunks(p, stream)
                                               : cuda_internal::LaunchPlanTiles(p, stream);
  if (plan.error != cudaSuccess) {
    return CudaStatus(plan.error, absl::StrCat("visit-list planner: ", plan.step));
  }
  const cuda_internal::LaunchResult run =
      cuda_internal::LaunchAttention(layout.kernel, a.dtype, p, stream);
  if (run.error != cudaSuccess) {
    return CudaStatus(run.error, absl::StrCat("attention kernel ",
                                              cuda_internal::InstanceName(a, layout), ": ",
                                              run.step));
  }
  return absl::OkStatus();
}

std::vector<int32_t> FastHeadDims() {
  std::vector<int32_t> wgmma, mma_sync;
  auto add = [](std::vector<int32_t>* v, int32_t d) {
    if (std::find(v->begin(), v->end(), d) == v->end()) v->push_back(d);
  };
#define HBSA_MMA_SYNC_INSTANCE(T, E, D, M) add(&mma_sync, D);
#define HBSA_WGMMA_INSTANCE(T, E, D, M) add(&wgmma, D);
#include "hbsa_cuda_instances.inc"
#undef HBSA_MMA_SYNC_INSTANCE
#undef HBSA_WGMMA_INSTANCE
  return wgmma.empty() ? mma_sync : wgmma;
}

std::vector<CudaKernel> DeviceKernels() {
  const cuda_internal::DeviceTraits dev = cuda_internal::CurrentDeviceTraits();
  std::vector<CudaKernel> out;
  // A kernel counts when it can run some request: its most common shape.
  const cuda_internal::RequestShape half{DType::kBFloat16, 128, 128, 1};
  const cuda_internal::RequestShape fp32{DType::kFloat32, 128, 128, 1};
  for (CudaKernel k : {CudaKernel::kWgmmaTma, CudaKernel::kMmaSync, CudaKernel::kSimtFp32}) {
    const auto& s = k == CudaKernel::kSimtFp32 ? fp32 : half;
    if (cuda_internal::WhyNot(k, dev, s).empty()) out.push_back(k);
  }
  return out;
}

}  // namespace hbsa::cuda
