// hbsa/layout.h: the block layout and the mask rule, defined once.
//
// Every backend (reference, CPU, CUDA) and every test decides "which key blocks does a query
// block visit" and "is this (query row, key row) pair allowed" through the functions in this
// header and nowhere else. Everything here is a plain struct of pointers and inline functions
// callable from host and device code (no STL, no exceptions), so CUDA kernels include it as is.
//
// Terms (SEMANTICS.md): sequence b has Lq_b query rows and Lk_b key rows, split into blocks of
// Sq / Sk rows (the last one short); blocks are numbered globally, sequence after sequence.
#ifndef HBSA_LAYOUT_H_
#define HBSA_LAYOUT_H_

#include <cstdint>

#if defined(__CUDACC__)
#define HBSA_HD __host__ __device__ __forceinline__
#else
#define HBSA_HD inline
#endif

namespace hbsa {

HBSA_HD int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
HBSA_HD int64_t MinI64(int64_t a, int64_t b) { return a < b ? a : b; }
HBSA_HD int64_t MaxI64(int64_t a, int64_t b) { return a > b ? a : b; }

// The block geometry of one batch. A view: the arrays are owned by whoever built it
// (BlockLayoutStorage in layout_builder.h on the host, a device buffer in the CUDA backend).
struct BlockLayout {
  int32_t batch = 0;                      // B
  int32_t q_block_size = 1;               // Sq
  int32_t k_block_size = 1;               // Sk
  int32_t num_q_blocks = 0;               // Nq = sum_b ceil(Lq_b / Sq)
  int32_t num_k_blocks = 0;               // Nk = sum_b ceil(Lk_b / Sk)
  const int32_t* cu_seqlens_q = nullptr;  // [B+1] row offsets of the sequences in q
  const int32_t* cu_seqlens_k = nullptr;  // [B+1] row offsets in k / v
  const int32_t* q_block_start = nullptr; // [B+1] first global query block of sequence b
  const int32_t* k_block_start = nullptr; // [B+1] first global key block of sequence b
  const int32_t* q_block_seq = nullptr;   // [Nq] sequence that owns global query block i

  HBSA_HD int64_t QLen(int32_t b) const { return cu_seqlens_q[b + 1] - cu_seqlens_q[b]; }
  HBSA_HD int64_t KLen(int32_t b) const { return cu_seqlens_k[b + 1] - cu_seqlens_k[b]; }
  // Local row range [first, last) of global query block i inside its sequence.
  HBSA_HD int64_t QBlockFirstRow(int32_t i) const {
    return int64_t{i - q_block_start[q_block_seq[i]]} * q_block_size;
  }
  HBSA_HD int64_t QBlockEndRow(int32_t i) const {
    return MinI64(QBlockFirstRow(i) + q_block_size, QLen(q_block_seq[i]));
  }
  // Local key row range of global key block j, which belongs to sequence b.
  HBSA_HD int64_t KBlockFirstRow(int32_t b, int32_t j) const {
    return int64_t{j - k_block_start[b]} * k_block_size;
  }
  HBSA_HD int64_t KBlockEndRow(int32_t b, int32_t j) const {
    return MinI64(KBlockFirstRow(b, j) + k_block_size, KLen(b));
  }
  // Global query / key block of local row i / j of sequence b.
  HBSA_HD int32_t QBlockOf(int32_t b, int64_t i) const {
    return q_block_start[b] + static_cast<int32_t>(i / q_block_size);
  }
  HBSA_HD int32_t KBlockOf(int32_t b, int64_t j) const {
    return k_block_start[b] + static_cast<int32_t>(j / k_block_size);
  }
  HBSA_HD bool KBlockInSeq(int32_t b, int32_t j) const {
    return j >= k_block_start[b] && j < k_block_start[b + 1];
  }
};

// The causal rule (SEMANTICS.md rule 3), bottom-right aligned: local query row i may see local
// key row j when i + (Lk - Lq) >= j.
HBSA_HD bool CausalAllows(int64_t i, int64_t j, int64_t lq, int64_t lk) { return i + (lk - lq) >= j; }

// Number of key rows visible to local query row i under the causal rule alone: keys [0, n).
HBSA_HD int64_t CausalKeyLimit(bool causal, int64_t i, int64_t lq, int64_t lk) {
  if (!causal) return lk;
  return MaxI64(0, MinI64(lk, i + (lk - lq) + 1));
}

// How much of a rectangle of (query row, key row) pairs the causal rule allows.
enum class Coverage : uint8_t {
  kNone = 0,     // no pair allowed: skip without loading
  kFull = 1,     // every pair allowed: no per-element masking
  kPartial = 2,  // some pairs allowed: mask per element with CausalAllows
};

// Causal coverage of local query rows [i0, i1) x local key rows [j0, j1) (both non-empty).
HBSA_HD Coverage CausalCoverage(bool causal, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                int64_t lq, int64_t lk) {
  if (!causal) return Coverage::kFull;
  if (!CausalAllows(i1 - 1, j0, lq, lk)) return Coverage::kNone;  // last row misses first key
  if (CausalAllows(i0, j1 - 1, lq, lk)) return Coverage::kFull;   // first row sees last key
  return Coverage::kPartial;
}

// Read-only view of the block mask in either input form (see MaskFormat in attention.h).
struct MaskView {
  // Dense: bytes [Hk, Nq, Nk]; nullptr when compact.
  const uint8_t* dense = nullptr;
  // Compact: CSR over rows hk * Nq + i; nullptr when dense.
  const int64_t* row_offsets = nullptr;  // [Hk * Nq + 1]
  const int32_t* col_indices = nullptr;  // [nnz], strictly increasing within a row
  int32_t num_q_blocks = 0;              // Nq
  int32_t num_k_blocks = 0;              // Nk

