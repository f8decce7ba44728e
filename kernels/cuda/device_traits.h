// device_traits.h (internal): the traits of the current CUDA device that the kernel choice reads
// (heuristics.h DeviceTraits), queried once per device and cached; no synchronisation.
#ifndef HBSA_CUDA_DEVICE_TRAITS_H_
#define HBSA_CUDA_DEVICE_TRAITS_H_

#include "heuristics.h"

namespace hbsa::cuda_internal {

// Traits of the device current on the calling thread (cudaGetDevice); {0, false} when there is
// none or the query fails (the error is cleared, so it is not reported by a later launch).
DeviceTraits CurrentDeviceTraits();

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_TRAITS_H_
