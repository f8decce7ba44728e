// cuda_unavailable.cc: RunCuda for builds without HBSA_WITH_CUDA.
#include "backends.h"

namespace hbsa::internal {

absl::Status RunCuda(const AttentionArgs&, const RunOptions&) {
  return absl::UnimplementedError(
      "backend cuda is not compiled into this build (configure with -DHBSA_WITH_CUDA=ON and a "
      "CUDA compiler)");
}

}  // namespace hbsa::internal
