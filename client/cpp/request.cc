// request.cc: AttentionArgs -> AttendRequest (all three mask forms) and AttendResponse ->
// AttendResult, with no network involved, so both directions are unit-tested without a server.
//
// The block layout (which global blocks belong to which sequence) comes from the kernels'
// BlockLayoutStorage and the mask bits from its MaskView: the client never re-derives the rule.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "hbsa/client.h"
#include "hbsa/layout.h"
#include "hbsa/plan.h"

namespace hbsa::client {
namespace {

v1::DType ToWire(DType dtype) {
  switch (dtype) {
    case DType::kFloat16: return v1::DTYPE_FLOAT16;
    case DType::kBFloat16: return v1::DTYPE_BFLOAT16;
    case DType::kFloat32: return v1::DTYPE_FLOAT32;
  }
  return v1::DTYPE_UNSPECIFIED;
}

std::optional<DType> FromWire(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_FLOAT16: return DType::kFloat16;
    case v1::DTYPE_BFLOAT16: return DType::kBFloat16;
    case v1::DTYPE_FLOAT32: return DType::kFloat32;
    default: return std::nullopt;
  }
}

void FillTensor(v1::Tensor* t, DType dtype, std::initializer_list<int64_t> shape,
                const ConstBuffer& buf) {
  t->set_dtype(ToWire(dtype));
  for (int64_t s : shape) t->add_shape(s);
  if (buf.data != nullptr) t->set_data(static_cast<const char*>(buf.data), buf.bytes);
}

void CopyInt32(const ConstBuffer& buf, google::protobuf::RepeatedField<int32_t>* out) {
  const auto* p = static_cast<const int32_t*>(buf.data);
  if (p == nullptr) return;
  out->Add(p, p + buf.bytes / sizeof(int32_t));
}

// Writes the mask of valid `args` into `req` in `form`, reading bits through the kernels'
// MaskView (dense or compact input alike).
void FillMask(const AttentionArgs& args, MaskForm form, v1::AttendRequest* req) {
  const BlockLayoutStorage storage(args);
  const BlockLayout& layout = storage.view();
  const MaskView mask = MakeMaskView(args, layout);
  const int32_t hk_count = args.num_heads_k, nq = layout.num_q_blocks, nk = layout.num_k_blocks;
  const auto& qbs = storage.q_block_start();
  const auto& kbs = storage.k_block_start();
  switch (form) {
    case MaskForm::kDense: {
      std::vector<uint8_t> bytes(static_cast<size_t>(hk_count) * nq * nk);
      size_t n = 0;
      for (int32_t hk = 0; hk < hk_count; ++hk)
        for (int32_t i = 0; i < nq; ++i)
          for (int32_t j = 0; j < nk; ++j) bytes[n++] = mask.Get(hk, i, j) ? 1 : 0;
      v1::DenseBlockMask* m = req->mutable_dense_mask();
      m->add_shape(hk_count);
      m->add_shape(nq);
      m->add_shape(nk);
      m->set_bits(PackBits(bytes.data(), static_cast<int64_t>(bytes.size())));
      return;
    }
    case MaskForm::kPerSequence: {
      v1::PerSequenceBlockMask* m = req->mutable_per_sequence_mask();
      std::vector<uint8_t> plane;
      for (int32_t b = 0; b < args.batch; ++b) {
        const int32_t nq_b = qbs[b + 1] - qbs[b], nk_b = kbs[b + 1] - kbs[b];
        plane.assign(static_cast<size_t>(hk_count) * nq_b * nk_b, 0);
        size_t n = 0;
        for (int32_t hk = 0; hk < hk_count; ++hk)
          for (int32_t i = 0; i < nq_b; ++i)
            for (int32_t j = 0; j < nk_b; ++j) plane[n++] = mask.Get(hk, qbs[b] + i, kbs[b] + j);
        m->add_sequences(PackBits(plane.data(), static_cast<int64_t>(plane.size())));
      }
      return;
    }
    case MaskForm::kCompact: {
      // Only same-sequence blocks: the others are ignored by the contract, so leaving them out
      // changes nothing and keeps the list proportional to the useful work.
      v1::CompactBlockMask* m = req->mutable_compact_mask();
      const auto& q_seq = storage.q_block_seq();
      m->add_row_offsets(0);
      for (int32_t hk = 0; hk < hk_count; ++hk) {
        for (int32_t i = 0; i < nq; ++i) {
          const int32_t b = q_seq[i];
          for (int32_t j = kbs[b]; j < kbs[b + 1]; ++j) {
            if (mask.Get(hk, i, j)) m->add_col_indices(j);
          }
          m->add_row_offsets(m->col_indices_size());
        }
      }
      return;
    }
  }
}

// The mask as given, without conversion (for unvalidated requests).
void FillMaskVerbatim(const AttentionArgs& args, v1::AttendRequest* req) {
  if (args.mask_format == MaskFormat::kDense) {
    v1::DenseBlockMask* m = req->mutable_dense_mask();
    for (int64_t s : args.dense_mask.shape) m->add_shape(s);
    m->set_bits(PackBits(static_cast<const uint8_t*>(args.dense_mask.data.data),
                         static_cast<int64_t>(args.dense_mask.data.bytes)));
    return;
  }
  v1::CompactBlockMask* m = req->mutable_compact_mask();
  const auto* ro = static_cast<const int64_t*>(args.compact_mask.row_offsets.data);
  const auto* ci = static_cast<const int32_t*>(args.compact_mask.col_indices.data);
  if (ro != nullptr) m->mutable_row_offsets()->Add(ro, ro + args.compact_mask.row_offsets.bytes / 8);
  if (ci != nullptr) m->mutable_col_indices()->Add(ci, ci + args.compact_mask.col_indices.bytes / 4);
}

bool SameForm(MaskFormat given, MaskForm wire) {
  return (given == MaskFormat::kDense && wire == MaskForm::kDense) ||
         (given == MaskFormat::kCompact && wire == MaskForm::kCompact);
}

absl::Status ClientError(absl::StatusCode code, absl::string_view msg) {
  return absl::Status(code, absl::StrCat("client: ", msg));
}

}  // namespace

