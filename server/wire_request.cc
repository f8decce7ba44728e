// server/wire_request.cc: the protobuf wire format of AttendRequest's tensors (see the header).
//
// Wire format (protobuf encoding): a message is a sequence of fields, each a varint key
// (field_number << 3 | wire_type) and a payload: type 0 varint, 1 eight bytes, 2 a varint
// length and that many bytes, 5 four bytes (3 and 4, groups, are not used by proto3 and are
// refused here as protobuf's parser refuses them in messages without groups).
#include "wire_request.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace hbsa::server {
namespace {

constexpr int kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5;
// AttendRequest's tensor fields and Tensor's fields (proto/hbsa/v1/attention.proto).
constexpr uint64_t kFieldQ = 2, kFieldK = 3, kFieldV = 4;
constexpr uint64_t kTensorDType = 1, kTensorShape = 2, kTensorData = 3, kTensorShm = 4;

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("request is not a valid hbsa.v1.AttendRequest: ", what));
}

// Sequential reader over fragments.
class Reader {
 public:
  explicit Reader(const std::vector<Fragment>& f) : f_(f) { Settle(); }

  bool done() const { return i_ >= f_.size(); }

  bool Byte(uint8_t* b) {
    if (done()) return false;
    *b = static_cast<uint8_t>(f_[i_].data[off_]);
    Advance(1);
    return true;
  }

  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      uint8_t b = 0;
      if (!Byte(&b)) return false;
      if (shift == 63 && (b & 0x7e) != 0) return false;  // past 64 bits
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  // The next n bytes as fragments (no copy).
  bool Take(uint64_t n, FragmentList* out) {
    out->pieces.clear();
    out->bytes = 0;
    while (n > 0) {
      if (done()) return false;
      const size_t avail = f_[i_].size - off_;
      const size_t take = n < avail ? static_cast<size_t>(n) : avail;
      out->pieces.push_back({f_[i_].data + off_, take});
      out->bytes += take;
      Advance(take);
      n -= take;
    }
    return true;
  }

  // Appends the next n bytes to `s` (a copy: small fields only).
  bool Append(uint64_t n, std::string* s) {
    FragmentList l;
    if (!Take(n, &l)) return false;
    const size_t at = s->size();
    s->resize(at + l.bytes);
    l.CopyTo(s->data() + at);
    return true;
  }

 private:
  void Advance(size_t n) {
    off_ += n;
    Settle();
  }
  void Settle() {
    while (i_ < f_.size() && off_ >= f_[i_].size) {
      off_ = 0;
      ++i_;
    }
  }

  const std::vector<Fragment>& f_;
  size_t i_ = 0, off_ = 0;
};

void PutVarint(uint64_t v, std::string* s) {
  while (v >= 0x80) {
    s->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s->push_back(static_cast<char>(v));
}

// Copies one field's payload (after its key) into `s`, or skips it when `s` is null.
bool CopyPayload(Reader* r, int wire_type, std::string* s) {
  std::string scratch;
  std::string* dst = s != nullptr ? s : &scratch;
  switch (wire_type) {
    case kVarint: {
      uint64_t v = 0;
      if (!r->Varint(&v)) return false;
      PutVarint(v, dst);
      return true;
    }
    case kFixed64: return r->Append(8, dst);
    case kFixed32: return r->Append(4, dst);
    case kLen: {
      uint64_t n = 0;
      if (!r->Varint(&n)) return false;
      PutVarint(n, dst);
      return r->Append(n, dst);
    }
    default: return false;
  }
}

absl::Status ParseTensor(const FragmentList& body, const char* name, WireTensor* t) {
  Reader r(body.pieces);
  while (!r.done()) {
    uint64_t key = 0;
    if (!r.Varint(&key)) return Malformed(absl::StrCat(name, ": truncated field key"));
    const uint64_t field = key >> 3;
    const int wt = static_cast<int>(key & 7);
    if (field == 0) return Malformed(absl::StrCat(name, ": field number 0"));
    if (field == kTensorDType && wt == kVarint) {
      uint64_t v = 0;
      if (!r.Varint(&v)) return Malformed(absl::StrCat(name, ".dtype: truncated"));
      t->dtype = static_cast<int>(static_cast<int32_t>(v));
    } else if (field == kTensorShape && wt == kVarint) {
      uint64_t v = 0;
      if (!r.Varint(&v)) return Malformed(absl::StrCat(name, ".shape: truncated"));
      t->shape.push_back(static_cast<int64_t>(v));
    } else if (field == kTensorShape && wt == kLen) {  // packed
      uint64_t n = 0;
      std::string packed;
      if (!r.Varint(&n) || !r.Append(n, &packed)) return Malformed(absl::StrCat(name, ".shape: truncated"));
      const std::vector<Fragment> one = {Fragment{packed.data(), packed.size()}};
      Reader p(one);
      while (!p.done()) {
        uint64_t v = 0;
        if (!p.Varint(&v)) return Malformed(absl::StrCat(name, ".shape: bad packed varint"));
        t->shape.push_back(static_cast<int64_t>(v));
      }
    } else if (field == kTensorData && wt == kLen) {
      uint64_t n = 0;
      if (!r.Varint(&n) || !r.Take(n, &t->data)) return Malformed(absl::StrCat(name, ".data: truncated"));
    } else if (field == kTensorShm && wt == kLen) {
      uint64_t n = 0;
      std::string bytes;
      if (!r.Varint(&n) || !r.Append(n, &bytes)) return Malformed(absl::StrCat(name, ".shm: truncated"));
      if (!t->shm.MergeFromString(bytes)) return Malformed(absl::StrCat(name, ".shm: not a SharedMemoryRef"));
      t->has_shm = true;
    } else if (!CopyPayload(&r, wt, nullptr)) {
      return Malformed(absl::StrCat(name, ": truncated or unsupported field ", field));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* FragmentList::Contiguous() const {
  if (pieces.empty()) return "";
  return pieces.size() == 1 ? pieces[0].data : nullptr;
}

void FragmentList::CopyTo(char* dst) const {
  for (const Fragment& f : pieces) {
    std::memcpy(dst, f.data, f.size);
    dst += f.size;
  }
}

absl::Status ParseAttendRequest(const std::vector<Fragment>& fragments, ParsedRequest* out) {
  Reader r(fragments);
  std::string rest;  // every non-tensor field, re-encoded as received
  int64_t total = 0;
  for (const Fragment& f : fragments) total += static_cast<int64_t>(f.size);
  out->wire_bytes = total;
  while (!r.done()) {
    uint64_t key = 0;
    if (!r.Varint(&key)) return Malformed("truncated field key");
    const uint64_t field = key >> 3;
    const int wt = static_cast<int>(key & 7);
    if (field == 0) return Malformed("field number 0");
    if ((field == kFieldQ || field == kFieldK || field == kFieldV) && wt == kLen) {
      uint64_t n = 0;
      FragmentList body;
      if (!r.Varint(&n) || !r.Take(n, &body)) return Malformed("truncated tensor");
      WireTensor* t = field == kFieldQ ? &out->q : field == kFieldK ? &out->k : &out->v;
      const char* name = field == kFieldQ ? "q" : field == kFieldK ? "k" : "v";
      if (absl::Status s = ParseTensor(body, name, t); !s.ok()) return s;
      continue;
    }
    PutVarint(key, &rest);
    if (!CopyPayload(&r, wt, &rest)) return Malformed(absl::StrCat("truncated or unsupported field ", field));
  }
  if (!out->meta.ParseFromString(rest)) return Malformed("the non-tensor fields do not parse");
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
