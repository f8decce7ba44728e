// plan.cc: host-side block layout and visit-list compiler (see hbsa/plan.h).
#include "hbsa/plan.h"

namespace hbsa {

int64_t CountBlocks(int32_t batch, const int32_t* cu_seqlens, int32_t block_size) {
  int64_t n = 0;
  // int64 differences: translation calls this on offsets not yet validated, where an int32
  // difference could overflow.
  for (int32_t b = 0; b < batch; ++b) {
    n += CeilDiv(int64_t{cu_seqlens[b + 1]} - cu_seqlens[b], block_size);
  }
  return n;
}

BlockLayoutStorage::BlockLayoutStorage(int32_t batch, const int32_t* cu_seqlens_q,
                                       const int32_t* cu_seqlens_k, int32_t q_block_size,
                                       int32_t k_block_size)
    : cu_q_(cu_seqlens_q, cu_seqlens_q + batch + 1),
      cu_k_(cu_seqlens_k, cu_seqlens_k + batch + 1),
      q_block_start_(batch + 1, 0),
      k_block_start_(batch + 1, 0) {
  for (int32_t b = 0; b < batch; ++b) {
    const int32_t nq = static_cast<int32_t>(CeilDiv(cu_q_[b + 1] - cu_q_[b], q_block_size));
    const int32_t nk = static_cast<int32_t>(CeilDiv(cu_k_[b + 1] - cu_k_[b], k_block_size));
    q_block_start_[b + 1] = q_block_start_[b] + nq;
    k_block_start_[b + 1] = k_block_start_[b] + nk;
    q_block_seq_.insert(q_block_seq_.end(), nq, b);
  }
  view_.batch = batch;
  view_.q_block_size = q_block_size;
  view_.k_block_size = k_block_size;
  view_.num_q_blocks = q_block_start_[batch];
  view_.num_k_blocks = k_block_start_[batch];
  view_.cu_seqlens_q = cu_q_.data();
  view_.cu_seqlens_k = cu_k_.data();
  view_.q_block_start = q_block_start_.data();
  view_.k_block_start = k_block_start_.data();
  view_.q_block_seq = q_block_seq_.data();
}

BlockLayoutStorage::BlockLayoutStorage(const AttentionArgs& args)
    : BlockLayoutStorage(args.batch, static_cast<const int32_t*>(args.cu_seqlens_q.data),
                         static_cast<const int32_t*>(args.cu_seqlens_k.data), args.q_block_size,
                         args.k_block_size) {}

MaskView MakeMaskView(const AttentionArgs& args, const BlockLayout& layout) {
  MaskView m;
  m.num_q_blocks = layout.num_q_blocks;
  m.num_k_blocks = layout.num_k_blocks;
  if (args.mask_format == MaskFormat::kDense) {
    // A dense mask with no entries (Nq or Nk = 0) may come with a null pointer; MaskView tells
    // the forms apart by `dense != nullptr`, so point it at a dummy that is never read.
    static constexpr uint8_t kNoEntries = 0;
    m.dense = args.dense_mask.data.data != nullptr
                  ? static_cast<const uint8_t*>(args.dense_mask.data.data)
                  : &kNoEntries;
  } else {
    m.row_offsets = static_cast<const int64_t*>(args.compact_mask.row_offsets.data);
    m.col_indices = static_cast<const int32_t*>(args.compact_mask.col_indices.data);
  }
  return m;
}

namespace {

// Appends the visits of row (hk, i) for candidate key block j of sequence b.
inline void Visit(const BlockLayout& layout, const MaskView& mask, bool causal, int32_t hk,
                  int32_t b, int32_t i, int32_t j, VisitList* out) {
  const Coverage c = BlockPairCoverage(layout, mask, causal, hk, b, i, j);
  if (c == Coverage::kNone) return;
  out->k_blocks.push_back(j);
  out->coverage.push_back(c);
}

}  // namespace

VisitList CompileVisitList(const BlockLayout& layout, const MaskView& mask, bool causal,
                           int32_t num_heads_k) {
  VisitList out;
  out.num_heads_k = num_heads_k;
  out.num_q_blocks = layout.num_q_blocks;
  out.offsets.reserve(int64_t{num_heads_k} * layout.num_q_blocks + 1);
  out.offsets.push_back(0);
  for (int32_t hk = 0; hk < num_heads_k; ++hk) {
    for (int32_t i = 0; i < layout.num_q_blocks; ++i) {
      const int32_t b = layout.q_block_seq[i];
      if (mask.dense != nullptr) {
        for (int32_t j = layout.k_block_start[b]; j < layout.k_block_start[b + 1]; ++j) {
          Visit(layout, mask, causal, hk, b, i, j, &out);
        }
      } else {
        const int64_t row = int64_t{hk} * layout.num_q_blocks + i;
        for (int64_t e = mask.row_offsets[row]; e < mask.row_offsets[row + 1]; ++e) {
          const int32_t j = mask.col_indices[e];
          if (layout.KBlockInSeq(b, j)) Visit(layout, mask, causal, hk, b, i, j, &out);
        }
      }
      out.offsets.push_back(static_cast<int64_t>(out.k_blocks.size()));
    }
  }
  return out;
}

std::vector<uint8_t> VisitListToDense(const VisitList& list, int32_t num_k_blocks) {
  const int64_t rows = int64_t{list.num_heads_k} * list.num_q_blocks;
  std::vector<uint8_t> dense(rows * num_k_blocks, 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t e = list.offsets[r]; e < list.offsets[r + 1]; ++e) {
      dense[r * num_k_blocks + list.k_blocks[e]] = 1;
    }
  }
  return dense;
}

}  // namespace hbsa
