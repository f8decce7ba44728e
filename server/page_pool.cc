// server/page_pool.cc: the page pool's free list (see page_pool.h).
#include "page_pool.h"

#include <algorithm>
#include <limits>

namespace hbsa::server {

PagePool::PagePool(int64_t budget_bytes, int64_t page_bytes)
    : page_bytes_(std::max<int64_t>(page_bytes, 1)),
      total_pages_(std::min<int64_t>(std::max<int64_t>(budget_bytes, 0) / page_bytes_,
                                     std::numeric_limits<int32_t>::max())),
      slab_(total_pages_ > 0 ? new char[total_pages_ * page_bytes_] : nullptr) {
  free_.reserve(static_cast<size_t>(total_pages_));
  // Highest index at the bottom, so a fresh pool hands out pages 0, 1, 2, ...
  for (int64_t p = total_pages_ - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

bool PagePool::Allocate(int64_t n, std::vector<int32_t>* pages) {
  if (n < 0 || n > free_pages()) return false;
  for (int64_t i = 0; i < n; ++i) {
    pages->push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void PagePool::Free(const std::vector<int32_t>& pages) {
  free_.insert(free_.end(), pages.begin(), pages.end());
}

}  // namespace hbsa::server
