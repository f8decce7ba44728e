// proto/wire/tensor_wire.h: hbsa.v1 messages read from and written to raw protobuf bytes, for
// the tensor fields only, without copying tensor data.
//
// The server reads AttendRequest's q/k/v and the client reads AttendResponse's out/lse this
// way: the message arrives as gRPC slices (a list of fragments); the tensor fields are walked
// here and their data bytes are returned as fragments of the input (no copy); every other
// field is re-encoded as received into `rest`, which the caller parses with protobuf (so their
// semantics stay protobuf's: packed or not, last one wins, oneof, unknown fields). Tensor
// fields follow protobuf's merge rule: a Tensor that appears twice is merged (dtype and data:
// last wins; shape: appended; shm: merged).
//
// Wire format (protobuf encoding): a message is a sequence of fields, each a varint key
// (field_number << 3 | wire_type) and a payload: type 0 varint, 1 eight bytes, 2 a varint
// length and that many bytes, 5 four bytes; 3 and 4 (groups) are not used by hbsa.v1 and are
// refused.
#ifndef HBSA_PROTO_WIRE_TENSOR_WIRE_H_
#define HBSA_PROTO_WIRE_TENSOR_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hbsa/v1/attention.pb.h"

namespace hbsa::wire {

// A contiguous piece of received bytes.
struct Fragment {
  const char* data = nullptr;
  size_t size = 0;
};

// Where some bytes lie: a sequence of fragments, in order.
struct FragmentList {
  std::vector<Fragment> pieces;
  size_t bytes = 0;  // sum of the pieces' sizes

  // The bytes as one pointer when they are one piece (or none), else nullptr.
  const char* Contiguous() const;
  // Copies all bytes to `dst` (bytes long).
  void CopyTo(char* dst) const;
};

// One hbsa.v1.Tensor as sent.
struct WireTensor {
  int dtype = 0;               // v1::DType value as sent
  std::vector<int64_t> shape;  // dims as sent
  FragmentList data;           // Tensor.data
  bool has_shm = false;        // Tensor.shm is set
  v1::SharedMemoryRef shm;
};

// Walks the message in `fragments`: fields listed in `tensor_fields` (wire type 2) are parsed
// as Tensors into the matching entry of `tensors`; the rest is appended to `rest`.
// INVALID_ARGUMENT naming `message` ("hbsa.v1.AttendRequest") for bytes that are not one.
absl::Status SplitTensors(const std::vector<Fragment>& fragments,
                          const std::vector<uint32_t>& tensor_fields,
                          const std::vector<WireTensor*>& tensors, const char* message,
                          std::string* rest);

// Writing: varints, keys, and a Tensor's framing for data that follows in its own slice.
void PutVarint(uint64_t v, std::string* out);
void PutKey(uint32_t field, int wire_type, std::string* out);
// Field `field` holding Tensor{dtype, shape (packed), shm (if given), data key and length};
// `data_bytes` bytes of data must follow directly.
std::string TensorHeader(uint32_t field, int dtype, const int64_t* shape, int rank,
                         size_t data_bytes, const v1::SharedMemoryRef* shm = nullptr);

}  // namespace hbsa::wire

#endif  // HBSA_PROTO_WIRE_TENSOR_WIRE_H_
