// server/translate.cc: request checks and conversion to hbsa::AttentionArgs (see the header).
//
// Order: request_id length -> tensors (dtype, shape, bytes or shared-memory range) -> limits ->
// scalars and cu_seqlens (hbsa::ValidateLayout) -> the mask in its wire form (hbsa.v1's three,
// or the v2 front end's BOOL / bit-packed UINT8 tensor) -> mask and sizes
// (hbsa::ValidateAfterLayout) -> output targets -> facts (AllowedPairs). Each rule runs once.
#include "translate.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/string_view.h"

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
absl::StatusOr<int64_t> CheckTensorShape(const WireTensor& t, absl::string_view name,
                                         absl::string_view dims_doc, int64_t cap) {
  if (t.shape.size() != 3) {
    return Invalid(absl::StrCat(name, ".shape must have 3 dims ", dims_doc, "; got ",
                                t.shape.size(), " dims"));
  }
  int64_t elements = 1;
  for (int i = 0; i < 3; ++i) {
    const int64_t d = t.shape[i];
    if (d < 0) return Invalid(absl::StrCat(name, ".shape[", i, "] must be >= 0; got ", d));
    if (d > cap) {
      return absl::ResourceExhaustedError(absl::StrCat(
          name, ".shape[", i, "] (", d, ") is past the message size limit (", cap, " bytes)"));
    }
    if (d != 0 && elements > cap / d) {
      return absl::ResourceExhaustedError(absl::StrCat(
          name, ".shape ", absl::StrJoin(t.shape, "x"), " is past the message size limit (",
          cap, " bytes)"));
    }
    elements *= d;
  }
  return elements;
}

std::string DTypeText(int dtype) {
  return v1::DType_IsValid(dtype) ? v1::DType_Name(static_cast<v1::DType>(dtype)) : absl::StrCat(dtype);
}

// Checks the bytes of one input tensor (wire data or a shared-memory range) and records where
// they lie.
absl::Status CheckTensorBytes(const WireTensor& t, absl::string_view name, int64_t elements,
                              size_t elem_size, const ShmRegistry* shm, TranslatedRequest* out,
                              InputBytes* bytes) {
  const int64_t want = elements * static_cast<int64_t>(elem_size);
  if (t.has_shm) {
    if (t.data.bytes != 0) {
      return Invalid(absl::StrCat(name, ".data must be empty when ", name, ".shm is set; got ",
                                  t.data.bytes, " bytes"));
    }
    if (shm == nullptr) {
      return absl::UnimplementedError(absl::StrCat(name, ".shm: shared memory is not available here"));
    }
    absl::StatusOr<ShmSpan> span = shm->Resolve(t.shm, want, absl::StrCat(name, ".shm"));
    if (!span.ok()) return span.status();
    bytes->shm = span->data;
    bytes->shm_pinned = span->mapping->pinned;
    bytes->bytes = span->bytes;
    out->shm.push_back(std::move(*span));
    return absl::OkStatus();
  }
  if (static_cast<int64_t>(t.data.bytes) != want) {
    return Invalid(absl::StrCat(name, ".data must hold ", want, " bytes (shape [",
                                absl::StrJoin(t.shape, ", "), "] of ", DTypeText(t.dtype),
                                "); got ", t.data.bytes));
  }
  bytes->wire = t.data;
  bytes->bytes = t.data.bytes;
  return absl::OkStatus();
}

