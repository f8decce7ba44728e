// server/oip_request.h: the Open Inference Protocol v2 model "hbsa_attention" <-> the internal
// request of hbsa.v1.
//
// A ModelInferRequest is mapped onto the very ParsedRequest that hbsa.v1's Attend builds from
// its wire bytes (wire_request.h): q, k and v become WireTensors over the request's bytes,
// cu_seqlens and the scalar parameters fill the v1::AttendRequest fields of the same meaning,
// the mask becomes a TensorMask. Nothing here validates attention semantics: Translate
// (translate.h) does that, once, for both protocols, and its messages name the fields (the
// input names of this model are the hbsa.v1 field names). What is checked here is only what the
// v2 envelope itself can get wrong: the model name, input names and datatypes, where the data
// is (raw_input_contents or typed contents) and that its size matches the declared shape,
// parameter names and types, requested outputs.
//
// The model (docs/OIP.md):
//   inputs   q [total_q, Hq, D], k and v [total_k, Hk, D]: FP16, BF16 or FP32 (one dtype);
//            cu_seqlens_q, cu_seqlens_k [B+1]: INT32;
//            block_mask: BOOL [Hk, Nq, Nk], or UINT8 [Hk, Nq, ceil(Nk / 8)] bit-packed rows
//   params   q_block_size, k_block_size (int64, required); causal, return_lse, allow_tf32
//            (bool, default false); softmax_scale (double, default 1/sqrt(D))
//   outputs  out [total_q, Hq, D] (q's dtype); lse [total_q, Hq] FP32 when return_lse is true
//            or lse is among the requested outputs
#ifndef HBSA_SERVER_OIP_REQUEST_H_
#define HBSA_SERVER_OIP_REQUEST_H_

#include <grpcpp/support/byte_buffer.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference/v2/open_inference.pb.h"
#include "job.h"
#include "wire_request.h"

namespace hbsa::server {

inline constexpr const char* kOipModelName = "hbsa_attention";
inline constexpr const char* kOipModelVersion = "1";

// What the response needs to know about its request besides the job.
struct OipCall {
  std::string model_version;  // as requested ("" answered as kOipModelVersion)
  std::string id;             // echoed
  bool send_out = true;       // which outputs to send, in this order
  bool send_lse = false;
};

// NOT_FOUND unless `name`/`version` name this server's model ("" = any version).
absl::Status CheckModel(const std::string& name, const std::string& version);

// Maps `request` (kept alive by the result: its bytes are referenced, not copied, for raw q/k/v)
// onto the internal request, filling `call`. INVALID_ARGUMENT / NOT_FOUND naming the field.
absl::StatusOr<std::shared_ptr<ParsedRequest>> ToParsedRequest(
    std::shared_ptr<const inference::ModelInferRequest> request, OipCall* call);

// A status message of the shared validation with the hbsa.v1 names that differ in the v2
// vocabulary rewritten (request_id -> id).
absl::Status ToOipStatus(const absl::Status& status);

// The serialized ModelInferResponse of a successful job: out/lse referenced, not copied.
// With `stream` it is wrapped as ModelStreamInferResponse.infer_response.
grpc::ByteBuffer OipResponseOf(const Job& job, const OipCall& call, bool stream = false);

// The model's metadata and configuration (tensor shapes with -1 for dynamic dims).
inference::ModelMetadataResponse OipModelMetadata();
inference::ModelConfigResponse OipModelConfig();

}  // namespace hbsa::server

#endif  // HBSA_SERVER_OIP_REQUEST_H_
