// server/oip_request.cc: ModelInferRequest -> ParsedRequest, and the response (see the header).
#include "oip_request.h"

#include <array>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "wire/tensor_wire.h"

namespace hbsa::server {
namespace {

using inference::InferParameter;
using inference::InferTensorContents;
using inference::ModelInferRequest;
using InputTensor = inference::ModelInferRequest::InferInputTensor;

absl::Status Invalid(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

// What the parsed request keeps alive: the message (raw bytes are referenced in place) and the
// bytes made from typed contents.
struct Keepalive {
  std::shared_ptr<const ModelInferRequest> request;
  std::array<std::string, 3> typed;  // q, k, v from fp32_contents
};

enum class Input { kQ, kK, kV, kCuQ, kCuK, kMask, kCount };
constexpr const char* kInputNames[] = {"q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "block_mask"};

// Elements given in each typed field other than `keep` (a field number of InferTensorContents).
int64_t OtherContents(const InferTensorContents& c, int keep) {
  const int64_t sizes[] = {0,
                           c.bool_contents_size(),
                           c.int_contents_size(),
                           c.int64_contents_size(),
                           c.uint_contents_size(),
                           c.uint64_contents_size(),
                           c.fp32_contents_size(),
                           c.fp64_contents_size(),
                           c.bytes_contents_size()};
  int64_t n = 0;
  for (int f = 1; f <= 8; ++f) {
    if (f != keep) n += sizes[f];
  }
  return n;
}

constexpr int kBoolContents = 1, kIntContents = 2, kUintContents = 4, kFp32Contents = 6;

// A parameter's value as `type`; INVALID_ARGUMENT naming it when it holds another type.
absl::Status ParameterIs(const std::string& name, const InferParameter& p,
                         InferParameter::ParameterChoiceCase want, const char* type_name) {
  if (p.parameter_choice_case() == want) return absl::OkStatus();
  return Invalid(absl::StrCat("parameters.", name, " must be ", type_name, " (",
                              want == InferParameter::kBoolParam    ? "bool_param"
                              : want == InferParameter::kInt64Param ? "int64_param"
                                                                    : "double_param",
                              ")"));
}

absl::Status NoTensorParameters(const google::protobuf::Map<std::string, InferParameter>& params,
                                absl::string_view where) {
  for (const auto& [name, value] : params) {
    if (name == "binary_data") continue;  // HTTP/JSON's flag; raw bytes are the only form here
    return Invalid(absl::StrCat(
        where, ".parameters.", name, " is not supported by ", kOipModelName,
        absl::StartsWith(name, "shared_memory") ? " (shared memory: use hbsa.v1.Attention)" : ""));
  }
  return absl::OkStatus();
}

// An INT32 [n] input -> a repeated int32 field.
absl::Status Int32Vector(const InputTensor& t, const std::string* raw,
                         google::protobuf::RepeatedField<int32_t>* out) {
  if (t.shape_size() != 1) {
    return Invalid(
        absl::StrCat(t.name(), ".shape must have 1 dim [B+1]; got ", t.shape_size(), " dims"));
  }
  const int64_t n = t.shape(0);
  if (n < 0) return Invalid(absl::StrCat(t.name(), ".shape[0] must be >= 0; got ", n));
  if (raw != nullptr) {
    // Compared by division: a hostile shape[0] times 4 could overflow.
    if (raw->size() % 4 != 0 || static_cast<int64_t>(raw->size() / 4) != n) {
      return Invalid(absl::StrCat(t.name(), ": raw_input_contents must hold ", n,
                                  " INT32 (4 bytes each; shape [", n, "]); got ", raw->size(),
                                  " bytes"));
    }
    out->Resize(static_cast<int>(n), 0);
    if (n > 0) std::memcpy(out->mutable_data(), raw->data(), raw->size());
    return absl::OkStatus();
  }
  if (t.contents().int_contents_size() != n) {
    return Invalid(absl::StrCat(t.name(), ".contents.int_contents must hold ", n,
                                " values (shape [", n, "]); got ",
                                t.contents().int_contents_size()));
  }
  *out = t.contents().int_contents();
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckModel(const std::string& name, const std::string& version) {
  if (name != kOipModelName) {
    return absl::NotFoundError(absl::StrCat("model_name: unknown model \"", name,
                                            "\"; this server has \"", kOipModelName, "\""));
  }
  if (!version.empty() && version != kOipModelVersion) {
    return absl::NotFoundError(absl::StrCat("model_version: model \"", kOipModelName,
                                            "\" has version \"", kOipModelVersion,
                                            "\" only; got \"", version, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ParsedRequest>> ToParsedRequest(
    std::shared_ptr<const ModelInferRequest> request, OipCall* call) {
  const ModelInferRequest& r = *request;
  if (auto s = CheckModel(r.model_name(), r.model_version()); !s.ok()) return s;
  call->model_version = r.model_version();
  call->id = r.id();
  auto keep = std::make_shared<Keepalive>();
  keep->request = request;
  auto p = std::make_shared<ParsedRequest>();
  v1::AttendRequest& meta = p->meta;
  meta.set_request_id(r.id());

  // Inputs: each known name once; data in raw_input_contents (all of them) or typed contents.
  const bool raw = r.raw_input_contents_size() > 0;
  if (raw && r.raw_input_contents_size() != r.inputs_size()) {
    return Invalid(absl::StrCat("raw_input_contents must hold one entry per input (",
                                r.inputs_size(), "); got ", r.raw_input_contents_size()));
  }
  std::array<int, static_cast<int>(Input::kCount)> at;
  at.fill(-1);
  for (int i = 0; i < r.inputs_size(); ++i) {
    const InputTensor& t = r.inputs(i);
    int which = -1;
    for (int n = 0; n < static_cast<int>(Input::kCount); ++n) {
      if (t.name() == kInputNames[n]) which = n;
    }
    if (which < 0) {
      return Invalid(absl::StrCat("inputs[", i, "].name: unknown input \"", t.name(), "\"; ",
                                  kOipModelName, " takes ", absl::StrJoin(kInputNames, ", ")));
    }
    if (at[which] >= 0) {
      return Invalid(absl::StrCat("inputs[", i, "].name: input \"", t.name(), "\" is given twice"));
    }
    at[which] = i;
    if (auto s = NoTensorParameters(t.parameters(), t.name()); !s.ok()) return s;
    if (raw && t.has_contents() && t.contents().ByteSizeLong() > 0) {
      return Invalid(absl::StrCat(t.name(),
                                  ": data is given both in contents and in "
                                  "raw_input_contents"));
    }
  }
  for (int n = 0; n < static_cast<int>(Input::kCount); ++n) {
    if (at[n] < 0) {
      return Invalid(absl::StrCat("inputs: \"", kInputNames[n], "\" is missing; ", kOipModelName,
                                  " takes ", absl::StrJoin(kInputNames, ", ")));
    }
  }
  auto input = [&](Input n) -> const InputTensor& { return r.inputs(at[static_cast<int>(n)]); };
  auto raw_of = [&](Input n) -> const std::string* {
    return raw ? &r.raw_input_contents(at[static_cast<int>(n)]) : nullptr;
  };

  // q, k, v: FP16/BF16/FP32, shape as sent (Translate checks rank, dims and byte counts).
  const std::array<std::pair<Input, WireTensor*>, 3> qkv = {
      {{Input::kQ, &p->q}, {Input::kK, &p->k}, {Input::kV, &p->v}}};
  for (size_t i = 0; i < qkv.size(); ++i) {
    const InputTensor& t = input(qkv[i].first);
    WireTensor* w = qkv[i].second;
    if (t.datatype() == "FP16") {
      w->dtype = v1::DTYPE_FLOAT16;
    } else if (t.datatype() == "BF16") {
      w->dtype = v1::DTYPE_BFLOAT16;
    } else if (t.datatype() == "FP32") {
      w->dtype = v1::DTYPE_FLOAT32;
    } else {
      return Invalid(absl::StrCat(t.name(), ".datatype must be FP16, BF16 or FP32; got \"",
                                  t.datatype(), "\""));
    }
    w->shape.assign(t.shape().begin(), t.shape().end());
    const std::string* bytes = raw_of(qkv[i].first);
    if (bytes == nullptr) {
      if (w->dtype != v1::DTYPE_FLOAT32) {
        return Invalid(absl::StrCat(t.name(), ": ", t.datatype(),
                                    " data must be sent in "
                                    "raw_input_contents (the protocol has no typed ",
                                    t.datatype(), " contents)"));
      }
      if (OtherContents(t.contents(), kFp32Contents) > 0) {
        return Invalid(absl::StrCat(t.name(), ".contents: FP32 data must be in fp32_contents"));
      }
      const auto& f = t.contents().fp32_contents();
      keep->typed[i].assign(reinterpret_cast<const char*>(f.data()), f.size() * sizeof(float));
      bytes = &keep->typed[i];
    }
    w->data.pieces.clear();
    if (!bytes->empty()) w->data.pieces.push_back({bytes->data(), bytes->size()});
    w->data.bytes = bytes->size();
  }
  for (Input n : {Input::kCuQ, Input::kCuK}) {
    const InputTensor& t = input(n);
    if (t.datatype() != "INT32") {
      return Invalid(absl::StrCat(t.name(), ".datatype must be INT32; got \"", t.datatype(), "\""));
    }
    if (raw_of(n) == nullptr && OtherContents(t.contents(), kIntContents) > 0) {
      return Invalid(absl::StrCat(t.name(), ".contents: INT32 data must be in int_contents"));
    }
    auto* field = n == Input::kCuQ ? meta.mutable_cu_seqlens_q() : meta.mutable_cu_seqlens_k();
    if (auto s = Int32Vector(t, raw_of(n), field); !s.ok()) return s;
  }

  // block_mask: BOOL bytes or UINT8 bit-packed rows; Translate checks shape and bits.
  {
    const InputTensor& t = input(Input::kMask);
    TensorMask& m = p->tensor_mask;
    const bool is_bool = t.datatype() == "BOOL";
    if (!is_bool && t.datatype() != "UINT8") {
      return Invalid(
          absl::StrCat("block_mask.datatype must be BOOL ([Hk, Nq, Nk]) or UINT8 "
                       "([Hk, Nq, ceil(Nk / 8)] bit-packed); got \"",
                       t.datatype(), "\""));
    }
    m.kind = is_bool ? TensorMask::Kind::kBool : TensorMask::Kind::kRowBits;
    m.shape.assign(t.shape().begin(), t.shape().end());
    if (const std::string* bytes = raw_of(Input::kMask)) {
      m.data = *bytes;
    } else if (is_bool) {
      if (OtherContents(t.contents(), kBoolContents) > 0) {
        return Invalid("block_mask.contents: BOOL data must be in bool_contents");
      }
      const auto& f = t.contents().bool_contents();
      m.data.resize(static_cast<size_t>(f.size()));
      for (int i = 0; i < f.size(); ++i) m.data[static_cast<size_t>(i)] = f[i] ? 1 : 0;
    } else {
      if (OtherContents(t.contents(), kUintContents) > 0) {
        return Invalid("block_mask.contents: UINT8 data must be in uint_contents");
      }
      const auto& f = t.contents().uint_contents();
      m.data.resize(static_cast<size_t>(f.size()));
      for (int i = 0; i < f.size(); ++i) {
        if (f[i] > 255) {
          return Invalid(absl::StrCat("block_mask.contents.uint_contents entry ", i, " (", f[i],
                                      ") must fit UINT8"));
        }
        m.data[static_cast<size_t>(i)] = static_cast<char>(f[i]);
      }
    }
  }

  // Parameters.
  bool have_q_block = false, have_k_block = false;
  for (const auto& [name, value] : r.parameters()) {
    if (name == "q_block_size" || name == "k_block_size") {
      if (auto s = ParameterIs(name, value, InferParameter::kInt64Param, "an integer"); !s.ok())
        return s;
      const int64_t v = value.int64_param();
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
        return Invalid(absl::StrCat("parameters.", name, " (", v, ") must fit int32"));
      }
      if (name == "q_block_size") {
        meta.set_q_block_size(static_cast<int32_t>(v));
        have_q_block = true;
      } else {
        meta.set_k_block_size(static_cast<int32_t>(v));
        have_k_block = true;
      }
    } else if (name == "causal" || name == "return_lse" || name == "allow_tf32") {
      if (auto s = ParameterIs(name, value, InferParameter::kBoolParam, "a bool"); !s.ok())
        return s;
      if (name == "causal") meta.set_causal(value.bool_param());
      if (name == "return_lse") meta.set_return_lse(value.bool_param());
      if (name == "allow_tf32") meta.set_allow_tf32(value.bool_param());
    } else if (name == "softmax_scale") {
      if (auto s = ParameterIs(name, value, InferParameter::kDoubleParam, "a double"); !s.ok())
        return s;
      // hbsa.v1 carries a float; Translate refuses a value that is not finite after the cast.
      meta.set_softmax_scale(static_cast<float>(value.double_param()));
    } else if (name == "triton_enable_empty_final_response") {
      // Sent by Triton's perf_analyzer on every request; it only concerns decoupled streaming
      // models, so a unary ModelInfer has nothing to do with it.
    } else {
      return Invalid(absl::StrCat("parameters.", name, " is not a parameter of ", kOipModelName,
                                  "; it takes q_block_size, k_block_size, causal, softmax_scale, "
                                  "return_lse, allow_tf32"));
    }
  }
  if (!have_q_block || !have_k_block) {
    return Invalid(absl::StrCat("parameters.", have_q_block ? "k_block_size" : "q_block_size",
                                " is required (int64 >= 1)"));
  }

  // Outputs: all when none is named; lse when asked for by name or by return_lse.
  if (r.outputs_size() > 0) {
    call->send_out = false;
    for (int i = 0; i < r.outputs_size(); ++i) {
      const auto& o = r.outputs(i);
      if (auto s = NoTensorParameters(o.parameters(), absl::StrCat("outputs[", i, "]")); !s.ok()) {
        return s;
      }
      if (o.name() == "out") {
        call->send_out = true;
      } else if (o.name() == "lse") {
        call->send_lse = true;
        meta.set_return_lse(true);
      } else {
        return Invalid(absl::StrCat("outputs[", i, "].name: unknown output \"", o.name(), "\"; ",
                                    kOipModelName, " has out and lse"));
      }
    }
  } else {
    call->send_lse = meta.return_lse();
  }

  p->keepalive = std::move(keep);
  return p;
}

absl::Status ToOipStatus(const absl::Status& status) {
  if (status.ok()) return status;
  absl::string_view m = status.message();
  if (absl::StartsWith(m, "request_id ")) {
    return absl::Status(status.code(), absl::StrCat("id", m.substr(10)));
  }
  return status;
}

namespace {

const char* OipDatatype(int wire_dtype) {
  switch (wire_dtype) {
    case v1::DTYPE_FLOAT16:
      return "FP16";
    case v1::DTYPE_BFLOAT16:
      return "BF16";
    default:
      return "FP32";
  }
}

}  // namespace

grpc::ByteBuffer OipResponseOf(const Job& job, const OipCall& call, bool stream) {
  const TranslatedRequest& t = *job.request;
  const AttentionArgs& a = t.args;
  inference::ModelInferResponse head;  // everything but raw_output_contents
  head.set_model_name(kOipModelName);
  head.set_model_version(kOipModelVersion);
  head.set_id(call.id);
  auto& params = *head.mutable_parameters();
  params["backend"].set_string_param(job.result.backend);
  if (job.result.device >= 0) params["device"].set_int64_param(job.result.device);
  if (!job.result.kernel.empty()) params["kernel"].set_string_param(job.result.kernel);
  std::vector<std::pair<const char*, size_t>> data;  // raw_output_contents, in output order
  if (call.send_out) {
    auto* o = head.add_outputs();
    o->set_name("out");
    o->set_datatype(OipDatatype(t.wire_dtype));
    for (int64_t d : {a.total_q, int64_t{a.num_heads_q}, int64_t{a.head_dim}}) o->add_shape(d);
    data.emplace_back(job.result.out, job.result.out_bytes);
  }
  if (call.send_lse) {
    auto* o = head.add_outputs();
    o->set_name("lse");
    o->set_datatype("FP32");
    for (int64_t d : {a.total_q, int64_t{a.num_heads_q}}) o->add_shape(d);
    data.emplace_back(job.result.lse, job.result.lse_bytes);
  }
  std::vector<grpc::Slice> slices;
  size_t total = 0;
  auto add = [&](grpc::Slice s) {
    total += s.size();
    slices.push_back(std::move(s));
  };
  add(grpc::Slice(head.SerializeAsString()));
  for (const auto& [bytes, n] : data) {
    std::string key;
    wire::PutKey(6, 2, &key);  // ModelInferResponse.raw_output_contents
    wire::PutVarint(n, &key);
    add(grpc::Slice(key));
    if (n > 0) add(OwnedSlice(bytes, n, job.result.block));
  }
  if (stream) {
    std::string key;
    wire::PutKey(2, 2, &key);  // ModelStreamInferResponse.infer_response
    wire::PutVarint(total, &key);
    slices.insert(slices.begin(), grpc::Slice(key));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

namespace {

struct TensorDoc {
  const char* name;
  const char* datatype;
  inference::DataType type;
  int rank;
};
// FP32 stands for "FP16, BF16 or FP32" (one type per request): the metadata has room for one
// datatype per tensor, and FP32 is what a generic client (perf_analyzer) should generate. The
// config's parameters say what else is accepted.
constexpr TensorDoc kInputs[] = {
    {"q", "FP32", inference::TYPE_FP32, 3},
    {"k", "FP32", inference::TYPE_FP32, 3},
    {"v", "FP32", inference::TYPE_FP32, 3},
    {"cu_seqlens_q", "INT32", inference::TYPE_INT32, 1},
    {"cu_seqlens_k", "INT32", inference::TYPE_INT32, 1},
    {"block_mask", "BOOL", inference::TYPE_BOOL, 3},
};
constexpr TensorDoc kOutputs[] = {
    {"out", "FP32", inference::TYPE_FP32, 3},
    {"lse", "FP32", inference::TYPE_FP32, 2},
};

}  // namespace

inference::ModelMetadataResponse OipModelMetadata() {
  inference::ModelMetadataResponse m;
  m.set_name(kOipModelName);
  m.add_versions(std::string(kOipModelVersion));
  m.set_platform("hbsa");
  for (const TensorDoc& d : kInputs) {
    auto* t = m.add_inputs();
    t->set_name(d.name);
    t->set_datatype(d.datatype);
    for (int i = 0; i < d.rank; ++i) t->add_shape(-1);
  }
  for (const TensorDoc& d : kOutputs) {
    auto* t = m.add_outputs();
    t->set_name(d.name);
    t->set_datatype(d.datatype);
    for (int i = 0; i < d.rank; ++i) t->add_shape(-1);
  }
  return m;
}

inference::ModelConfigResponse OipModelConfig() {
  inference::ModelConfigResponse r;
  inference::ModelConfig& c = *r.mutable_config();
  c.set_name(kOipModelName);
  c.set_platform("hbsa");
  c.set_backend("hbsa");
  c.set_max_batch_size(0);  // shapes are given in full; batches are packed along total_q
  for (const TensorDoc& d : kInputs) {
    auto* t = c.add_input();
    t->set_name(d.name);
    t->set_data_type(d.type);
    for (int i = 0; i < d.rank; ++i) t->add_dims(-1);
  }
  for (const TensorDoc& d : kOutputs) {
    auto* t = c.add_output();
    t->set_name(d.name);
    t->set_data_type(d.type);
    for (int i = 0; i < d.rank; ++i) t->add_dims(-1);
  }
  auto& p = *c.mutable_parameters();
  p["datatypes"].set_string_value(
      "q, k, v: FP16, BF16 or FP32 (one for all three); out has it too; lse is FP32");
  p["block_mask"].set_string_value(
      "BOOL [Hk, Nq, Nk], or UINT8 [Hk, Nq, ceil(Nk / 8)] with each row bit-packed, least "
      "significant bit first");
  p["request_parameters"].set_string_value(
      "q_block_size, k_block_size (int64, required); causal, return_lse, allow_tf32 (bool); "
      "softmax_scale (double, default 1/sqrt(D))");
  p["lse"].set_string_value("returned when return_lse is true or lse is a requested output");
  return r;
}

}  // namespace hbsa::server
