// plan_launch.cu: launch of the device-side planner (plan_kernel.cuh).
#include "launch.h"
#include "plan_kernel.cuh"

namespace hbsa::cuda_internal {

cudaError_t LaunchPlan(const KernelParams& p, cudaStream_t stream) {
  const int64_t rows = int64_t{p.num_heads_k} * p.num_q_tiles;
  if (rows == 0) return cudaSuccess;
  const int64_t blocks = CeilDiv(rows, kPlanWarpsPerBlock);
  PlanVisitsKernel<<<static_cast<unsigned>(blocks), kPlanWarpsPerBlock * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace hbsa::cuda_internal
