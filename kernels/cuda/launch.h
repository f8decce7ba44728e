// launch.h (internal): host-side entry points of the kernels in this folder. Each returns the
// CUDA error of its launch (cudaSuccess when nothing had to run); none synchronises.
#ifndef HBSA_CUDA_LAUNCH_H_
#define HBSA_CUDA_LAUNCH_H_

#include <cuda_runtime_api.h>

#include "hbsa/attention.h"
#include "params.h"

namespace hbsa::cuda_internal {

// plan_launch.cu: fills p.visit_count / p.visits on `stream`.
cudaError_t LaunchPlan(const KernelParams& p, cudaStream_t stream);

// attention_launch.cuh, instantiated per (dtype, head dim, tile shape) in attention_*.cu.
template <typename T, int kD, int kBlockM, int kBlockN>
cudaError_t LaunchTensorCore(const KernelParams& p, cudaStream_t stream);

// hopper_launch.cuh, instantiated per (dtype, head dim, query tile rows) in hopper_*.cu; those
// files are compiled for sm_90a only and exist when HBSA_HAVE_HOPPER is defined.
// kSimple: all threads load with cp.async, a CTA barrier per key tile (hopper_kernel.cuh);
// kWarpSpecialized: a TMA producer + mbarrier ring, P V overlapped with the next softmax
// (hopper_ws_kernel.cuh; D == 64 or 128 exactly, else kSimple).
enum class HopperVariant { kSimple, kWarpSpecialized };
template <typename T, int kD, int kBlockM>
cudaError_t LaunchHopper(const KernelParams& p, HopperVariant variant, cudaStream_t stream);
// hopper_d128_bf16.cu: whether the wgmma kernels' sm_90a image can run on the current device.
bool HopperImagePresent();

// simt_fp32.cu: the exact fp32 path.
cudaError_t LaunchSimtFp32(const KernelParams& p, cudaStream_t stream);

// dispatch.cu: maps (dtype, D, tile) to the compiled instance and launches it.
cudaError_t LaunchAttention(DType dtype, const KernelParams& p, cudaStream_t stream);

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_LAUNCH_H_
