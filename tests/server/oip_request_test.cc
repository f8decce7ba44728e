// tests/server/oip_request_test.cc: the Open Inference Protocol mapping (server/oip_request.h)
// builds the request hbsa.v1 builds. The warm-up request (a v1 AttendRequest with a dense mask)
// is re-sent as a ModelInferRequest (raw bytes and BOOL mask, then a bit-packed UINT8 mask, then
// typed FP32 contents); each must translate to the same arguments and derived facts as the v1
// message, and the envelope errors must name the v2 field.
#include "oip_request.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "mask_convert.h"
#include "translate.h"
#include "warmup.h"

namespace hbsa::server {
namespace {

const TranslateLimits kLimits{536870912, int64_t{1} << 30};

void SetParam(inference::ModelInferRequest* r, const std::string& name, int64_t v) {
  (*r->mutable_parameters())[name].set_int64_param(v);
}
void SetBool(inference::ModelInferRequest* r, const std::string& name, bool v) {
  (*r->mutable_parameters())[name].set_bool_param(v);
}

// The v1 request `a` (dense mask) as a v2 request with raw contents and a BOOL mask.
inference::ModelInferRequest FromV1(const v1::AttendRequest& a) {
  inference::ModelInferRequest r;
  r.set_model_name("hbsa_attention");
  r.set_id(a.request_id());
  auto add = [&r](const char* name, const char* datatype, std::vector<int64_t> shape,
                  std::string bytes) {
    auto* t = r.add_inputs();
    t->set_name(name);
    t->set_datatype(datatype);
    for (int64_t d : shape) t->add_shape(d);
    r.add_raw_input_contents(std::move(bytes));
  };
  for (const auto& [name, t] :
       {std::pair{"q", &a.q()}, std::pair{"k", &a.k()}, std::pair{"v", &a.v()}}) {
    add(name, "FP16", {t->shape().begin(), t->shape().end()}, t->data());
  }
  auto ints = [](const google::protobuf::RepeatedField<int32_t>& f) {
    return std::string(reinterpret_cast<const char*>(f.data()), f.size() * 4);
  };
  add("cu_seqlens_q", "INT32", {a.cu_seqlens_q_size()}, ints(a.cu_seqlens_q()));
  add("cu_seqlens_k", "INT32", {a.cu_seqlens_k_size()}, ints(a.cu_seqlens_k()));
  const auto& m = a.dense_mask();
  const int64_t entries = m.shape(0) * m.shape(1) * m.shape(2);
  std::vector<uint8_t> bytes = UnpackBits(m.bits(), entries);
  add("block_mask", "BOOL", {m.shape().begin(), m.shape().end()},
      std::string(bytes.begin(), bytes.end()));
  SetParam(&r, "q_block_size", a.q_block_size());
  SetParam(&r, "k_block_size", a.k_block_size());
  SetBool(&r, "causal", a.causal());
  SetBool(&r, "return_lse", a.return_lse());
  return r;
}

absl::StatusOr<std::unique_ptr<TranslatedRequest>> TranslateV2(
    const inference::ModelInferRequest& r, OipCall* call) {
  auto owned = std::make_shared<inference::ModelInferRequest>(r);
  absl::StatusOr<std::shared_ptr<ParsedRequest>> p = ToParsedRequest(owned, call);
  if (!p.ok()) return p.status();
  return Translate(std::move(*p), kLimits, nullptr);
}

void ExpectSameRequest(const TranslatedRequest& a, const TranslatedRequest& b) {
  EXPECT_EQ(a.args.dtype, b.args.dtype);
  EXPECT_EQ(a.args.total_q, b.args.total_q);
  EXPECT_EQ(a.args.total_k, b.args.total_k);
  EXPECT_EQ(a.args.num_heads_q, b.args.num_heads_q);
  EXPECT_EQ(a.args.num_heads_k, b.args.num_heads_k);
  EXPECT_EQ(a.args.head_dim, b.args.head_dim);
  EXPECT_EQ(a.args.q_block_size, b.args.q_block_size);
  EXPECT_EQ(a.args.k_block_size, b.args.k_block_size);
  EXPECT_EQ(a.args.causal, b.args.causal);
  EXPECT_EQ(a.args.mask_format, b.args.mask_format);
  EXPECT_EQ(a.dense_mask, b.dense_mask);
  EXPECT_EQ(a.row_offsets, b.row_offsets);
  EXPECT_EQ(a.col_indices, b.col_indices);
  EXPECT_EQ(a.return_lse, b.return_lse);
  EXPECT_EQ(a.out_bytes, b.out_bytes);
  EXPECT_EQ(a.lse_bytes, b.lse_bytes);
  EXPECT_EQ(a.facts.num_q_blocks, b.facts.num_q_blocks);
  EXPECT_EQ(a.facts.num_k_blocks, b.facts.num_k_blocks);
  EXPECT_EQ(a.facts.allowed_pairs, b.facts.allowed_pairs);
  std::vector<char> qa(a.q.bytes), qb(b.q.bytes);
  a.q.CopyTo(qa.data());
  b.q.CopyTo(qb.data());
  EXPECT_EQ(qa, qb);
}

TEST(OipRequest, MapsOntoTheHbsaV1Request) {
  const v1::AttendRequest v1_request = MakeWarmupRequest();
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> want = Translate(v1_request, kLimits);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_GT((*want)->facts.allowed_pairs, 0);

  inference::ModelInferRequest r = FromV1(v1_request);
  OipCall call;
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> got = TranslateV2(r, &call);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)->mask_form, "block_mask");
  ExpectSameRequest(**want, **got);
  EXPECT_TRUE(call.send_out && call.send_lse);
  EXPECT_EQ(call.id, "warmup");

