// hbsa/plan.h: host-side block layout and mask compiler (the compact visit lists).
//
// Built once per call from validated AttentionArgs; owns the arrays that the BlockLayout and
// MaskView views in layout.h point to. The CPU backends iterate the VisitList; the CUDA backend
// copies the layout to the device and plans its own compute tiles there with TileCoverage.
#ifndef HBSA_PLAN_H_
#define HBSA_PLAN_H_

#include <cstdint>
#include <vector>

#include "hbsa/attention.h"
#include "hbsa/layout.h"

namespace hbsa {

// Owns the per-sequence block offsets of one batch. Requires cu_seqlens already validated.
class BlockLayoutStorage {
 public:
  BlockLayoutStorage(int32_t batch, const int32_t* cu_seqlens_q, const int32_t* cu_seqlens_k,
                     int32_t q_block_size, int32_t k_block_size);
  explicit BlockLayoutStorage(const AttentionArgs& args);
  BlockLayoutStorage(const BlockLayoutStorage&) = delete;
  BlockLayoutStorage& operator=(const BlockLayoutStorage&) = delete;

  // View into this object's arrays; valid while this object lives.
  const BlockLayout& view() const { return view_; }
  const std::vector<int32_t>& cu_seqlens_q() const { return cu_q_; }
  const std::vector<int32_t>& cu_seqlens_k() const { return cu_k_; }
  const std::vector<int32_t>& q_block_start() const { return q_block_start_; }
  const std::vector<int32_t>& k_block_start() const { return k_block_start_; }
  const std::vector<int32_t>& q_block_seq() const { return q_block_seq_; }

 private:
  std::vector<int32_t> cu_q_, cu_k_;        // [B+1] copies of the caller's offsets
  std::vector<int32_t> q_block_start_;      // [B+1]
  std::vector<int32_t> k_block_start_;      // [B+1]
  std::vector<int32_t> q_block_seq_;        // [Nq]
  BlockLayout view_;
};

// Number of query / key blocks implied by cu_seqlens (int64: may exceed int32 for bad input).
int64_t CountBlocks(int32_t batch, const int32_t* cu_seqlens, int32_t block_size);

// A view of the caller's mask (either form); `layout` supplies Nq and Nk.
MaskView MakeMaskView(const AttentionArgs& args, const BlockLayout& layout);

// The compact form kernels iterate: for each (KV head hk, global query block i), row
// r = hk * Nq + i, the key blocks of the same sequence to visit, ascending, each kFull or
// kPartial (causal cuts it). Blocks that are off, in another sequence, or removed entirely by
// the causal rule are absent, so they are never loaded.
struct VisitList {
  int32_t num_heads_k = 0;        // Hk
  int32_t num_q_blocks = 0;       // Nq
  std::vector<int64_t> offsets;   // [Hk * Nq + 1] row r's entries are [offsets[r], offsets[r+1])
  std::vector<int32_t> k_blocks;  // [n] global key block index
  std::vector<Coverage> coverage; // [n] kFull or kPartial

  int64_t size() const { return static_cast<int64_t>(k_blocks.size()); }
};

// Compiles the visit lists from the mask and the causal rule (BlockPairCoverage per pair).
VisitList CompileVisitList(const BlockLayout& layout, const MaskView& mask, bool causal,
                           int32_t num_heads_k);

// The dense [Hk, Nq, Nk] form of `list` with cross-sequence and causally dead blocks cleared;
// for tests and for converting compact masks for peers that only take dense masks.
std::vector<uint8_t> VisitListToDense(const VisitList& list, int32_t num_k_blocks);

}  // namespace hbsa

#endif  // HBSA_PLAN_H_
