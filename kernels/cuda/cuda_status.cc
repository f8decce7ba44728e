// cuda_status.cc: cudaError_t -> absl::Status (see cuda_status.h).
#include "cuda_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "hbsa/device_status.h"

namespace hbsa::cuda_internal {

bool IsStickyError(cudaError_t err) {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorLaunchTimeout:
    case cudaErrorContextIsDestroyed:
      return true;
    default:
      return false;
  }
}

absl::Status CudaStatus(cudaError_t err, std::string_view what) {
  if (err == cudaSuccess) return absl::OkStatus();
  const std::string detail =
      absl::StrCat(std::string(what), " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
  if (IsStickyError(err)) {
    return MarkDeviceLost(absl::InternalError(absl::StrCat("sticky CUDA error: ", detail)));
  }
  switch (err) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(detail);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
      return absl::UnavailableError(detail);
    default:
      return absl::InternalError(detail);
  }
}

}  // namespace hbsa::cuda_internal
