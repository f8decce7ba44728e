// server/shm.cc: POSIX shared-memory registrations (see shm.h).
#include "shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace hbsa::server {

ShmMapping::ShmMapping(void* base, size_t map_bytes, char* range, size_t range_bytes,
                       std::function<void(void*, size_t)> on_unmap)
    : base_(base), map_bytes_(map_bytes), range_(range), range_bytes_(range_bytes),
      on_unmap_(std::move(on_unmap)) {}

ShmMapping::~ShmMapping() {
  if (pinned && on_unmap_) on_unmap_(range_, range_bytes_);
  munmap(base_, map_bytes_);
}

ShmRegistry::ShmRegistry(MapHook on_map, UnmapHook on_unmap)
    : on_map_(std::move(on_map)), on_unmap_(std::move(on_unmap)) {}

absl::Status ShmRegistry::Register(const v1::RegisterSharedMemoryRequest& r) {
  if (r.name().empty() || r.name().size() > 256) {
    return absl::InvalidArgumentError("name must hold 1 to 256 characters");
  }
  if (r.key().size() < 2 || r.key()[0] != '/' || r.key().find('/', 1) != std::string::npos ||
      r.key().size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key must be a POSIX shared-memory name: \"/\" then 1 to 254 characters without \"/\"; got \"",
        r.key(), "\""));
  }
  if (r.offset() < 0) return absl::InvalidArgumentError(absl::StrCat("offset must be >= 0; got ", r.offset()));
  if (r.byte_size() < 1) {
    return absl::InvalidArgumentError(absl::StrCat("byte_size must be >= 1; got ", r.byte_size()));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (regions_.count(r.name()) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("region \"", r.name(), "\" is already registered"));
    }
  }
  const int fd = shm_open(r.key().c_str(), O_RDWR, 0);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat("key ", r.key(), ": no such shared-memory object"));
    if (e == EACCES) {
      return absl::PermissionDeniedError(absl::StrCat("key ", r.key(), ": the server may not open it read-write"));
    }
    return absl::InvalidArgumentError(absl::StrCat("key ", r.key(), ": shm_open: ", std::strerror(e)));
  }
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("key ", r.key(), ": fstat: ", std::strerror(errno)));
  }
  const int64_t size = static_cast<int64_t>(st.st_size);
  if (r.offset() > size || r.byte_size() > size - r.offset()) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        "offset + byte_size (", r.offset(), " + ", r.byte_size(), ") must be <= the size of ",
        r.key(), " (", size, " bytes)"));
  }
  // Map from the page holding `offset`.
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t start = r.offset() / page * page;
  const size_t map_bytes = static_cast<size_t>(r.offset() - start + r.byte_size());
  void* base = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, start);
  const int map_errno = errno;
  close(fd);
  if (base == MAP_FAILED) {
    if (map_errno == EACCES) {
      return absl::PermissionDeniedError(absl::StrCat("key ", r.key(), ": the server may not map it read-write"));
    }
    return absl::ResourceExhaustedError(absl::StrCat("key ", r.key(), ": mmap: ", std::strerror(map_errno)));
  }
  auto mapping = std::make_shared<ShmMapping>(base, map_bytes,
                                              static_cast<char*>(base) + (r.offset() - start),
                                              static_cast<size_t>(r.byte_size()), on_unmap_);
  if (on_map_) on_map_(mapping.get());
  std::lock_guard<std::mutex> lock(mu_);
  if (!regions_.emplace(r.name(), std::move(mapping)).second) {
    return absl::AlreadyExistsError(absl::StrCat("region \"", r.name(), "\" is already registered"));
  }
  return absl::OkStatus();
}

absl::Status ShmRegistry::Unregister(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (regions_.erase(name) == 0) {
    return absl::NotFoundError(absl::StrCat("region \"", name, "\" is not registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ShmSpan> ShmRegistry::Resolve(const v1::SharedMemoryRef& ref, int64_t want_bytes,
                                             const std::string& field) const {
  std::shared_ptr<ShmMapping> m;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = regions_.find(ref.region());
    if (it != regions_.end()) m = it->second;
  }
  if (m == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".region \"", ref.region(),
                                                   "\" is not registered (RegisterSharedMemory)"));
  }
  if (ref.byte_size() != want_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".byte_size must be ", want_bytes,
                                                   " (the tensor's size); got ", ref.byte_size()));
  }
  const int64_t range = static_cast<int64_t>(m->bytes());
  if (ref.offset() < 0 || ref.offset() > range || ref.byte_size() > range - ref.offset()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": offset + byte_size (", ref.offset(), " + ", ref.byte_size(),
        ") must lie inside region \"", ref.region(), "\" (", range, " bytes)"));
  }
  ShmSpan s;
  s.data = m->data() + ref.offset();
  s.bytes = static_cast<size_t>(ref.byte_size());
  s.region_offset = ref.offset();
  s.region = ref.region();
  s.mapping = std::move(m);
  return s;
}

size_t ShmRegistry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return regions_.size();
}

}  // namespace hbsa::server
