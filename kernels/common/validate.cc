// validate.cc: hbsa::Validate, the single place where inputs are checked against SEMANTICS.md.
//
// Each rule returns INVALID_ARGUMENT with a message that starts with the field name and states
// the rule broken, so the service can pass it to clients verbatim. Order: scalars first, then
// cu_seqlens (everything else derives from them), then the mask, then buffer sizes.
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "hbsa/attention.h"
#include "hbsa/plan.h"

namespace hbsa {
namespace {

absl::Status Invalid(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

// Checks an offsets array: 0-based, non-decreasing, last entry = total.
absl::Status CheckCuSeqlens(const char* field, const ConstBuffer& buf, int32_t batch,
                            int64_t total, const char* total_name) {
  const size_t want = (static_cast<size_t>(batch) + 1) * sizeof(int32_t);
  if (buf.data == nullptr) return Invalid(absl::StrCat(field, " is missing"));
  if (buf.bytes != want) {
    return Invalid(absl::StrCat(field, " must hold batch+1 = ", batch + 1, " int32 entries (",
                                want, " bytes); got ", buf.bytes, " bytes"));
  }
  const auto* cu = static_cast<const int32_t*>(buf.data);
  if (cu[0] != 0) return Invalid(absl::StrCat(field, " must start at 0; entry 0 is ", cu[0]));
  for (int32_t b = 1; b <= batch; ++b) {
    if (cu[b] < cu[b - 1]) {
      return Invalid(absl::StrCat(field, " must be non-decreasing; entry ", b, " (", cu[b],
                                  ") < entry ", b - 1, " (", cu[b - 1], ")"));
    }
  }
  if (cu[batch] != total) {
    return Invalid(absl::StrCat(field, " last entry (", cu[batch], ") must equal ", total_name,
                                " (", total, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckBuffer(const char* field, const void* data, size_t bytes, int64_t elements,
                         size_t elem_size, const std::string& shape) {
  const size_t want = static_cast<size_t>(elements) * elem_size;
  if (data == nullptr && want > 0) return Invalid(absl::StrCat(field, " is missing"));
  if (bytes != want) {
    return Invalid(absl::StrCat(field, " must hold ", shape, " = ", elements, " elements of ",
                                elem_size, " bytes (", want, " bytes); got ", bytes, " bytes"));
  }
  if (reinterpret_cast<uintptr_t>(data) % elem_size != 0) {
    return Invalid(absl::StrCat(field, " must start at an address that is a multiple of its ",
                                elem_size, "-byte element size"));
  }
  return absl::OkStatus();
}

absl::Status CheckCompactMask(const AttentionArgs& args, int64_t nq, int64_t nk) {
  const CompactMaskArgs& m = args.compact_mask;
  const int64_t rows = int64_t{args.num_heads_k} * nq;
  if (m.row_offsets.data == nullptr) return Invalid("compact_mask.row_offsets is missing");
  if (m.row_offsets.bytes != static_cast<size_t>(rows + 1) * sizeof(int64_t)) {
    return Invalid(absl::StrCat("compact_mask.row_offsets must hold Hk*Nq+1 = ", rows + 1,
                                " int64 entries; got ", m.row_offsets.bytes, " bytes"));
  }
  if (m.col_indices.bytes % sizeof(int32_t) != 0) {
    return Invalid(absl::StrCat("compact_mask.col_indices must be int32 entries; got ",
                                m.col_indices.bytes, " bytes"));
  }
  const int64_t nnz = static_cast<int64_t>(m.col_indices.bytes / sizeof(int32_t));
  if (nnz > 0 && m.col_indices.data == nullptr) {
    return Invalid("compact_mask.col_indices is missing");
  }
  const auto* off = static_cast<const int64_t*>(m.row_offsets.data);
  const auto* col = static_cast<const int32_t*>(m.col_indices.data);
  if (off[0] != 0) return Invalid(absl::StrCat("compact_mask.row_offsets must start at 0; got ", off[0]));
  for (int64_t r = 0; r < rows; ++r) {
    if (off[r + 1] < off[r]) {
      return Invalid(absl::StrCat("compact_mask.row_offsets must be non-decreasing; entry ",
                                  r + 1, " (", off[r + 1], ") < entry ", r, " (", off[r], ")"));
    }
    // Every entry, not only the last, must stay within col_indices: a middle entry past nnz
    // followed by a smaller last entry would otherwise send the mask reader past the array.
    if (off[r + 1] > nnz) {
      return Invalid(absl::StrCat("compact_mask.row_offsets entry ", r + 1, " (", off[r + 1],
                                  ") must be <= the number of col_indices (", nnz, ")"));
    }
    for (int64_t e = off[r]; e < off[r + 1]; ++e) {
      if (col[e] < 0 || col[e] >= nk) {
        return Invalid(absl::StrCat("compact_mask.col_indices entry ", e, " (", col[e],
                                    ") must be a key block in [0, Nk = ", nk, ")"));
      }
      if (e > off[r] && col[e] <= col[e - 1]) {
        return Invalid(absl::StrCat("compact_mask.col_indices must be strictly increasing within "
                                    "a row; entry ", e, " (", col[e], ") <= entry ", e - 1, " (",
                                    col[e - 1], ") in row ", r));
      }
    }
  }
  if (off[rows] != nnz) {
    return Invalid(absl::StrCat("compact_mask.row_offsets last entry (", off[rows],
                                ") must equal the number of col_indices (", nnz, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateLayout(const AttentionArgs& a) {
  if (a.dtype != DType::kFloat16 && a.dtype != DType::kBFloat16 && a.dtype != DType::kFloat32) {
    return Invalid(absl::StrCat("dtype must be fp16, bf16 or fp32; got code ", static_cast<int>(a.dtype)));
  }
  if (a.num_heads_k < 1 || a.num_heads_k > kMaxHeads) {
    return Invalid(absl::StrCat("num_heads_k must be in [1, ", kMaxHeads, "]; got ", a.num_heads_k));
  }
  if (a.num_heads_q < 1 || a.num_heads_q > kMaxHeads) {
    return Invalid(absl::StrCat("num_heads_q must be in [1, ", kMaxHeads, "]; got ", a.num_heads_q));
  }
  if (a.num_heads_q % a.num_heads_k != 0) {
    return Invalid(absl::StrCat("num_heads_q (", a.num_heads_q, ") must be a multiple of num_heads_k (",
                                a.num_heads_k, ")"));
  }
  if (a.head_dim < 1 || a.head_dim > kMaxHeadDim) {
    return Invalid(absl::StrCat("head_dim must be in [1, ", kMaxHeadDim, "]; got ", a.head_dim));
  }
  if (a.q_block_size < 1 || a.q_block_size > kMaxBlockSize) {
    return Invalid(absl::StrCat("q_block_size must be in [1, ", kMaxBlockSize, "]; got ", a.q_block_size));
  }
  if (a.k_block_size < 1 || a.k_block_size > kMaxBlockSize) {
    return Invalid(absl::StrCat("k_block_size must be in [1, ", kMaxBlockSize, "]; got ", a.k_block_size));
  }
  if (a.softmax_scale.has_value() && !std::isfinite(*a.softmax_scale)) {
    return Invalid(absl::StrCat("softmax_scale must be finite when given; got ", *a.softmax_scale));
  }
  if (a.batch < 0) return Invalid(absl::StrCat("batch must be >= 0; got ", a.batch));
  if (a.total_q < 0 || a.total_q > INT32_MAX) {
    return Invalid(absl::StrCat("total_q must be in [0, 2^31-1] (cu_seqlens are int32); got ", a.total_q));
  }
  if (a.total_k < 0 || a.total_k > INT32_MAX) {
    return Invalid(absl::StrCat("total_k must be in [0, 2^31-1] (cu_seqlens are int32); got ", a.total_k));
  }
  if (auto s = CheckCuSeqlens("cu_seqlens_q", a.cu_seqlens_q, a.batch, a.total_q, "total_q"); !s.ok()) return s;
  if (auto s = CheckCuSeqlens("cu_seqlens_k", a.cu_seqlens_k, a.batch, a.total_k, "total_k"); !s.ok()) return s;
  return absl::OkStatus();
}

absl::Status ValidateAfterLayout(const AttentionArgs& a) {
  const auto* cu_q = static_cast<const int32_t*>(a.cu_seqlens_q.data);
  const auto* cu_k = static_cast<const int32_t*>(a.cu_seqlens_k.data);
  const int64_t nq = CountBlocks(a.batch, cu_q, a.q_block_size);
  const int64_t nk = CountBlocks(a.batch, cu_k, a.k_block_size);
  // nq <= total_q < 2^31, so block indices fit int32.

  if (a.mask_format == MaskFormat::kDense) {
    const int64_t* s = a.dense_mask.shape;
    if (s[0] != a.num_heads_k || s[1] != nq || s[2] != nk) {
      return Invalid(absl::StrCat("block_mask shape must be [Hk, Nq, Nk] = [", a.num_heads_k, ", ",
                                  nq, ", ", nk, "]; got [", s[0], ", ", s[1], ", ", s[2], "]"));
    }
    const int64_t entries = int64_t{a.num_heads_k} * nq * nk;
    if (entries > kMaxDenseMaskEntries) {
      return Invalid(absl::StrCat("block_mask has ", entries, " entries, past the dense limit of ",
                                  kMaxDenseMaskEntries, "; send the compact form"));
    }
    if (auto st = CheckBuffer("block_mask", a.dense_mask.data.data, a.dense_mask.data.bytes,
                              entries, 1, "[Hk, Nq, Nk]");
        !st.ok()) {
      return st;
    }
  } else if (a.mask_format == MaskFormat::kCompact) {
    if (auto s = CheckCompactMask(a, nq, nk); !s.ok()) return s;
  } else {
    return Invalid(absl::StrCat("mask_format must be dense or compact; got code ",
                                static_cast<int>(a.mask_format)));
  }

  const size_t es = DTypeSize(a.dtype);
  const int64_t q_elems = a.total_q * a.num_heads_q * a.head_dim;
  const int64_t kv_elems = a.total_k * a.num_heads_k * a.head_dim;
  if (auto s = CheckBuffer("q", a.q.data, a.q.bytes, q_elems, es, "[total_q, Hq, D]"); !s.ok()) return s;
  if (auto s = CheckBuffer("k", a.k.data, a.k.bytes, kv_elems, es, "[total_k, Hk, D]"); !s.ok()) return s;
  if (auto s = CheckBuffer("v", a.v.data, a.v.bytes, kv_elems, es, "[total_k, Hk, D]"); !s.ok()) return s;
  if (auto s = CheckBuffer("out", a.out.data, a.out.bytes, q_elems, es, "[total_q, Hq, D]"); !s.ok()) return s;
  if (a.lse.data != nullptr || a.lse.bytes != 0) {
    if (auto s = CheckBuffer("lse", a.lse.data, a.lse.bytes, a.total_q * a.num_heads_q,
                             sizeof(float), "[total_q, Hq] fp32");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const AttentionArgs& a) {
  if (absl::Status s = ValidateLayout(a); !s.ok()) return s;
  return ValidateAfterLayout(a);
}

}  // namespace hbsa