// Resolves an output's shared-memory target; it may overlap no other range of the request.
absl::Status ResolveOutput(const v1::SharedMemoryRef& ref, int64_t want, size_t elem_size,
                           absl::string_view field, const ShmRegistry* shm, TranslatedRequest* out,
                           OutputTarget* target) {
  if (shm == nullptr) {
    return absl::UnimplementedError(absl::StrCat(field, ": shared memory is not available here"));
  }
  absl::StatusOr<ShmSpan> span = shm->Resolve(ref, want, std::string(field));
  if (!span.ok()) return span.status();
  for (const ShmSpan& other : out->shm) {
    if (other.mapping != span->mapping) continue;
    const int64_t a0 = span->region_offset, a1 = a0 + static_cast<int64_t>(span->bytes);
    const int64_t b0 = other.region_offset, b1 = b0 + static_cast<int64_t>(other.bytes);
    if (a0 < b1 && b0 < a1) {
      return Invalid(absl::StrCat(field, " [", a0, ", ", a1, ") overlaps another shared-memory range [",
                                  b0, ", ", b1, ") of region \"", span->region, "\" in this request"));
    }
  }
  if (reinterpret_cast<uintptr_t>(span->data) % elem_size != 0) {
    return Invalid(absl::StrCat(field, ": the range must start at a multiple of the ", elem_size,
                                "-byte element size (registration offset + offset); it starts at byte ",
                                span->region_offset, " of the registered range"));
  }
  target->shm = span->data;
  target->shm_pinned = span->mapping->pinned;
  out->shm.push_back(std::move(*span));
  return absl::OkStatus();
}

template <typename T>
ConstBuffer BytesOf(const google::protobuf::RepeatedField<T>& f) {
  return {f.data(), static_cast<size_t>(f.size()) * sizeof(T)};
}

absl::Status Named(absl::Status s, absl::string_view mask_form) {
  if (s.ok()) return s;
  return absl::Status(s.code(), ProtoFieldMessage(s.message(), mask_form));
}

// A non-null, aligned stand-in for input bytes that cannot be used in place: Validate checks
// pointers and sizes, never contents, and the executor replaces it with the staged copy.
alignas(16) const char kNotContiguous[16] = {0};

