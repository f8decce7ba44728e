// run_sync.cc: hbsa::Run(Backend::kCuda, ...), the synchronous path. Selects the device, plans
// the request for it (RunOptions::cuda_kernel: kAuto or an explicit kernel), allocates the
// request's device buffer and pinned staging, then runs the same three steps the service's
// executor uses (PackInputs, Enqueue, copy back) on a private stream, waits, and frees
// everything. Every failure comes back as a status (cuda_status.h); nothing leaks on an error
// path.
#include <cuda_runtime_api.h>

#include <cstring>

#include "../common/backends.h"
#include "cuda_status.h"
#include "hbsa/cuda.h"

namespace hbsa::internal {
namespace {

using cuda_internal::CudaStatus;

// Owns one CUDA resource; the deleter runs on scope exit.
template <typename T, cudaError_t (*Free)(T)>
class Owned {
 public:
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() {
    if (value_ != T{}) Free(value_);
  }
  T* out() { return &value_; }
  T get() const { return value_; }

 private:
  T value_{};
};

}  // namespace

absl::Status RunCuda(const AttentionArgs& args, const RunOptions& options) {
  int device_count = 0;
  if (absl::Status s = CudaStatus(cudaGetDeviceCount(&device_count), "cudaGetDeviceCount");
      !s.ok()) {
    return s;
  }
  if (options.cuda_device < 0 || options.cuda_device >= device_count) {
    return absl::InvalidArgumentError("cuda_device must name one of the visible CUDA devices");
  }
  if (absl::Status s = CudaStatus(cudaSetDevice(options.cuda_device), "cudaSetDevice"); !s.ok()) {
    return s;
  }
  // Planned for the device just made current (its traits decide the kernel).
  absl::StatusOr<cuda::RequestLayout> layout =
      cuda::PlanRequest(args, cuda::PlanOptions{options.cuda_kernel});
  if (!layout.ok()) return layout.status();

  Owned<void*, cudaFreeHost> pinned_in, pinned_out;
  Owned<void*, cudaFree> device;
  Owned<cudaStream_t, cudaStreamDestroy> stream;
  absl::Status s = CudaStatus(cudaHostAlloc(pinned_in.out(), layout->input_bytes + 1, 0),
                              "cudaHostAlloc of the input staging");
  if (s.ok()) {
    s = CudaStatus(cudaHostAlloc(pinned_out.out(), layout->output_bytes + 1, 0),
                   "cudaHostAlloc of the output staging");
  }
  if (s.ok()) s = CudaStatus(cudaMalloc(device.out(), layout->total_bytes + 1), "cudaMalloc of the request buffer");
  if (s.ok()) s = CudaStatus(cudaStreamCreateWithFlags(stream.out(), cudaStreamNonBlocking), "cudaStreamCreate");
  if (!s.ok()) return s;

  cuda::PackInputs(args, *layout, pinned_in.get());
  s = CudaStatus(cudaMemcpyAsync(device.get(), pinned_in.get(), layout->input_bytes,
                                 cudaMemcpyHostToDevice, stream.get()),
                 "copy of the inputs to the device");
  if (s.ok()) s = cuda::Enqueue(args, *layout, device.get(), stream.get());
  if (s.ok()) {
    s = CudaStatus(cudaMemcpyAsync(pinned_out.get(),
                                   static_cast<char*>(device.get()) + layout->out_offset,
                                   layout->output_bytes, cudaMemcpyDeviceToHost, stream.get()),
                   "copy of the outputs to the host");
  }
  // Always drain the stream before the buffers are freed, even after a failed launch.
  const absl::Status sync = CudaStatus(cudaStreamSynchronize(stream.get()), "attention on the device");
  if (!s.ok()) return s;
  if (!sync.ok()) return sync;

  const size_t out_bytes = args.out.bytes;
  std::memcpy(args.out.data, pinned_out.get(), out_bytes);
  if (args.lse.data != nullptr) {
    std::memcpy(args.lse.data,
                static_cast<char*>(pinned_out.get()) + (layout->lse_offset - layout->out_offset),
                args.lse.bytes);
  }
  return absl::OkStatus();
}

}  // namespace hbsa::internal
