// server/range_allocator.h: first-fit sub-allocation of one big buffer (device or pinned arena).
//
// The CUDA executor allocates its device memory and its pinned staging memory once at start
// and carves requests out of them with this allocator, so the hot path never calls cudaMalloc,
// cudaMallocAsync or cudaHostAlloc. Offsets are aligned to kAlign; freed ranges coalesce with
// their neighbours. Not thread-safe (the executor guards it with its own lock). Pure host code,
// unit-tested on the CPU.
#ifndef HBSA_SERVER_RANGE_ALLOCATOR_H_
#define HBSA_SERVER_RANGE_ALLOCATOR_H_

#include <cstddef>
#include <map>
#include <optional>

namespace hbsa::server {

class RangeAllocator {
 public:
  static constexpr size_t kAlign = 256;
  explicit RangeAllocator(size_t capacity);

  // The offset of `bytes` (rounded up to kAlign; 0 counts as kAlign) free bytes, first fit;
  // nullopt when no free range is large enough.
  std::optional<size_t> Allocate(size_t bytes);
  // Returns a range given by Allocate (same `bytes`).
  void Free(size_t offset, size_t bytes);

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  static size_t Rounded(size_t bytes);

 private:
  size_t capacity_;
  size_t used_ = 0;
  std::map<size_t, size_t> free_;  // offset -> length, disjoint, not adjacent
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_RANGE_ALLOCATOR_H_