// The input's bytes when the backends can read them where they are: contiguous, and starting
// at a multiple of the element size (a tensor inside a received message starts wherever its
// field does). Null otherwise: the executor stages a copy.
const char* InPlace(const InputBytes& b, size_t elem_size) {
  const char* c = b.Contiguous();
  return c != nullptr && reinterpret_cast<uintptr_t>(c) % elem_size == 0 ? c : nullptr;
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

absl::StatusOr<std::unique_ptr<TranslatedRequest>> Translate(
    std::shared_ptr<const ParsedRequest> parsed, const TranslateLimits& limits,
    const ShmRegistry* shm) {
  const ParsedRequest& p = *parsed;
  const v1::AttendRequest& req = p.meta;
  const int64_t cap = limits.max_message_bytes;
  if (absl::Status s = CheckRequestId(req.request_id()); !s.ok()) return s;
  // Tensors: dtype, shape, bytes.
  absl::StatusOr<DType> dtype = FromProtoDType(static_cast<v1::DType>(p.q.dtype), "q.dtype");
  if (!dtype.ok()) return dtype.status();
  for (const auto& [t, name] : {std::pair{&p.k, "k"}, std::pair{&p.v, "v"}}) {
    if (t->dtype != p.q.dtype) {
      return Invalid(absl::StrCat(name, ".dtype (", DTypeText(t->dtype), ") must equal q.dtype (",
                                  DTypeText(p.q.dtype), ")"));
    }
  }
  absl::StatusOr<int64_t> q_elems = CheckTensorShape(p.q, "q", "[total_q, Hq, D]", cap);
  if (!q_elems.ok()) return q_elems.status();
  absl::StatusOr<int64_t> k_elems = CheckTensorShape(p.k, "k", "[total_k, Hk, D]", cap);
  if (!k_elems.ok()) return k_elems.status();
  absl::StatusOr<int64_t> v_elems = CheckTensorShape(p.v, "v", "[total_k, Hk, D]", cap);
  if (!v_elems.ok()) return v_elems.status();
  if (p.v.shape != p.k.shape) {
    return Invalid(absl::StrCat("v.shape [", absl::StrJoin(p.v.shape, ", "), "] must equal k.shape [",
                                absl::StrJoin(p.k.shape, ", "), "]"));
  }
  if (p.k.shape[2] != p.q.shape[2]) {
    return Invalid(absl::StrCat("k.shape[2] (D = ", p.k.shape[2], ") must equal q.shape[2] (",
                                p.q.shape[2], ")"));
  }
  for (int i = 1; i < 3; ++i) {
    for (const WireTensor* t : {&p.q, &p.k}) {
      if (t->shape[i] > std::numeric_limits<int32_t>::max()) {
        return Invalid(absl::StrCat(t == &p.q ? "q" : "k", ".shape[", i, "] (", t->shape[i],
                                    ") must fit int32"));
      }
    }
  }
  auto t = std::make_unique<TranslatedRequest>();
  const size_t es = DTypeSize(*dtype);
  if (auto s = CheckTensorBytes(p.q, "q", *q_elems, es, shm, t.get(), &t->q); !s.ok()) return s;
  if (auto s = CheckTensorBytes(p.k, "k", *k_elems, es, shm, t.get(), &t->k); !s.ok()) return s;
  if (auto s = CheckTensorBytes(p.v, "v", *v_elems, es, shm, t.get(), &t->v); !s.ok()) return s;
  if (req.cu_seqlens_q_size() < 1) {
    return Invalid("cu_seqlens_q must hold B+1 >= 1 entries; got 0");
  }
  if (req.cu_seqlens_k_size() != req.cu_seqlens_q_size()) {
    return Invalid(absl::StrCat("cu_seqlens_k must hold as many entries as cu_seqlens_q (",
                                req.cu_seqlens_q_size(), "); got ", req.cu_seqlens_k_size()));
  }

  t->request_id = req.request_id();
  t->wire_dtype = p.q.dtype;
  t->return_lse = req.return_lse();
  t->out_bytes = *q_elems * static_cast<int64_t>(es);
  t->lse_bytes = t->return_lse ? p.q.shape[0] * p.q.shape[1] * 4 : 0;
  // The response echoes request_id; the rest (shapes, timings, backend, framing) fits in the
  // fixed overhead. Outputs that go to shared memory do not travel.
  constexpr int64_t kResponseOverhead = 4096;
  const int64_t id_bytes = static_cast<int64_t>(req.request_id().size());
  const int64_t response_bytes = (req.has_out_shm() ? 0 : t->out_bytes) +
                                 (req.has_lse_shm() ? 0 : t->lse_bytes);
  if (response_bytes + id_bytes + kResponseOverhead > cap) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "q.shape: the response (out ", t->out_bytes, " + lse ", t->lse_bytes, " + request_id ",
        id_bytes, " + ", kResponseOverhead, " bytes) would be past the message size limit (", cap,
        " bytes)"));
  }

  AttentionArgs& a = t->args;
  a.dtype = *dtype;
  a.total_q = p.q.shape[0];
  a.total_k = p.k.shape[0];
  a.num_heads_q = static_cast<int32_t>(p.q.shape[1]);
  a.num_heads_k = static_cast<int32_t>(p.k.shape[1]);
  a.head_dim = static_cast<int32_t>(p.q.shape[2]);
  a.batch = req.cu_seqlens_q_size() - 1;
  a.cu_seqlens_q = BytesOf(req.cu_seqlens_q());
  a.cu_seqlens_k = BytesOf(req.cu_seqlens_k());
  a.q_block_size = req.q_block_size();
  a.k_block_size = req.k_block_size();
  a.causal = req.causal();
  if (req.has_softmax_scale()) a.softmax_scale = req.softmax_scale();
  a.allow_tf32 = req.allow_tf32();
  auto view = [es](const InputBytes& b) -> ConstBuffer {
    const char* c = InPlace(b, es);
    return {c != nullptr ? c : kNotContiguous, b.bytes};
  };
  a.q = view(t->q);
  a.k = view(t->k);
  a.v = view(t->v);
  // Stand-in for out during validation: same shape and dtype as q; never written.
  a.out = {const_cast<void*>(a.q.data), a.q.bytes};

  // Layout: everything before the mask (scalars, totals, cu_seqlens), so Nq and Nk are right.
  if (absl::Status s = Named(ValidateLayout(a), "compact"); !s.ok()) return s;

  // The mask, now that Nq and Nk are known to be right.
  BlockLayoutStorage layout(a);
  const int64_t nq = layout.view().num_q_blocks, nk = layout.view().num_k_blocks;
  // The mask's header checks (no allocation), then the cost, then the conversion.
  const int64_t rows = int64_t{a.num_heads_k} * nq;
  int64_t mask_bytes = 0;  // the mask as the library reads it: dense bytes or CSR
  int64_t mask_nnz = 0;    // upper bound of its entries (visit-list size)
  int64_t converted_bytes = 0;  // of it, what conversion allocates (0: read in place)
  auto dense_limit = [&](absl::string_view field) -> absl::Status {
    if (rows * nk > kMaxDenseMaskEntries) {
      return Invalid(absl::StrCat(field, " has ", rows * nk, " entries, past the dense limit of ",
                                  kMaxDenseMaskEntries, "; send compact_mask or per_sequence_mask"));
    }
    return absl::OkStatus();
  };
  // The v2 front end's tensor forms (wire_request.h), checked here and turned into dense bits
  // [Hk, Nq, Nk] (at most an eighth of the tensor's received bytes).
  const bool tensor_mask = p.tensor_mask.kind != TensorMask::Kind::kNone;
  std::string tensor_bits;
  if (tensor_mask) {
    t->mask_form = "block_mask";
    if (req.block_mask_case() != v1::AttendRequest::BLOCK_MASK_NOT_SET) {
      return Invalid("block_mask is given twice: as a tensor and in the message");
    }
    const TensorMask& m = p.tensor_mask;
    const bool row_bits = m.kind == TensorMask::Kind::kRowBits;
    const int64_t last = row_bits ? (nk + 7) / 8 : nk;
    if (m.shape.size() != 3 || m.shape[0] != a.num_heads_k || m.shape[1] != nq || m.shape[2] != last) {
      return Invalid(absl::StrCat("block_mask.shape must be ",
                                  row_bits ? "[Hk, Nq, ceil(Nk / 8)] = [" : "[Hk, Nq, Nk] = [",
                                  a.num_heads_k, ", ", nq, ", ", last, "] for a ",
                                  row_bits ? "UINT8 bit-packed" : "BOOL", " mask; got [",
                                  absl::StrJoin(m.shape, ", "), "]"));
    }
    if (auto s = dense_limit("block_mask"); !s.ok()) return s;
    if (static_cast<int64_t>(m.data.size()) != rows * last) {
      return Invalid(absl::StrCat("block_mask must hold ", rows * last, " bytes (shape [",
                                  absl::StrJoin(m.shape, ", "), "]); got ", m.data.size()));
    }
    tensor_bits.assign(static_cast<size_t>((rows * nk + 7) / 8), '\0');
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < last * (row_bits ? 8 : 1); ++j) {
        bool on;
        if (row_bits) {
          on = PackedBit(m.data, r * last * 8 + j);
        } else {
          const uint8_t b = static_cast<uint8_t>(m.data[static_cast<size_t>(r * nk + j)]);
          if (b > 1) {
            return Invalid(absl::StrCat("block_mask entry ", r * nk + j, " must be 0 or 1 (BOOL); got ", b));
          }
          on = b != 0;
        }
        if (!on) continue;
        if (j >= nk) {
          return Invalid(absl::StrCat("block_mask row ", r, ": pad bit ", j, " past Nk = ", nk,
                                      " must be 0"));
        }
        const int64_t n = r * nk + j;
        tensor_bits[static_cast<size_t>(n >> 3)] |= static_cast<char>(1 << (n & 7));
      }
    }
    mask_nnz = CountSetBits(tensor_bits);
    mask_bytes = DenseMaskToCompact(rows * nk) ? (rows + 1) * 8 + mask_nnz * 4 : rows * nk;
    converted_bytes = mask_bytes + static_cast<int64_t>(tensor_bits.size());
  } else switch (req.block_mask_case()) {
    case v1::AttendRequest::kDenseMask: {
      t->mask_form = "dense";
      const v1::DenseBlockMask& m = req.dense_mask();
      if (m.shape_size() != 3 || m.shape(0) != a.num_heads_k || m.shape(1) != nq || m.shape(2) != nk) {
        return Invalid(absl::StrCat("dense_mask.shape must be [Hk, Nq, Nk] = [", a.num_heads_k, ", ",
                                    nq, ", ", nk, "]; got [", absl::StrJoin(m.shape(), ", "), "]"));
      }
      const int64_t entries = rows * nk;
      if (auto s = dense_limit("dense_mask"); !s.ok()) return s;
      if (auto s = CheckPackedBits(m.bits(), entries, "dense_mask.bits"); !s.ok()) return s;
      mask_nnz = CountSetBits(m.bits());
      mask_bytes = DenseMaskToCompact(entries) ? (rows + 1) * 8 + mask_nnz * 4 : entries;
      converted_bytes = mask_bytes;
      break;
    }
    case v1::AttendRequest::kPerSequenceMask:
      t->mask_form = "per_sequence";
      for (const std::string& bits : req.per_sequence_mask().sequences()) mask_nnz += CountSetBits(bits);
      mask_bytes = (rows + 1) * 8 + mask_nnz * 4;
      converted_bytes = mask_bytes;
      break;
    case v1::AttendRequest::kCompactMask:
      t->mask_form = "compact";
      mask_nnz = req.compact_mask().col_indices_size();
      mask_bytes = static_cast<int64_t>(BytesOf(req.compact_mask().row_offsets()).bytes +
                                        BytesOf(req.compact_mask().col_indices()).bytes);
      break;
    default:
      return Invalid("block_mask must be set: one of dense_mask, per_sequence_mask or compact_mask");
  }

  // The cost, from the header fields alone, against the per-request budget, then reserved from
  // the admission budget shared by every admitted request.
  RequestCost& cost = t->cost;
  cost.message_bytes = p.wire_bytes;
  cost.mask_bytes = converted_bytes;
  // Visit lists: offsets per row, and a key block and a coverage byte per entry, with room for
  // the vectors' growth (x2).
  cost.plan_bytes = (rows + 1) * 8 + mask_nnz * 2 * 5;
  cost.staging_bytes = static_cast<int64_t>(t->q.bytes + t->k.bytes + t->v.bytes);
  cost.output_bytes = response_bytes;
  cost.working_bytes = static_cast<int64_t>(t->q.bytes + t->k.bytes + t->v.bytes) + t->out_bytes +
                       t->lse_bytes + mask_bytes + 2 * static_cast<int64_t>(a.cu_seqlens_q.bytes);
  t->working_bytes = cost.working_bytes;
  if (limits.memory_budget_bytes > 0 && cost.working_bytes > limits.memory_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "q/k/v: the request needs ", cost.working_bytes, " bytes of working memory, past the memory "
        "budget (", limits.memory_budget_bytes, " bytes, --memory-budget-bytes)"));
  }
  if (limits.admission != nullptr) {
    absl::StatusOr<Reservation> r =
        limits.admission->Reserve(cost.host_bytes(), absl::StrCat("q/k/v and ", t->mask_form, " mask"));
    if (!r.ok()) return r.status();
    t->reservation = std::move(*r);
  }

  // The conversion, now that the request is admitted. Dense bits [Hk, Nq, Nk] (checked) ->
  // dense bytes or compact, as heuristics.h decides.
  auto dense = [&](absl::string_view bits) {
    const int64_t entries = rows * nk;
    if (DenseMaskToCompact(entries)) {
      CompactMask c = DenseBitsToCompact(bits, layout.view(), a.num_heads_k);
      t->row_offsets = std::move(c.row_offsets);
      t->col_indices = std::move(c.col_indices);
      a.mask_format = MaskFormat::kCompact;  // travels on as CSR (pointers set below)
    } else {
      t->dense_mask = UnpackBits(bits, entries);
      a.mask_format = MaskFormat::kDense;
      a.dense_mask.shape[0] = a.num_heads_k;
      a.dense_mask.shape[1] = nq;
      a.dense_mask.shape[2] = nk;
      a.dense_mask.data = {t->dense_mask.data(), t->dense_mask.size()};
    }
  };
  if (tensor_mask) {
    dense(tensor_bits);
    std::string().swap(tensor_bits);
  } else switch (req.block_mask_case()) {
    case v1::AttendRequest::kDenseMask:
      dense(req.dense_mask().bits());
      break;
    case v1::AttendRequest::kPerSequenceMask: {
      a.mask_format = MaskFormat::kCompact;  // travels on as CSR (pointers set below)
      std::vector<absl::string_view> seqs(req.per_sequence_mask().sequences().begin(),
                                         req.per_sequence_mask().sequences().end());
      absl::StatusOr<CompactMask> c = PerSequenceToCompact(seqs, layout.view(), a.num_heads_k);
      if (!c.ok()) return c.status();
      t->row_offsets = std::move(c->row_offsets);
      t->col_indices = std::move(c->col_indices);
      break;
    }
    default:  // compact: read in place
      a.mask_format = MaskFormat::kCompact;
      a.compact_mask.row_offsets = BytesOf(req.compact_mask().row_offsets());
      a.compact_mask.col_indices = BytesOf(req.compact_mask().col_indices());
      break;
  }
  if (a.mask_format != MaskFormat::kDense && t->mask_form != "compact") {
    a.compact_mask.row_offsets = {t->row_offsets.data(), t->row_offsets.size() * sizeof(int64_t)};
    a.compact_mask.col_indices = {t->col_indices.data(), t->col_indices.size() * sizeof(int32_t)};
  }

  // The mask and the sizes.
  if (absl::Status s = Named(ValidateAfterLayout(a), t->mask_form); !s.ok()) return s;
  a.out = {};
  auto plain = [es](const InputBytes& b, ConstBuffer* c) {
    if (InPlace(b, es) == nullptr) c->data = nullptr;
  };
  plain(t->q, &a.q);
  plain(t->k, &a.k);
  plain(t->v, &a.v);

  // Outputs into shared memory.
  if (req.has_out_shm()) {
    if (auto s = ResolveOutput(req.out_shm(), t->out_bytes, DTypeSize(a.dtype), "out_shm", shm, t.get(), &t->out_target); !s.ok()) {
      return s;
    }
  }
  if (req.has_lse_shm()) {
    if (!t->return_lse) return Invalid("lse_shm is set but return_lse is false");
    if (auto s = ResolveOutput(req.lse_shm(), t->lse_bytes, sizeof(float), "lse_shm", shm, t.get(), &t->lse_target); !s.ok()) {
      return s;
    }
  }

  t->facts.num_q_blocks = nq;
  t->facts.num_k_blocks = nk;
  t->facts.allowed_pairs = AllowedPairs(a);
  t->facts.flops = 4.0 * a.head_dim * static_cast<double>(t->facts.allowed_pairs);
  t->parsed = std::move(parsed);
  return t;
}

absl::StatusOr<std::unique_ptr<TranslatedRequest>> Translate(const v1::AttendRequest& request,
                                                             const TranslateLimits& limits) {
  auto parsed = std::make_shared<ParsedRequest>(ViewOfMessage(request));
  return Translate(std::move(parsed), limits, nullptr);
}

void InputBytes::CopyTo(char* dst) const {
  if (shm != nullptr) {
    std::memcpy(dst, shm, bytes);
  } else {
    wire.CopyTo(dst);
  }
}

}  // namespace hbsa::server
