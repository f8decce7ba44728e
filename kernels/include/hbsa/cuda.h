// hbsa/cuda.h: the asynchronous CUDA entry points the service's executor drives.
//
// hbsa::Run(Backend::kCuda, ...) is the simple synchronous path (host buffers in and out). A
// server that overlaps many requests on several streams uses these instead, so that each
// request costs one host-to-device copy, one kernel sequence and one device-to-host copy on one
// stream, with no host synchronisation in between:
//
//   auto layout = hbsa::cuda::PlanRequest(args);            // host only; UNIMPLEMENTED if the
//                                                           // configuration is not supported
//   hbsa::cuda::PackInputs(args, *layout, pinned);           // fill pinned staging memory
//   cudaMemcpyAsync(dev, pinned, layout->input_bytes, H2D, stream);
//   hbsa::cuda::Enqueue(args, *layout, dev, stream);         // device planning + attention
//   cudaMemcpyAsync(pinned_out, dev + layout->out_offset, layout->output_bytes, D2H, stream);
//   cudaEventRecord(done, stream);                           // completion, polled or waited on
//
// `args` must have passed hbsa::Validate. Its host buffers are read by PackInputs only;
// Enqueue reads only shapes and scalars (and the host cu_seqlens to size the grid). Nothing
// here synchronises the device or the stream, allocates device memory, or aborts: launch
// errors come back as INTERNAL statuses carrying the CUDA error name. A sticky CUDA error
// (the context is unusable) is marked with hbsa::MarkDeviceLost (hbsa/device_status.h; the
// message also starts "sticky CUDA error:") so the caller can stop using the device.
#ifndef HBSA_CUDA_H_
#define HBSA_CUDA_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hbsa/attention.h"

namespace hbsa::cuda {

// Byte offsets into the single device buffer one request uses. Inputs occupy
// [0, input_bytes) so they travel in one copy; outputs occupy
// [out_offset, out_offset + output_bytes) so they return in one copy; the workspace used by
// device-side planning lies elsewhere in [0, total_bytes). Offsets are 256-byte aligned.
struct RequestLayout {
  size_t input_bytes = 0;   // packed inputs: q, k, v, cu_seqlens, mask, derived layout arrays
  size_t out_offset = 0;    // out [total_q, Hq, D] in args.dtype
  size_t lse_offset = 0;    // lse [total_q, Hq] fp32, directly after out (when requested)
  size_t output_bytes = 0;  // out, plus lse when requested
  size_t total_bytes = 0;   // everything, workspace included: the device memory to reserve
  // Backend-private offsets of the packed pieces (filled by PlanRequest, used by PackInputs
  // and Enqueue).
  std::vector<size_t> offsets;
};

// Sizes one request. UNIMPLEMENTED for a valid configuration the kernels do not cover (e.g. a
// head dim without a compiled tile), never a wrong answer later.
absl::StatusOr<RequestLayout> PlanRequest(const AttentionArgs& args);

// Copies the inputs of `args` (host memory) into `dst` (input_bytes, ideally pinned).
void PackInputs(const AttentionArgs& args, const RequestLayout& layout, void* dst);

// Enqueues device-side planning and the attention kernels on `stream`. `device_base` is a
// device allocation of at least layout.total_bytes whose [0, input_bytes) holds (or will hold,
// by earlier work on `stream`) the packed inputs.
absl::Status Enqueue(const AttentionArgs& args, const RequestLayout& layout, void* device_base,
                     cudaStream_t stream);

// Head dims with specialised full-speed kernels (others up to kMaxHeadDim use a generic tile).
std::vector<int32_t> FastHeadDims();

}  // namespace hbsa::cuda

#endif  // HBSA_CUDA_H_
