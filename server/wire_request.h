// server/wire_request.h: AttendRequest read straight from the received bytes.
//
// gRPC hands a raw method the request as a list of slices (the bytes as they came off the
// socket). Parsing that into a v1::AttendRequest would copy every tensor byte into a
// std::string; instead ParseAttendRequest walks the protobuf wire format itself for the three
// tensor fields (q, k, v: dtype, shape, and where their data bytes lie, as fragments of the
// slices, never copied) and hands every other field, all small (ids, cu_seqlens, block sizes,
// flags, the mask, shared-memory references), to protobuf, so their semantics (packed or not,
// last one wins, oneof, unknown fields) are protobuf's own. Tensor fields follow protobuf's
// merge rule too: a Tensor that appears twice is merged (dtype and data: last wins; shape:
// appended). The tensor bytes are copied once, later, by the executor, from the fragments into
// staging memory (pinned memory on the CUDA backend).
//
// The fragments point into memory the caller keeps alive (the slices, held by ParsedRequest).
#ifndef HBSA_SERVER_WIRE_REQUEST_H_
#define HBSA_SERVER_WIRE_REQUEST_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "hbsa/v1/attention.pb.h"

namespace hbsa::server {

// A contiguous piece of received bytes.
struct Fragment {
  const char* data = nullptr;
  size_t size = 0;
};

// Where one tensor's bytes lie: a sequence of fragments, in order.
struct FragmentList {
  std::vector<Fragment> pieces;
  size_t bytes = 0;  // sum of the pieces' sizes

  // The bytes as one pointer when they are one piece (or none), else nullptr.
  const char* Contiguous() const;
  // Copies all bytes to `dst` (bytes long).
  void CopyTo(char* dst) const;
};

// One request tensor as sent.
struct WireTensor {
  int dtype = 0;               // v1::DType value as sent
  std::vector<int64_t> shape;  // dims as sent
  FragmentList data;           // Tensor.data
  bool has_shm = false;        // Tensor.shm is set
  v1::SharedMemoryRef shm;
};

// A parsed request: the small fields as a message, the tensors as wire views.
struct ParsedRequest {
  v1::AttendRequest meta;      // every field but q, k and v (those are absent from it)
  WireTensor q, k, v;
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