  // The same mask bit-packed per row (UINT8 [Hk, Nq, ceil(Nk / 8)]).
  const auto& m = v1_request.dense_mask();
  const int64_t hk = m.shape(0), nq = m.shape(1), nk = m.shape(2), w = (nk + 7) / 8;
  std::vector<uint8_t> bytes = UnpackBits(m.bits(), hk * nq * nk);
  std::string rows(static_cast<size_t>(hk * nq * w), '\0');
  for (int64_t row = 0; row < hk * nq; ++row) {
    for (int64_t j = 0; j < nk; ++j) {
      if (bytes[static_cast<size_t>(row * nk + j)])
        rows[static_cast<size_t>(row * w + j / 8)] |= static_cast<char>(1 << (j % 8));
    }
  }
  inference::ModelInferRequest packed = r;
  auto* mask = packed.mutable_inputs(5);
  mask->set_datatype("UINT8");
  mask->set_shape(2, w);
  *packed.mutable_raw_input_contents(5) = rows;
  got = TranslateV2(packed, &call);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameRequest(**want, **got);

  // A pad bit past Nk is refused, naming the mask.
  (*packed.mutable_raw_input_contents(5))[0] |= static_cast<char>(0x80);
  got = TranslateV2(packed, &call);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("block_mask row 0: pad bit 7"), absl::string_view::npos)
      << got.status();
}

