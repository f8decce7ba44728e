// launch/launch.h (internal): host-side entry points of the kernels of kernels/cuda/device/.
// Each returns the CUDA error of its own steps and names the step that failed, so a failure is
// attributed to the launch that caused it (request.cc turns it into a Status naming the kernel
// instance); none synchronises.
#ifndef HBSA_CUDA_LAUNCH_LAUNCH_H_
#define HBSA_CUDA_LAUNCH_LAUNCH_H_

#include <cuda_runtime_api.h>

#include "hbsa/attention.h"
#include "params.h"

namespace hbsa::cuda_internal {

// The outcome of one launch sequence: cudaSuccess, or the error and the step that raised it.
struct LaunchResult {
  cudaError_t error = cudaSuccess;
  const char* step = "";  // e.g. "kernel launch", "TMA descriptor of k (16-key boxes)"
};

// plan_launch.cu: fills p.visit_count / p.visits on `stream`. PlanTiles: key-tile entries (the
// mma.sync and fp32 kernels); PlanChunks: chunk words (the wgmma kernel).
LaunchResult LaunchPlanTiles(const KernelParams& p, cudaStream_t stream);
LaunchResult LaunchPlanChunks(const KernelParams& p, cudaStream_t stream);

// mma_sync_launch.cuh, instantiated per (dtype, head dim, tile rows) in generated files
// (instances/instances.cmake).
template <typename T, int kD, int kBlockM, int kBlockN>
LaunchResult LaunchMmaSync(const KernelParams& p, cudaStream_t stream);

// wgmma_launch.cuh, instantiated per (dtype, head dim, tile rows) in generated files compiled
// for sm_90a only (the hbsa_cuda_wgmma object library, when the architectures name 90a).
template <typename T, int kD, int kBlockM>
LaunchResult LaunchWgmma(const KernelParams& p, cudaStream_t stream);

// wgmma_probe.cu (sm_90a builds): whether the sm_90a image can run on the current device.
bool WgmmaImageLoads();

// simt_fp32.cu: the exact fp32 path.
LaunchResult LaunchSimtFp32(const KernelParams& p, cudaStream_t stream);

// dispatch.cu: runs `kernel` (never kAuto) on the compiled instance for (dtype, D, tile rows);
// cudaErrorInvalidConfiguration with step "no compiled instance" when there is none (PlanRequest
// refuses those first).
LaunchResult LaunchAttention(CudaKernel kernel, DType dtype, const KernelParams& p,
                             cudaStream_t stream);

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_LAUNCH_LAUNCH_H_