  // Mask bit for KV head hk, global query block i, global key block j.
  HBSA_HD bool Get(int32_t hk, int32_t i, int32_t j) const {
    const int64_t row = int64_t{hk} * num_q_blocks + i;
    if (dense != nullptr) return dense[row * num_k_blocks + j] != 0;
    int64_t lo = row_offsets[row], hi = row_offsets[row + 1];
    while (lo < hi) {  // binary search in the sorted row
      const int64_t mid = lo + (hi - lo) / 2;
      const int32_t c = col_indices[mid];
      if (c == j) return true;
      if (c < j) lo = mid + 1; else hi = mid;
    }
    return false;
  }
};

// THE rule (SEMANTICS.md "Which (query, key) pairs are allowed") for KV head hk and local rows
// i (query) and j (key) of the same sequence b. Rule 1 (same sequence) is implied by the caller
// addressing rows within sequence b.
HBSA_HD bool ElementAllowed(const BlockLayout& layout, const MaskView& mask, bool causal,
                            int32_t hk, int32_t b, int64_t i, int64_t j) {
  if (causal && !CausalAllows(i, j, layout.QLen(b), layout.KLen(b))) return false;
  return mask.Get(hk, layout.QBlockOf(b, i), layout.KBlockOf(b, j));
}

// Coverage of mask block pair (query block i, key block j) for KV head hk, both of sequence b:
// kNone when the bit is off or causal removes every pair, kFull when every element of the two
// blocks (short last blocks as they are) is allowed, kPartial when causal cuts through it.
HBSA_HD Coverage BlockPairCoverage(const BlockLayout& layout, const MaskView& mask, bool causal,
                                   int32_t hk, int32_t b, int32_t i, int32_t j) {
  if (!mask.Get(hk, i, j)) return Coverage::kNone;
  return CausalCoverage(causal, layout.QBlockFirstRow(i), layout.QBlockEndRow(i),
                        layout.KBlockFirstRow(b, j), layout.KBlockEndRow(b, j), layout.QLen(b),
                        layout.KLen(b));
}

// Coverage of an arbitrary rectangle of local rows [i0, i1) x [j0, j1) of sequence b for KV
// head hk: the union over the mask blocks it overlaps. This is how a kernel whose compute tiles
// differ from the mask blocks (a 64x64 tile over 7x33 blocks) classifies a tile.
HBSA_HD Coverage TileCoverage(const BlockLayout& layout, const MaskView& mask, bool causal,
                              int32_t hk, int32_t b, int64_t i0, int64_t i1, int64_t j0,
                              int64_t j1) {
  const int64_t lq = layout.QLen(b), lk = layout.KLen(b);
  const Coverage causal_cov = CausalCoverage(causal, i0, i1, j0, j1, lq, lk);
  if (causal_cov == Coverage::kNone) return Coverage::kNone;
  bool any = false, all = true;
  const int32_t qb0 = layout.QBlockOf(b, i0), qb1 = layout.QBlockOf(b, i1 - 1);
  const int32_t kb0 = layout.KBlockOf(b, j0), kb1 = layout.KBlockOf(b, j1 - 1);
  for (int32_t qb = qb0; qb <= qb1; ++qb) {
    const int64_t ri0 = MaxI64(i0, layout.QBlockFirstRow(qb));
    const int64_t ri1 = MinI64(i1, layout.QBlockEndRow(qb));
    for (int32_t kb = kb0; kb <= kb1; ++kb) {
      const int64_t rj0 = MaxI64(j0, layout.KBlockFirstRow(b, kb));
      const int64_t rj1 = MinI64(j1, layout.KBlockEndRow(b, kb));
      const Coverage c = mask.Get(hk, qb, kb)
                             ? CausalCoverage(causal, ri0, ri1, rj0, rj1, lq, lk)
                             : Coverage::kNone;
      any = any || c != Coverage::kNone;
      all = all && c == Coverage::kFull;
    }
  }
  if (!any) return Coverage::kNone;
  return all ? Coverage::kFull : Coverage::kPartial;
}

}  // namespace hbsa

#endif  // HBSA_LAYOUT_H_