std::string_view MaskFormName(MaskForm form) {
  switch (form) {
    case MaskForm::kDense: return "dense";
    case MaskForm::kPerSequence: return "per_sequence";
    case MaskForm::kCompact: return "compact";
  }
  return "?";
}

std::optional<MaskForm> ParseMaskForm(std::string_view name) {
  if (name == "dense") return MaskForm::kDense;
  if (name == "per_sequence" || name == "per-sequence") return MaskForm::kPerSequence;
  if (name == "compact") return MaskForm::kCompact;
  return std::nullopt;
}

std::string PackBits(const uint8_t* bytes, int64_t n) {
  std::string bits(static_cast<size_t>((n + 7) / 8), '\0');
  for (int64_t i = 0; i < n; ++i) {
    if (bytes[i] != 0) bits[i / 8] = static_cast<char>(bits[i / 8] | (1 << (i % 8)));
  }
  return bits;
}

absl::StatusOr<v1::AttendRequest> BuildRequest(const AttentionArgs& args,
                                               const RequestOptions& options) {
  absl::StatusOr<v1::AttendRequest> req = BuildRequestHeader(args, options);
  if (!req.ok()) return req;
  FillTensor(req->mutable_q(), args.dtype, {args.total_q, args.num_heads_q, args.head_dim}, args.q);
  FillTensor(req->mutable_k(), args.dtype, {args.total_k, args.num_heads_k, args.head_dim}, args.k);
  FillTensor(req->mutable_v(), args.dtype, {args.total_k, args.num_heads_k, args.head_dim}, args.v);
  return req;
}

