// server/page_pool.h: fixed-size pages of session K/V memory, one pool per device.
//
// The pool carves one slab (`total_pages` pages of `page_bytes` each, taken once at start) into
// pages handed out by index; a sequence's K/V live in the pages its page table lists, in any
// order, so memory never fragments externally: any `n` free pages serve any request for `n`
// pages (as in vLLM's PagedAttention). Allocation is all or nothing, so a refused request
// leaves the pool as it was. The slab is host memory in this first step on every backend (the
// server gathers a call's pages into the packed layout the kernels read; see session_store.h).
//
// Not thread-safe: the SessionStore serialises every use under its lock.
#ifndef HBSA_SERVER_PAGE_POOL_H_
#define HBSA_SERVER_PAGE_POOL_H_

#include <cstdint>
#include <memory>
#include <vector>

namespace hbsa::server {

class PagePool {
 public:
  // budget_bytes / page_bytes pages (the remainder is not used); page_bytes >= 1. The slab is
  // reserved here (virtual memory; the OS maps pages as they are first written).
  PagePool(int64_t budget_bytes, int64_t page_bytes);
  PagePool(const PagePool&) = delete;
  PagePool& operator=(const PagePool&) = delete;

  int64_t page_bytes() const { return page_bytes_; }
  int64_t total_pages() const { return total_pages_; }
  int64_t free_pages() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_pages() const { return total_pages_ - free_pages(); }

  // Appends `n` page indices to *pages and returns true, or returns false and changes nothing
  // when fewer than `n` pages are free.
  bool Allocate(int64_t n, std::vector<int32_t>* pages);
  // Returns pages to the pool. Each must have come from Allocate and not be freed already.
  void Free(const std::vector<int32_t>& pages);

  // The bytes of page `page` (page_bytes of them).
  char* data(int32_t page) { return slab_.get() + static_cast<int64_t>(page) * page_bytes_; }
  const char* data(int32_t page) const {
    return slab_.get() + static_cast<int64_t>(page) * page_bytes_;
  }

 private:
  const int64_t page_bytes_;
  const int64_t total_pages_;
  std::unique_ptr<char[]> slab_;
  std::vector<int32_t> free_;  // a stack: the most recently freed page is reused first
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_PAGE_POOL_H_
