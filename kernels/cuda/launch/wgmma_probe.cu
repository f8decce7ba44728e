// launch/wgmma_probe.cu (compiled for sm_90a only, with the wgmma instances): whether the
// binary's sm_90a image can run on the current device. The runtime can describe a kernel of
// that image only when it loads; a failed probe's error is cleared so the next call does not
// report it.
#include "launch/launch.h"

namespace hbsa::cuda_internal {
namespace {

__global__ void WgmmaProbeKernel() {}

}  // namespace

bool WgmmaImageLoads() {
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, WgmmaProbeKernel) == cudaSuccess) return true;
  (void)cudaGetLastError();
  return false;
}

}  // namespace hbsa::cuda_internal
