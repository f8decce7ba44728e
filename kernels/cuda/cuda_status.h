// cuda_status.h (internal): the one mapping from cudaError_t to absl::Status for this backend.
//   cudaSuccess                     -> OK
//   out of device or pinned memory  -> RESOURCE_EXHAUSTED
//   no device / no usable driver    -> UNAVAILABLE
//   errors that poison the context  -> INTERNAL, message prefixed "sticky CUDA error:", and
//                                      marked with hbsa::MarkDeviceLost (hbsa/device_status.h)
//   anything else (a failed launch) -> INTERNAL
#ifndef HBSA_CUDA_CUDA_STATUS_H_
#define HBSA_CUDA_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include <string_view>

#include "absl/status/status.h"

namespace hbsa::cuda_internal {

// True for errors after which the CUDA context is unusable until the process exits.
bool IsStickyError(cudaError_t err);

// `what` names the failed step, e.g. "cudaMalloc of the request buffer".
absl::Status CudaStatus(cudaError_t err, std::string_view what);

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_CUDA_STATUS_H_
