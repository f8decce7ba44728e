// server/shm.h: registered POSIX shared-memory regions (same-host callers skip the socket).
//
// A caller creates a shared-memory object (shm_open + ftruncate), registers a byte range of it
// once (RegisterSharedMemory), and names region + offset + size in its requests instead of
// sending tensor bytes; outputs can be written there too. The model is Triton's system shared
// memory. The registry maps the range read-write at registration (refused with
// PERMISSION_DENIED when the server may not) and hands out references that keep the mapping
// alive, so a region unregistered while requests use it is unmapped only after they finish.
// An executor may pin the mapping for DMA (`on_map` / `on_unmap` hooks; the CUDA executor
// registers it with cudaHostRegister) so its bytes go to and from the GPU without a copy.
// Thread-safe.
#ifndef HBSA_SERVER_SHM_H_
#define HBSA_SERVER_SHM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hbsa/v1/attention.pb.h"

namespace hbsa::server {

// One mapped range; unmapped (and unpinned) when the last reference goes.
class ShmMapping {
 public:
  ShmMapping(void* base, size_t map_bytes, char* range, size_t range_bytes,
             std::function<void(void*, size_t)> on_unmap);
  ~ShmMapping();
  ShmMapping(const ShmMapping&) = delete;
  ShmMapping& operator=(const ShmMapping&) = delete;
  char* data() const { return range_; }     // the registered range's first byte
  size_t bytes() const { return range_bytes_; }
  bool pinned = false;                      // set by the on_map hook when DMA-capable

 private:
  void* base_;
  size_t map_bytes_;
  char* range_;
  size_t range_bytes_;
  std::function<void(void*, size_t)> on_unmap_;
};

// A resolved SharedMemoryRef: `data` lies inside `mapping`.
struct ShmSpan {
  std::shared_ptr<ShmMapping> mapping;
  char* data = nullptr;
  size_t bytes = 0;
  int64_t region_offset = 0;  // offset inside the registered range (overlap checks)
  std::string region;
};

class ShmRegistry {
 public:
  // Hooks run on the registered range (data(), bytes()) after mapping it and, when the map
  // hook set `pinned`, before unmapping it (may be empty).
  using MapHook = std::function<void(ShmMapping*)>;
  using UnmapHook = std::function<void(void*, size_t)>;
  ShmRegistry(MapHook on_map = nullptr, UnmapHook on_unmap = nullptr);

  absl::Status Register(const v1::RegisterSharedMemoryRequest& request);
  absl::Status Unregister(const std::string& name);

  // Resolves `ref` for a tensor of exactly `want_bytes` bytes; `field` names it in errors
  // ("q.shm"). INVALID_ARGUMENT for an unknown region, a negative offset, a size that differs
  // from `want_bytes`, or a range past the registration's end.
  absl::StatusOr<ShmSpan> Resolve(const v1::SharedMemoryRef& ref, int64_t want_bytes,
                                  const std::string& field) const;

  size_t size() const;

 private:
  MapHook on_map_;
  UnmapHook on_unmap_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ShmMapping>> regions_;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SHM_H_
