// proto/wire/tensor_wire.cc: see tensor_wire.h.
#include "wire/tensor_wire.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace hbsa::wire {
namespace {

constexpr int kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5;
// Tensor's fields (proto/hbsa/v1/attention.proto).
constexpr uint64_t kTensorDType = 1, kTensorShape = 2, kTensorData = 3, kTensorShm = 4;

absl::Status Malformed(const char* message, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(message, ": ", what));
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

absl::Status ParseTensor(const FragmentList& body, const char* message, const char* name,
                         WireTensor* t) {
  Reader r(body.pieces);
  while (!r.done()) {
    uint64_t key = 0;
    if (!r.Varint(&key)) return Malformed(message, absl::StrCat(name, ": truncated field key"));
    const uint64_t field = key >> 3;
    const int wt = static_cast<int>(key & 7);
    if (field == 0) return Malformed(message, absl::StrCat(name, ": field number 0"));
    if (field == kTensorDType && wt == kVarint) {
      uint64_t v = 0;
      if (!r.Varint(&v)) return Malformed(message, absl::StrCat(name, ".dtype: truncated"));
      t->dtype = static_cast<int>(static_cast<int32_t>(v));
    } else if (field == kTensorShape && wt == kVarint) {
      uint64_t v = 0;
      if (!r.Varint(&v)) return Malformed(message, absl::StrCat(name, ".shape: truncated"));
      t->shape.push_back(static_cast<int64_t>(v));
    } else if (field == kTensorShape && wt == kLen) {  // packed
      uint64_t n = 0;
      std::string packed;
      if (!r.Varint(&n) || !r.Append(n, &packed)) return Malformed(message, absl::StrCat(name, ".shape: truncated"));
      const std::vector<Fragment> one = {Fragment{packed.data(), packed.size()}};
      Reader p(one);
      while (!p.done()) {
        uint64_t v = 0;
        if (!p.Varint(&v)) return Malformed(message, absl::StrCat(name, ".shape: bad packed varint"));
        t->shape.push_back(static_cast<int64_t>(v));
      }
    } else if (field == kTensorData && wt == kLen) {
      uint64_t n = 0;
      if (!r.Varint(&n) || !r.Take(n, &t->data)) return Malformed(message, absl::StrCat(name, ".data: truncated"));
    } else if (field == kTensorShm && wt == kLen) {
      uint64_t n = 0;
      std::string bytes;
      if (!r.Varint(&n) || !r.Append(n, &bytes)) return Malformed(message, absl::StrCat(name, ".shm: truncated"));
      if (!t->shm.MergeFromString(bytes)) return Malformed(message, absl::StrCat(name, ".shm: not a SharedMemoryRef"));
      t->has_shm = true;
    } else if (!CopyPayload(&r, wt, nullptr)) {
      return Malformed(message, absl::StrCat(name, ": truncated or unsupported field ", field));
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

std::string TensorHeader(uint32_t field, int dtype, const int64_t* shape, int rank,
                         size_t data_bytes, const v1::SharedMemoryRef* shm) {
  std::string body;
  if (dtype != 0) {
    PutKey(1, kVarint, &body);
    PutVarint(static_cast<uint64_t>(static_cast<int64_t>(dtype)), &body);
  }
  std::string packed;
  for (int i = 0; i < rank; ++i) PutVarint(static_cast<uint64_t>(shape[i]), &packed);
  PutKey(2, kLen, &body);
  PutVarint(packed.size(), &body);
  body += packed;
  if (shm != nullptr) {
    const std::string ref = shm->SerializeAsString();
    PutKey(4, kLen, &body);
    PutVarint(ref.size(), &body);
    body += ref;
  }
  if (data_bytes > 0) {
    PutKey(3, kLen, &body);
    PutVarint(data_bytes, &body);
  }
  std::string out;
  PutKey(field, kLen, &out);
  PutVarint(body.size() + data_bytes, &out);
  out += body;
  return out;
}

absl::Status SplitTensors(const std::vector<Fragment>& fragments,
                          const std::vector<uint32_t>& tensor_fields,
                          const std::vector<WireTensor*>& tensors, const char* message,
                          std::string* rest) {
  Reader r(fragments);
  const std::string what = absl::StrCat("bytes are not a valid ", message);
  while (!r.done()) {
    uint64_t key = 0;
    if (!r.Varint(&key)) return Malformed(what.c_str(), "truncated field key");
    const uint64_t field = key >> 3;
    const int wt = static_cast<int>(key & 7);
    if (field == 0) return Malformed(what.c_str(), "field number 0");
    size_t which = tensor_fields.size();
    for (size_t i = 0; i < tensor_fields.size(); ++i) {
      if (tensor_fields[i] == field) which = i;
    }
    if (which < tensor_fields.size() && wt == kLen) {
      uint64_t n = 0;
      FragmentList body;
      if (!r.Varint(&n) || !r.Take(n, &body)) return Malformed(what.c_str(), "truncated tensor");
      const std::string name = absl::StrCat("field ", field);
      if (absl::Status s = ParseTensor(body, what.c_str(), name.c_str(), tensors[which]); !s.ok()) {
        return s;
      }
      continue;
    }
    PutVarint(key, rest);
    if (!CopyPayload(&r, wt, rest)) {
      return Malformed(what.c_str(), absl::StrCat("truncated or unsupported field ", field));
    }
  }
  return absl::OkStatus();
}

}  // namespace hbsa::wire
