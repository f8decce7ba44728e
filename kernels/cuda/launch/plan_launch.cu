// launch/plan_launch.cu: launches of the device-side planners (device/plan_kernel.cuh): one warp
// per (KV head, query tile) row.
#include "device/plan_kernel.cuh"
#include "launch/launch.h"

namespace hbsa::cuda_internal {
namespace {

template <typename Kernel>
LaunchResult LaunchPlanner(Kernel kernel, const KernelParams& p, cudaStream_t stream) {
  const int64_t rows = int64_t{p.num_heads_k} * p.num_q_tiles;
  if (rows == 0) return {};
  const int64_t blocks = CeilDiv(rows, kPlanWarpsPerBlock);
  kernel<<<static_cast<unsigned>(blocks), kPlanWarpsPerBlock * 32, 0, stream>>>(p);
  return {cudaGetLastError(), "kernel launch"};
}

}  // namespace

LaunchResult LaunchPlanTiles(const KernelParams& p, cudaStream_t stream) {
  return LaunchPlanner(PlanTilesKernel, p, stream);
}

LaunchResult LaunchPlanChunks(const KernelParams& p, cudaStream_t stream) {
  return LaunchPlanner(PlanChunksKernel, p, stream);
}

}  // namespace hbsa::cuda_internal
