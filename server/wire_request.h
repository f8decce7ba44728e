// server/wire_request.h: AttendRequest read straight from the received bytes.
//
// gRPC hands a raw method the request as a list of slices (the bytes as they came off the
// socket). Parsing that into a v1::AttendRequest would copy every tensor byte into a
// std::string; instead ParseAttendRequest walks the wire format of the three tensor fields
// (q, k, v: dtype, shape, and where their data bytes lie, as fragments of the slices, never
// copied; proto/wire/tensor_wire.h) and hands every other field, all small (ids, cu_seqlens,
// block sizes, flags, the mask, shared-memory references), to protobuf. The tensor bytes are
// copied once, later, by the executor, from the fragments into staging memory (pinned memory
// on the CUDA backend).
//
// The fragments point into memory the caller keeps alive (the slices, held by ParsedRequest).
#ifndef HBSA_SERVER_WIRE_REQUEST_H_
#define HBSA_SERVER_WIRE_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hbsa/v1/attention.pb.h"
#include "wire/tensor_wire.h"

namespace hbsa::server {

using wire::Fragment;
using wire::FragmentList;
using wire::WireTensor;

// A block mask that arrived as a tensor (the Open Inference Protocol front end, oip_request.h)
// instead of in meta's block_mask oneof. Translate checks and converts it like the other forms.
struct TensorMask {
  enum class Kind {
    kNone,     // not used: the mask is in meta
    kBool,     // BOOL [Hk, Nq, Nk], one byte (0 or 1) per entry
    kRowBits,  // UINT8 [Hk, Nq, ceil(Nk / 8)]: each row of Nk entries bit-packed, least
               // significant bit first (numpy.packbits(mask, axis=-1, bitorder="little"))
  };
  Kind kind = Kind::kNone;
  std::vector<int64_t> shape;  // as sent
  std::string data;            // the tensor's bytes
};

// A parsed request: the small fields as a message, the tensors as wire views.
struct ParsedRequest {
  v1::AttendRequest meta;      // every field but q, k and v (those are absent from it)
  WireTensor q, k, v;
  TensorMask tensor_mask;      // set by the v2 front end only (then meta has no block_mask)
  int64_t wire_bytes = 0;      // size of the serialized request
  std::shared_ptr<const void> keepalive;  // owner of the memory the fragments point into
};

// Parses the serialized AttendRequest in `fragments` (in order; they must stay valid while
// `out` is used: put their owner into out->keepalive). INVALID_ARGUMENT for bytes that are not
// an AttendRequest.
absl::Status ParseAttendRequest(const std::vector<Fragment>& fragments, ParsedRequest* out);

// A ParsedRequest viewing a message in memory (tests, warm-up): the tensors' fragments point
// into `request`, which must outlive the result; `meta` is a copy without the tensors.
ParsedRequest ViewOfMessage(const v1::AttendRequest& request);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_WIRE_REQUEST_H_