absl::StatusOr<v1::AttendRequest> BuildRequestHeader(const AttentionArgs& args,
                                                     const RequestOptions& options) {
  // Conversions between mask forms walk the block layout, which needs valid cu_seqlens: they
  // validate even when the caller turned validation off.
  const bool convert = !SameForm(args.mask_format, options.mask_form);
  if (options.validate || convert) {
    // Validate also checks the output buffer, which a remote call does not have: q has the
    // same dtype and shape as out, so q's view stands in for it (Validate never reads it).
    AttentionArgs check = args;
    check.out = MutableBuffer{const_cast<void*>(args.q.data), args.q.bytes};
    check.lse = MutableBuffer{};
    if (absl::Status s = Validate(check); !s.ok()) {
      return ClientError(s.code(), s.message());
    }
  }
  v1::AttendRequest req;
  req.set_request_id(options.request_id);
  CopyInt32(args.cu_seqlens_q, req.mutable_cu_seqlens_q());
  CopyInt32(args.cu_seqlens_k, req.mutable_cu_seqlens_k());
  req.set_q_block_size(args.q_block_size);
  req.set_k_block_size(args.k_block_size);
  req.set_causal(args.causal);
  if (args.softmax_scale.has_value()) req.set_softmax_scale(*args.softmax_scale);
  req.set_return_lse(options.return_lse);
  req.set_allow_tf32(args.allow_tf32);
  if (convert || options.validate) {
    FillMask(args, options.mask_form, &req);
  } else {
    FillMaskVerbatim(args, &req);
  }
  return req;
}

absl::StatusOr<AttendResult> ParseResponse(const v1::AttendRequest& request,
                                           v1::AttendResponse response) {
  if (response.has_error() && response.error().code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(response.error().code()),
                        response.error().message());
  }
  AttendResult r;
  r.response_bytes = static_cast<int64_t>(response.ByteSizeLong());
  r.request_id = response.request_id();
  r.backend = response.backend();
  r.device = response.device();
  r.server_timings = response.timings();
  const auto dtype = FromWire(response.out().dtype());
  if (!dtype.has_value() || response.out().dtype() != request.q().dtype()) {
    return ClientError(absl::StatusCode::kInternal,
                       absl::StrCat("response out.dtype (", response.out().dtype(),
                                    ") differs from the request's (", request.q().dtype(), ")"));
  }
  r.dtype = *dtype;
  const int64_t total_q = request.q().shape_size() > 0 ? request.q().shape(0) : 0;
  const int64_t hq = request.q().shape_size() > 1 ? request.q().shape(1) : 0;
  const int64_t d = request.q().shape_size() > 2 ? request.q().shape(2) : 0;
  r.out_shape = {total_q, hq, d};
  const std::vector<int64_t> got(response.out().shape().begin(), response.out().shape().end());
  if (got != r.out_shape) {
    return ClientError(absl::StatusCode::kInternal, "response out.shape is not [total_q, Hq, D]");
  }
  const size_t want_bytes = static_cast<size_t>(total_q * hq * d) * DTypeSize(r.dtype);
  if (response.out().data().size() != want_bytes) {
    return ClientError(absl::StatusCode::kInternal,
                       absl::StrCat("response out holds ", response.out().data().size(),
                                    " bytes; expected ", want_bytes));
  }
  r.out = std::move(*response.mutable_out()->mutable_data());
  if (request.return_lse()) {
    const v1::Tensor& lse = response.lse();
    const size_t want = static_cast<size_t>(total_q * hq) * sizeof(float);
    if (lse.dtype() != v1::DTYPE_FLOAT32 || lse.data().size() != want) {
      return ClientError(absl::StatusCode::kInternal,
                         absl::StrCat("response lse must be fp32 [total_q, Hq] (", want,
                                      " bytes); got ", lse.data().size(), " bytes"));
    }
    r.has_lse = true;
    r.lse.resize(static_cast<size_t>(total_q * hq));
    if (want > 0) std::memcpy(r.lse.data(), lse.data().data(), want);
  }
  return r;
}

absl::Status CopyToBuffers(const AttendResult& result, const AttentionArgs& args) {
  if (args.out.bytes != result.out.size() || (args.out.data == nullptr && !result.out.empty())) {
    return ClientError(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("out buffer holds ", args.out.bytes, " bytes; the result has ",
                                    result.out.size()));
  }
  if (!result.out.empty()) std::memcpy(args.out.data, result.out.data(), result.out.size());
  if (args.lse.data != nullptr) {
    const size_t want = result.lse.size() * sizeof(float);
    if (!result.has_lse || args.lse.bytes != want) {
      return ClientError(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("lse buffer holds ", args.lse.bytes,
                                      " bytes; the result has ", result.has_lse ? want : 0));
    }
    if (want > 0) std::memcpy(args.lse.data, result.lse.data(), want);
  }
  return absl::OkStatus();
}

}  // namespace hbsa::client
