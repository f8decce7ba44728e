// server/wire_response.cc: hand-framed AttendResponse over output memory (see the header).
#include "wire_response.h"

#include <chrono>
#include <vector>

#include <grpcpp/support/slice.h>

#include "wire/tensor_wire.h"

namespace hbsa::server {
namespace {

using wire::PutKey;
using wire::PutVarint;
using wire::TensorHeader;

// Keeps a HostBlock alive for as long as gRPC holds a slice into it.
void ReleaseOwner(void* p) { delete static_cast<std::shared_ptr<HostBlock>*>(p); }

}  // namespace

grpc::Slice OwnedSlice(const char* data, size_t bytes, const std::shared_ptr<HostBlock>& owner) {
  return grpc::Slice(const_cast<char*>(data), bytes, ReleaseOwner,
                     new std::shared_ptr<HostBlock>(owner));
}

std::shared_ptr<HostBlock> HeapBlock(size_t bytes) {
  char* p = new char[bytes > 0 ? bytes : 1];
  return std::make_shared<HostBlock>(p, bytes, [p] { delete[] p; });
}

grpc::ByteBuffer BuildAttendResponse(const ResponseParts& r) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<grpc::Slice> slices;
  std::string head;
  if (!r.request_id.empty()) {
    PutKey(1, 2, &head);
    PutVarint(r.request_id.size(), &head);
    head += r.request_id;
  }
  head += TensorHeader(2, r.dtype, r.out_shape, 3, r.out_bytes);
  slices.emplace_back(head);
  if (r.out_bytes > 0) slices.push_back(OwnedSlice(r.out, r.out_bytes, r.owner));
  if (r.has_lse) {
    slices.emplace_back(TensorHeader(3, 3 /* DTYPE_FLOAT32 */, r.lse_shape, 2, r.lse_bytes));
    if (r.lse_bytes > 0) slices.push_back(OwnedSlice(r.lse, r.lse_bytes, r.owner));
  }
  v1::AttendResponse tail;  // the small fields, serialized by protobuf
  *tail.mutable_timings() = r.timings;
  // Framing time up to here (the timings themselves are the last few bytes).
  tail.mutable_timings()->set_response_seconds(
      r.timings.response_seconds() +
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  tail.set_backend(r.backend);
  tail.set_device(r.device);
  if (!r.kernel.empty()) tail.set_kernel(r.kernel);
  slices.emplace_back(tail.SerializeAsString());
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer SerializeSmall(const google::protobuf::MessageLite& message) {
  grpc::Slice s(message.SerializeAsString());
  return grpc::ByteBuffer(&s, 1);
}

}  // namespace hbsa::server
