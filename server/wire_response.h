// server/wire_response.h: AttendResponse framed around output memory, without copying it.
//
// The executor leaves out (and lse) in host memory it owns (pinned staging on the CUDA
// backend). BuildAttendResponse writes the protobuf framing of an AttendResponse by hand into
// small slices and adds the output bytes as slices that point at that memory; gRPC writes
// them to the socket from there. The memory's owner (`HostBlock`) is released when gRPC drops
// the last slice, i.e. after the bytes were sent (or the call failed). Field order on the wire
// is free in protobuf; every field a v1::AttendResponse parser knows is written.
#ifndef HBSA_SERVER_WIRE_RESPONSE_H_
#define HBSA_SERVER_WIRE_RESPONSE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include "hbsa/v1/attention.pb.h"

namespace hbsa::server {

// Host memory holding one launch's outputs; `release` runs once, when the block is destroyed
// (after every response that points into it was sent).
class HostBlock {
 public:
  HostBlock(void* data, size_t bytes, std::function<void()> release)
      : data_(data), bytes_(bytes), release_(std::move(release)) {}
  ~HostBlock() {
    if (release_) release_();
  }
  HostBlock(const HostBlock&) = delete;
  HostBlock& operator=(const HostBlock&) = delete;
  char* data() const { return static_cast<char*>(data_); }
  size_t bytes() const { return bytes_; }

 private:
  void* data_;
  size_t bytes_;
  std::function<void()> release_;
};

// A HostBlock of `bytes` from the C++ heap (CPU backend; tests).
std::shared_ptr<HostBlock> HeapBlock(size_t bytes);

// What one successful response says. `out`/`lse` point into `owner` (or are null with
// `*_bytes` 0 when the output went to shared memory: the tensor then carries dtype and shape
// only).
struct ResponseParts {
  std::string request_id;
  int dtype = 0;                 // v1::DType of out
  int64_t out_shape[3] = {0, 0, 0};
  const char* out = nullptr;
  size_t out_bytes = 0;
  bool has_lse = false;
  int64_t lse_shape[2] = {0, 0};
  const char* lse = nullptr;
  size_t lse_bytes = 0;
  std::shared_ptr<HostBlock> owner;
  v1::StageTimings timings;
  std::string backend;
  int32_t device = -1;
  std::string kernel;            // CUDA kernel that computed it (empty on the CPU)
};

// The serialized AttendResponse of `parts` (out and lse referenced, not copied). The framing
// time is added to timings.response_seconds.
grpc::ByteBuffer BuildAttendResponse(const ResponseParts& parts);

// A slice over `bytes` of `owner`'s memory, not copied: gRPC keeps the owner alive while it
// holds the slice (the v2 front end frames its responses with it too).
grpc::Slice OwnedSlice(const char* data, size_t bytes, const std::shared_ptr<HostBlock>& owner);

// A serialized (small) message as a one-slice ByteBuffer.
grpc::ByteBuffer SerializeSmall(const google::protobuf::MessageLite& message);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_WIRE_RESPONSE_H_