TEST(OipRequest, EnvelopeErrorsNameTheV2Field) {
  const inference::ModelInferRequest good = FromV1(MakeWarmupRequest());
  OipCall call;
  inference::ModelInferRequest r = good;
  r.set_model_name("other");
  EXPECT_EQ(TranslateV2(r, &call).status().code(), absl::StatusCode::kNotFound);
  r = good;
  r.set_model_version("2");
  EXPECT_EQ(TranslateV2(r, &call).status().code(), absl::StatusCode::kNotFound);
  struct Case {
    void (*mutate)(inference::ModelInferRequest*);
    const char* message;
  };
  const Case cases[] = {
      {[](inference::ModelInferRequest* x) { x->mutable_inputs(0)->set_datatype("FP64"); },
       "q.datatype must be FP16, BF16 or FP32"},
      {[](inference::ModelInferRequest* x) { x->mutable_inputs(3)->set_name("cu_q"); },
       "inputs[3].name: unknown input \"cu_q\""},
      {[](inference::ModelInferRequest* x) { x->mutable_raw_input_contents()->RemoveLast(); },
       "raw_input_contents must hold one entry per input (6); got 5"},
      {[](inference::ModelInferRequest* x) { x->mutable_raw_input_contents(3)->pop_back(); },
       "cu_seqlens_q: raw_input_contents must hold 3 INT32 (4 bytes each; shape [3]); got 11 "
       "bytes"},
      {[](inference::ModelInferRequest* x) {
         x->mutable_inputs(4)->set_shape(0, int64_t{1} << 62);  // 4 * shape overflows int64
       },
       "cu_seqlens_k: raw_input_contents must hold 4611686018427387904 INT32"},
      {[](inference::ModelInferRequest* x) { x->mutable_parameters()->erase("k_block_size"); },
       "parameters.k_block_size is required"},
      {[](inference::ModelInferRequest* x) { SetParam(x, "causal", 1); },
       "parameters.causal must be a bool"},
      {[](inference::ModelInferRequest* x) { x->add_outputs()->set_name("weights"); },
       "outputs[0].name: unknown output \"weights\""},
      {[](inference::ModelInferRequest* x) { x->mutable_inputs(5)->set_shape(0, 2); },
       "block_mask.shape must be [Hk, Nq, Nk] = [1, 5, 3] for a BOOL mask; got [2, 5, 3]"},
      {[](inference::ModelInferRequest* x) { (*x->mutable_raw_input_contents(5))[0] = 2; },
       "block_mask entry 0 must be 0 or 1 (BOOL); got 2"},
      {[](inference::ModelInferRequest* x) { x->set_id(std::string(300, 'x')); },
       "id must be at most"},
  };
  for (const Case& c : cases) {
    r = good;
    c.mutate(&r);
    absl::Status s = ToOipStatus(TranslateV2(r, &call).status());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_NE(s.message().find(c.message), absl::string_view::npos) << s << " / want " << c.message;
  }
}

TEST(OipRequest, TypedFp32ContentsMatchRawBytes) {
  // An FP32 version of the warm-up request, once raw and once as fp32_contents.
  v1::AttendRequest a = MakeWarmupRequest();
  for (v1::Tensor* t : {a.mutable_q(), a.mutable_k(), a.mutable_v()}) {
    const int64_t n = static_cast<int64_t>(t->data().size()) / 2;
    std::string f(static_cast<size_t>(n) * 4, '\0');
    for (int64_t i = 0; i < n; ++i) {
      const float x = 0.25f * static_cast<float>((i * 7) % 11) - 1.0f;
      std::memcpy(&f[static_cast<size_t>(i) * 4], &x, 4);
    }
    t->set_dtype(v1::DTYPE_FLOAT32);
    t->set_data(f);
  }
  inference::ModelInferRequest raw = FromV1(a);
  for (int i = 0; i < 3; ++i) raw.mutable_inputs(i)->set_datatype("FP32");
  inference::ModelInferRequest typed = raw;
  typed.clear_raw_input_contents();
  for (int i = 0; i < 6; ++i) {
    const std::string& b = raw.raw_input_contents(i);
    auto* c = typed.mutable_inputs(i)->mutable_contents();
    if (i < 3) {
      c->mutable_fp32_contents()->Resize(static_cast<int>(b.size() / 4), 0.f);
      std::memcpy(c->mutable_fp32_contents()->mutable_data(), b.data(), b.size());
    } else if (i < 5) {
      c->mutable_int_contents()->Resize(static_cast<int>(b.size() / 4), 0);
      std::memcpy(c->mutable_int_contents()->mutable_data(), b.data(), b.size());
    } else {
      for (char x : b) c->add_bool_contents(x != 0);
    }
  }
  OipCall call;
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> want = Translate(a, kLimits);
  ASSERT_TRUE(want.ok()) << want.status();
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> got_raw = TranslateV2(raw, &call);
  ASSERT_TRUE(got_raw.ok()) << got_raw.status();
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> got_typed = TranslateV2(typed, &call);
  ASSERT_TRUE(got_typed.ok()) << got_typed.status();
  ExpectSameRequest(**want, **got_raw);
  ExpectSameRequest(**want, **got_typed);
  // Typed FP16 does not exist in the protocol: refused with the reason.
  typed.mutable_inputs(0)->set_datatype("FP16");
  absl::Status s = TranslateV2(typed, &call).status();
  EXPECT_NE(s.message().find("q: FP16 data must be sent in raw_input_contents"),
            absl::string_view::npos)
      << s;
}

}  // namespace
}  // namespace hbsa::server
