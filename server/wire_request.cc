// server/wire_request.cc: AttendRequest from received bytes (see the header).
#include "wire_request.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace hbsa::server {

absl::Status ParseAttendRequest(const std::vector<Fragment>& fragments, ParsedRequest* out) {
  // AttendRequest's tensor fields (proto/hbsa/v1/attention.proto): q = 2, k = 3, v = 4.
  std::string rest;
  if (absl::Status s = wire::SplitTensors(fragments, {2, 3, 4}, {&out->q, &out->k, &out->v},
                                          "hbsa.v1.AttendRequest", &rest);
      !s.ok()) {
    return s;
  }
  int64_t total = 0;
  for (const Fragment& f : fragments) total += static_cast<int64_t>(f.size);
  out->wire_bytes = total;
  if (!out->meta.ParseFromString(rest)) {
    return absl::InvalidArgumentError(
        "bytes are not a valid hbsa.v1.AttendRequest: the non-tensor fields do not parse");
  }
  return absl::OkStatus();
}
ParsedRequest ViewOfMessage(const v1::AttendRequest& request) {
  ParsedRequest p;
  p.meta = request;
  p.meta.clear_q();
  p.meta.clear_k();
  p.meta.clear_v();
  auto view = [](const v1::Tensor& t, WireTensor* w) {
    w->dtype = t.dtype();
    w->shape.assign(t.shape().begin(), t.shape().end());
    w->data.pieces.clear();
    if (!t.data().empty()) w->data.pieces.push_back({t.data().data(), t.data().size()});
    w->data.bytes = t.data().size();
    w->has_shm = t.has_shm();
    w->shm = t.shm();
  };
  view(request.q(), &p.q);
  view(request.k(), &p.k);
  view(request.v(), &p.v);
  p.wire_bytes = static_cast<int64_t>(request.ByteSizeLong());
  return p;
}

}  // namespace hbsa::server
