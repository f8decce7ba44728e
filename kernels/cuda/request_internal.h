// request_internal.h (internal): pieces of PlanRequest / PackInputs / Enqueue for callers inside
// the project: the kernel benchmark (bench/cuda/bench_capi.cc: q, k and v already on the device,
// copied device-to-device) and the CPU tests (a device's traits given instead of queried).
#ifndef HBSA_CUDA_REQUEST_INTERNAL_H_
#define HBSA_CUDA_REQUEST_INTERNAL_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "hbsa/cuda.h"
#include "heuristics.h"
#include "params.h"

namespace hbsa::cuda_internal {

// PlanRequest for a device with the given traits (PlanRequest passes the current device's).
absl::StatusOr<cuda::RequestLayout> PlanRequestFor(const AttentionArgs& args,
                                                   const DeviceTraits& device,
                                                   CudaKernel requested);

// Where q, k, v and the metadata go: cuda::InputOffsetsOf; filling the metadata:
// cuda::PackMetadata (both in hbsa/cuda.h).

// The kernels' parameters for a request whose buffer (laid out by `layout`) starts at `base`.
// Enqueue passes the device buffer; a CPU test may pass a host buffer filled by PackInputs and
// run the host+device planning code (device/chunk_mask.h) on it.
KernelParams ParamsFor(const AttentionArgs& args, const cuda::RequestLayout& layout, void* base);

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_REQUEST_INTERNAL_H_
