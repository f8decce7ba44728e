// hbsa/cuda.h: the asynchronous CUDA entry points the service's executor drives.
//
// hbsa::Run(Backend::kCuda, ...) is the simple synchronous path (host buffers in and out). A
// server that overlaps many requests on several streams uses these instead, so that each
// request costs one host-to-device copy, one kernel sequence and one device-to-host copy on one
// stream, with no host synchronisation in between:
//
//   auto layout = hbsa::cuda::PlanRequest(args);            // host only; UNIMPLEMENTED if the
//                                                           // configuration is not supported;
//                                                           // layout->kernel names the kernel
//   hbsa::cuda::PackInputs(args, *layout, pinned);           // fill pinned staging memory
//   cudaMemcpyAsync(dev, pinned, layout->input_bytes, H2D, stream);
//   hbsa::cuda::Enqueue(args, *layout, dev, stream);         // device planning + attention
//   cudaMemcpyAsync(pinned_out, dev + layout->out_offset, layout->output_bytes, D2H, stream);
//   cudaEventRecord(done, stream);                           // completion, polled or waited on
//
// `args` must have passed hbsa::Validate (or be built valid, like a server's merged batch of
// validated requests). Its host buffers are read by PackInputs only;
// Enqueue reads only shapes and scalars (and the host cu_seqlens to size the grid). Nothing
// here synchronises the device or the stream, allocates device memory, or aborts: launch
// errors come back as INTERNAL statuses naming the step that failed (the planner launch, the
// attention kernel's launch with its instance, a TMA descriptor) and the CUDA error. A sticky
// CUDA error (the context is unusable) is marked with hbsa::MarkDeviceLost (hbsa/device_status.h;
// the message also starts "sticky CUDA error:") so the caller can stop using the device; one left
// pending by earlier work on the thread is reported as such, not as this request's launch failure.
#ifndef HBSA_CUDA_H_
#define HBSA_CUDA_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
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
  // The kernel Enqueue runs (never kAuto once planned): CudaKernelName(kernel) is what the
  // service reports (AttendResponse.kernel) and the benchmark prints.
  CudaKernel kernel = CudaKernel::kAuto;
  // Backend-private: offsets of the packed pieces and the compute-tile geometry chosen with the
  // kernel (filled by PlanRequest, used by PackInputs and Enqueue).
  std::vector<size_t> offsets;
  int32_t tile_rows = 0;    // query-tile rows (= tile_q_rows * tile_heads)
  int32_t tile_q_rows = 0;  // query rows of one head per tile
  int32_t tile_heads = 0;   // query heads packed into one tile (GQA)
  int32_t tile_keys = 0;    // key rows per key tile
};

// How a request is planned.
struct PlanOptions {
  // kAuto: the kernel a pure function of the current device (compute capability, whether the
  // binary's sm_90a image loads) and the request chooses. Anything else: that kernel, or
  // UNIMPLEMENTED when it cannot run this request on this device (A/B runs, tests).
  CudaKernel kernel = CudaKernel::kAuto;
};

// Sizes one request for the current device (cudaGetDevice; its traits are cached, nothing
// synchronises). UNIMPLEMENTED for a valid configuration the kernels do not cover (e.g. a head
// dim without a compiled tile, or an explicit kernel that cannot run it), never a wrong answer
// later.
absl::StatusOr<RequestLayout> PlanRequest(const AttentionArgs& args,
                                          const PlanOptions& options = {});

// Copies the inputs of `args` (host memory) into `dst` (input_bytes, ideally pinned).
void PackInputs(const AttentionArgs& args, const RequestLayout& layout, void* dst);

// For callers that place q, k and v themselves (a server copying them from scattered network
// buffers straight into pinned memory, merging several requests' tensors into one batch, or
// reading them from memory the device can DMA from directly): where each tensor starts in the
// input region, and PackMetadata, which fills the rest of it ([metadata, input_bytes): the
// cu_seqlens, layout arrays, tile table and mask) and reads only shapes, cu_seqlens and the
// mask of `args` (q/k/v data may be null). PackInputs = the three tensors + PackMetadata.
struct InputOffsets {
  size_t q = 0, k = 0, v = 0;  // byte offsets of q, k and v in [0, input_bytes)
  size_t metadata = 0;         // [metadata, input_bytes) is what PackMetadata writes
};
InputOffsets InputOffsetsOf(const RequestLayout& layout);
void PackMetadata(const AttentionArgs& args, const RequestLayout& layout, void* dst);

// Enqueues device-side planning and the attention kernels on `stream`. `device_base` is a
// device allocation of at least layout.total_bytes whose [0, input_bytes) holds (or will hold,
// by earlier work on `stream`) the packed inputs.
absl::Status Enqueue(const AttentionArgs& args, const RequestLayout& layout, void* device_base,
                     cudaStream_t stream);

// Head dims with specialised full-speed kernels (others up to kMaxHeadDim use a generic tile):
// the compiled head dims of the fastest kernel family in this build (generated list).
std::vector<int32_t> FastHeadDims();

// The kernels this build can run on the current device, in the order kAuto prefers them
// (the service lists them in GetCapabilities).
std::vector<CudaKernel> DeviceKernels();

}  // namespace hbsa::cuda

#endif  // HBSA_CUDA_H_
