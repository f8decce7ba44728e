// cpu_backend.cc: placeholder until the fast CPU backend lands.
#include "../common/backends.h"
namespace hbsa::internal {
absl::Status RunCpu(const AttentionArgs&, const BlockLayout&, const VisitList&, const RunOptions&) {
  return absl::UnimplementedError("backend cpu: not yet implemented");
}
}  // namespace hbsa::internal
