// server/translate.cc: request checks and conversion to hbsa::AttentionArgs (see the header).
//
// Order: request_id length -> tensors (dtype, shape, bytes) -> limits -> scalars and cu_seqlens through
// hbsa::Validate with an empty stand-in mask -> the mask in its wire form -> hbsa::Validate on
// the final arguments. hbsa::Validate checks scalars and cu_seqlens before the mask (its
// documented order), so the first pass proves the block counts right before the mask is read.
#include "translate.h"

#include <limits>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "heuristics.h"
#include "hbsa/plan.h"
#include "mask_convert.h"
#include "request_id.h"

namespace hbsa::server {
namespace {

absl::Status Invalid(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

// Checks one tensor's rank and dims; returns its element count (no overflow: each dim is
// bounded by `cap` elements, the largest a message can carry).
absl::StatusOr<int64_t> CheckTensorShape(const v1::Tensor& t, absl::string_view name,
                                         absl::string_view dims_doc, int64_t cap) {
  if (t.shape_size() != 3) {
    return Invalid(absl::StrCat(name, ".shape must have 3 dims ", dims_doc, "; got ",
                                t.shape_size(), " dims"));
  }
  int64_t elements = 1;
  for (int i = 0; i < 3; ++i) {
    const int64_t d = t.shape(i);
    if (d < 0) return Invalid(absl::StrCat(name, ".shape[", i, "] must be >= 0; got ", d));
    if (d > cap) {
      return absl::ResourceExhaustedError(absl::StrCat(
          name, ".shape[", i, "] (", d, ") is past the message size limit (", cap, " bytes)"));
    }
    if (d != 0 && elements > cap / d) {
      return absl::ResourceExhaustedError(absl::StrCat(
          name, ".shape ", absl::StrJoin(t.shape(), "x"), " is past the message size limit (",
          cap, " bytes)"));
    }
    elements *= d;
  }
  return elements;
}

absl::Status CheckTensorBytes(const v1::Tensor& t, absl::string_view name, int64_t elements,
                              size_t elem_size) {
  const int64_t want = elements * static_cast<int64_t>(elem_size);
  if (static_cast<int64_t>(t.data().size()) != want) {
    return Invalid(absl::StrCat(name, ".data must hold ", want, " bytes (shape [",
                                absl::StrJoin(t.shape(), ", "), "] of ", v1::DType_Name(t.dtype()),
                                "); got ", t.data().size()));
  }
  return absl::OkStatus();
}

ConstBuffer BytesOf(const std::string& s) { return {s.data(), s.size()}; }

template <typename T>
ConstBuffer BytesOf(const google::protobuf::RepeatedField<T>& f) {
  return {f.data(), static_cast<size_t>(f.size()) * sizeof(T)};
}

absl::Status ValidateNamed(const AttentionArgs& args, absl::string_view mask_form) {
  absl::Status s = Validate(args);
  if (s.ok()) return s;
  return absl::Status(s.code(), ProtoFieldMessage(s.message(), mask_form));
}

}  // namespace

absl::StatusOr<DType> FromProtoDType(v1::DType dtype, absl::string_view field) {
  switch (dtype) {
    case v1::DTYPE_FLOAT16: return DType::kFloat16;
    case v1::DTYPE_BFLOAT16: return DType::kBFloat16;
    case v1::DTYPE_FLOAT32: return DType::kFloat32;
    default: break;
  }
  return Invalid(absl::StrCat(field, " must be DTYPE_FLOAT16, DTYPE_BFLOAT16 or DTYPE_FLOAT32; got ",
                              static_cast<int>(dtype)));
}

v1::DType ToProtoDType(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return v1::DTYPE_FLOAT16;
    case DType::kBFloat16: return v1::DTYPE_BFLOAT16;
    case DType::kFloat32: return v1::DTYPE_FLOAT32;
  }
  return v1::DTYPE_UNSPECIFIED;
}

std::string ProtoFieldMessage(absl::string_view msg, absl::string_view mask_form) {
  static constexpr std::pair<absl::string_view, absl::string_view> kNames[] = {
      {"num_heads_q", "q.shape[1] (num_heads_q)"},
      {"num_heads_k", "k.shape[1] (num_heads_k)"},
      {"head_dim", "q.shape[2] (head_dim)"},
      {"total_q", "q.shape[0] (total_q)"},
      {"total_k", "k.shape[0] (total_k)"},
      {"batch", "cu_seqlens_q (batch)"},
  };
  for (const auto& [lib, proto] : kNames) {
    if (absl::StartsWith(msg, lib) && msg.size() > lib.size() && msg[lib.size()] == ' ') {
      return absl::StrCat(proto, msg.substr(lib.size()));
    }
  }
  if (absl::StartsWith(msg, "block_mask ")) {
    return absl::StrCat(mask_form == "dense" ? "dense_mask" : "block_mask", msg.substr(10));
  }
  return std::string(msg);
}

absl::StatusOr<std::unique_ptr<TranslatedRequest>> Translate(const v1::AttendRequest& req,
                                                             const TranslateLimits& limits) {
  const int64_t cap = limits.max_message_bytes;
  if (absl::Status s = CheckRequestId(req.request_id()); !s.ok()) return s;
  // Tensors: dtype, shape, bytes.
  absl::StatusOr<DType> dtype = FromProtoDType(req.q().dtype(), "q.dtype");
  if (!dtype.ok()) return dtype.status();
  for (const auto& [t, name] : {std::pair{&req.k(), "k"}, std::pair{&req.v(), "v"}}) {
    if (t->dtype() != req.q().dtype()) {
      return Invalid(absl::StrCat(name, ".dtype (", v1::DType_Name(t->dtype()),
                                  ") must equal q.dtype (", v1::DType_Name(req.q().dtype()), ")"));
    }
  }
  absl::StatusOr<int64_t> q_elems = CheckTensorShape(req.q(), "q", "[total_q, Hq, D]", cap);
  if (!q_elems.ok()) return q_elems.status();
  absl::StatusOr<int64_t> k_elems = CheckTensorShape(req.k(), "k", "[total_k, Hk, D]", cap);
  if (!k_elems.ok()) return k_elems.status();
  absl::StatusOr<int64_t> v_elems = CheckTensorShape(req.v(), "v", "[total_k, Hk, D]", cap);
  if (!v_elems.ok()) return v_elems.status();
  for (int i = 0; i < 3; ++i) {
    if (req.v().shape(i) != req.k().shape(i)) {
      return Invalid(absl::StrCat("v.shape [", absl::StrJoin(req.v().shape(), ", "),
                                  "] must equal k.shape [", absl::StrJoin(req.k().shape(), ", "), "]"));
    }
  }
  if (req.k().shape(2) != req.q().shape(2)) {
    return Invalid(absl::StrCat("k.shape[2] (D = ", req.k().shape(2), ") must equal q.shape[2] (",
                                req.q().shape(2), ")"));
  }
  for (int i = 1; i < 3; ++i) {
    for (const v1::Tensor* t : {&req.q(), &req.k()}) {
      if (t->shape(i) > std::numeric_limits<int32_t>::max()) {
        return Invalid(absl::StrCat(t == &req.q() ? "q" : "k", ".shape[", i, "] (", t->shape(i),
                                    ") must fit int32"));
      }
    }
  }
  const size_t es = DTypeSize(*dtype);
  if (auto s = CheckTensorBytes(req.q(), "q", *q_elems, es); !s.ok()) return s;
  if (auto s = CheckTensorBytes(req.k(), "k", *k_elems, es); !s.ok()) return s;
  if (auto s = CheckTensorBytes(req.v(), "v", *v_elems, es); !s.ok()) return s;
  if (req.cu_seqlens_q_size() < 1) {
    return Invalid("cu_seqlens_q must hold B+1 >= 1 entries; got 0");
  }
  if (req.cu_seqlens_k_size() != req.cu_seqlens_q_size()) {
    return Invalid(absl::StrCat("cu_seqlens_k must hold as many entries as cu_seqlens_q (",
                                req.cu_seqlens_q_size(), "); got ", req.cu_seqlens_k_size()));
  }

  auto t = std::make_unique<TranslatedRequest>();
  t->return_lse = req.return_lse();
  t->out_bytes = *q_elems * static_cast<int64_t>(es);
  t->lse_bytes = t->return_lse ? req.q().shape(0) * req.q().shape(1) * 4 : 0;
  // The response echoes request_id; the rest (shapes, timings, backend, framing) fits in the
  // fixed overhead.
  constexpr int64_t kResponseOverhead = 4096;
  const int64_t id_bytes = static_cast<int64_t>(req.request_id().size());
  if (t->out_bytes + t->lse_bytes + id_bytes + kResponseOverhead > cap) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "q.shape: the response (out ", t->out_bytes, " + lse ", t->lse_bytes, " + request_id ",
        id_bytes, " + ", kResponseOverhead, " bytes) would be past the message size limit (", cap,
        " bytes)"));
  }

  AttentionArgs& a = t->args;
  a.dtype = *dtype;
  a.total_q = req.q().shape(0);
  a.total_k = req.k().shape(0);
  a.num_heads_q = static_cast<int32_t>(req.q().shape(1));
  a.num_heads_k = static_cast<int32_t>(req.k().shape(1));
  a.head_dim = static_cast<int32_t>(req.q().shape(2));
  a.batch = req.cu_seqlens_q_size() - 1;
  a.cu_seqlens_q = BytesOf(req.cu_seqlens_q());
  a.cu_seqlens_k = BytesOf(req.cu_seqlens_k());
  a.q_block_size = req.q_block_size();
  a.k_block_size = req.k_block_size();
  a.causal = req.causal();
  if (req.has_softmax_scale()) a.softmax_scale = req.softmax_scale();
  a.allow_tf32 = req.allow_tf32();
  a.q = BytesOf(req.q().data());
  a.k = BytesOf(req.k().data());
  a.v = BytesOf(req.v().data());
  // Stand-in for out during validation: same shape and dtype as q; never written.
  a.out = {const_cast<char*>(req.q().data().data()), req.q().data().size()};

  // Pass 1: everything but the mask, with an empty compact mask of the right size when the
  // block counts can be computed safely (Validate rejects bad cu_seqlens before the mask).
  {
    AttentionArgs probe = a;
    std::vector<int64_t> empty_rows;
    probe.mask_format = MaskFormat::kCompact;
    if (a.q_block_size >= 1 && a.k_block_size >= 1) {
      const int64_t nq = CountBlocks(a.batch, req.cu_seqlens_q().data(), a.q_block_size);
      const int64_t rows = nq * a.num_heads_k;
      if (nq >= 0 && nq <= a.total_q && rows >= 0 && rows <= a.total_q * a.num_heads_q) {
        empty_rows.assign(static_cast<size_t>(rows + 1), 0);
        probe.compact_mask.row_offsets = {empty_rows.data(), empty_rows.size() * sizeof(int64_t)};
      }
    }
    if (absl::Status s = ValidateNamed(probe, "compact"); !s.ok()) {
      if (!absl::StartsWith(s.message(), "compact_mask")) return s;
      // The stand-in mask was refused: only possible when the block counts could not be
      // computed, which means a rule before the mask failed; Validate reports it first.
      return absl::InternalError(absl::StrCat("validation stand-in mask refused: ", s.message()));
    }
  }

  // The mask, now that Nq and Nk are known to be right.
  BlockLayoutStorage layout(a);
  const int64_t nq = layout.view().num_q_blocks, nk = layout.view().num_k_blocks;
  int64_t mask_bytes = 0;
  switch (req.block_mask_case()) {
    case v1::AttendRequest::kDenseMask: {
      t->mask_form = "dense";
      const v1::DenseBlockMask& m = req.dense_mask();
      if (m.shape_size() != 3 || m.shape(0) != a.num_heads_k || m.shape(1) != nq || m.shape(2) != nk) {
        return Invalid(absl::StrCat("dense_mask.shape must be [Hk, Nq, Nk] = [", a.num_heads_k, ", ",
                                    nq, ", ", nk, "]; got [", absl::StrJoin(m.shape(), ", "), "]"));
      }
      const int64_t entries = int64_t{a.num_heads_k} * nq * nk;
      if (entries > kMaxDenseMaskEntries) {
        return Invalid(absl::StrCat("dense_mask has ", entries, " entries, past the dense limit of ",
                                    kMaxDenseMaskEntries, "; send compact_mask or per_sequence_mask"));
      }
      if (auto s = CheckPackedBits(m.bits(), entries, "dense_mask.bits"); !s.ok()) return s;
      if (DenseMaskToCompact(entries)) {
        CompactMask c = DenseBitsToCompact(m.bits(), layout.view(), a.num_heads_k);
        t->row_offsets = std::move(c.row_offsets);
        t->col_indices = std::move(c.col_indices);
        a.mask_format = MaskFormat::kCompact;  // travels on as CSR (pointers set below)
      } else {
        t->dense_mask = UnpackBits(m.bits(), entries);
        a.mask_format = MaskFormat::kDense;
        a.dense_mask.shape[0] = a.num_heads_k;
        a.dense_mask.shape[1] = nq;
        a.dense_mask.shape[2] = nk;
        a.dense_mask.data = {t->dense_mask.data(), t->dense_mask.size()};
        mask_bytes = entries;
      }
      break;
    }
    case v1::AttendRequest::kPerSequenceMask: {
      t->mask_form = "per_sequence";
      a.mask_format = MaskFormat::kCompact;  // travels on as CSR (pointers set below)
      std::vector<absl::string_view> seqs(req.per_sequence_mask().sequences().begin(),
                                         req.per_sequence_mask().sequences().end());
      absl::StatusOr<CompactMask> c = PerSequenceToCompact(seqs, layout.view(), a.num_heads_k);
      if (!c.ok()) return c.status();
      t->row_offsets = std::move(c->row_offsets);
      t->col_indices = std::move(c->col_indices);
      break;
    }
    case v1::AttendRequest::kCompactMask:
      t->mask_form = "compact";
      a.mask_format = MaskFormat::kCompact;
      a.compact_mask.row_offsets = BytesOf(req.compact_mask().row_offsets());
      a.compact_mask.col_indices = BytesOf(req.compact_mask().col_indices());
      mask_bytes = static_cast<int64_t>(a.compact_mask.row_offsets.bytes + a.compact_mask.col_indices.bytes);
      break;
    default:
      return Invalid("block_mask must be set: one of dense_mask, per_sequence_mask or compact_mask");
  }
  if (a.mask_format != MaskFormat::kDense && t->mask_form != "compact") {
    a.mask_format = MaskFormat::kCompact;
    a.compact_mask.row_offsets = {t->row_offsets.data(), t->row_offsets.size() * sizeof(int64_t)};
    a.compact_mask.col_indices = {t->col_indices.data(), t->col_indices.size() * sizeof(int32_t)};
    mask_bytes = static_cast<int64_t>(a.compact_mask.row_offsets.bytes + a.compact_mask.col_indices.bytes);
  }

  // Pass 2: the whole request, mask included.
  if (absl::Status s = ValidateNamed(a, t->mask_form); !s.ok()) return s;
  a.out = {};

  t->working_bytes = static_cast<int64_t>(a.q.bytes + a.k.bytes + a.v.bytes) + t->out_bytes +
                     t->lse_bytes + mask_bytes +
                     2 * static_cast<int64_t>(a.cu_seqlens_q.bytes);
  if (limits.memory_budget_bytes > 0 && t->working_bytes > limits.memory_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "q/k/v: the request needs ", t->working_bytes, " bytes of working memory, past the memory "
        "budget (", limits.memory_budget_bytes, " bytes, --memory-budget-bytes)"));
  }
  return t;
}

}  // namespace hbsa::server
