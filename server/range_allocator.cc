// server/range_allocator.cc: see range_allocator.h.
#include "range_allocator.h"

namespace hbsa::server {

RangeAllocator::RangeAllocator(size_t capacity) : capacity_(capacity / kAlign * kAlign) {
  if (capacity_ > 0) free_[0] = capacity_;
}

size_t RangeAllocator::Rounded(size_t bytes) {
  return bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
}

std::optional<size_t> RangeAllocator::Allocate(size_t bytes) {
  const size_t want = Rounded(bytes);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < want) continue;
    const size_t at = it->first;
    const size_t left = it->second - want;
    free_.erase(it);
    if (left > 0) free_[at + want] = left;
    used_ += want;
    return at;
  }
  return std::nullopt;
}

void RangeAllocator::Free(size_t offset, size_t bytes) {
  size_t len = Rounded(bytes);
  used_ -= len;
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + len == next->first) {  // merge with the following range
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {  // merge with the preceding range
      prev->second += len;
      return;
    }
  }
  free_[offset] = len;
}

}  // namespace hbsa::server
