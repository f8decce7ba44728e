// server/wire_response.cc: hand-framed AttendResponse over output memory (see the header).
#include "wire_response.h"

#include <chrono>
#include <vector>

#include <grpcpp/support/slice.h>

namespace hbsa::server {
namespace {

void PutVarint(uint64_t v, std::string* s) {
  while (v >= 0x80) {
    s->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s->push_back(static_cast<char>(v));
}

void PutKey(uint32_t field, int wire_type, std::string* s) {
  PutVarint((uint64_t{field} << 3) | static_cast<uint64_t>(wire_type), s);
}

// Tensor{dtype=1, shape=2 (packed), data=3 (header only: key and length)} framed as field
// `field` of the response, for `data_bytes` bytes of data that follow in their own slice.
std::string TensorHeader(uint32_t field, int dtype, const int64_t* shape, int rank,
                         size_t data_bytes) {
  std::string body;
  if (dtype != 0) {
    PutKey(1, 0, &body);
    PutVarint(static_cast<uint64_t>(static_cast<int64_t>(dtype)), &body);
  }
  std::string packed;
  for (int i = 0; i < rank; ++i) PutVarint(static_cast<uint64_t>(shape[i]), &packed);
  PutKey(2, 2, &body);
  PutVarint(packed.size(), &body);
  body += packed;
  if (data_bytes > 0) {
    PutKey(3, 2, &body);
    PutVarint(data_bytes, &body);
  }
  std::string out;
  PutKey(field, 2, &out);
  PutVarint(body.size() + data_bytes, &out);
  out += body;
  return out;
}

// Keeps a HostBlock alive for as long as gRPC holds a slice into it.
void ReleaseOwner(void* p) { delete static_cast<std::shared_ptr<HostBlock>*>(p); }

grpc::Slice OwnedSlice(const char* data, size_t bytes, const std::shared_ptr<HostBlock>& owner) {
  return grpc::Slice(const_cast<char*>(data), bytes, ReleaseOwner,
                     new std::shared_ptr<HostBlock>(owner));
}

}  // namespace

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
  slices.emplace_back(tail.SerializeAsString());
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer SerializeSmall(const google::protobuf::MessageLite& message) {
  grpc::Slice s(message.SerializeAsString());
  return grpc::ByteBuffer(&s, 1);
}

}  // namespace hbsa::server
