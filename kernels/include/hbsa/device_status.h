// hbsa/device_status.h: the typed signal "this device is unusable until the process exits".
//
// A sticky CUDA error poisons the context: every later call on it fails. Code that detects one
// (the CUDA backend's status mapping, the server's CUDA executor, the server's test-only fault
// executor) marks the absl::Status it returns with a payload; code that must react (the
// server: NOT_SERVING, exit 3) tests for the payload, never for words in the message, which are
// for people and may be wrapped or reworded on the way ("GPU 0 is unhealthy: sticky CUDA error:
// ..."). The payload survives copies of the status and any code change made with
// absl::Status's own accessors; a new status built from another's message does not carry it,
// so re-mark it when wrapping.
#ifndef HBSA_DEVICE_STATUS_H_
#define HBSA_DEVICE_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/cord.h"

namespace hbsa {

// Type URL of the payload (its value is empty).
inline constexpr char kDeviceLostPayload[] = "type.hbsa/hbsa.DeviceLost";

// `status` marked as device-lost. An OK status stays OK (absl ignores payloads on OK).
inline absl::Status MarkDeviceLost(absl::Status status) {
  status.SetPayload(kDeviceLostPayload, absl::Cord());
  return status;
}

// True when `status` carries the device-lost payload.
inline bool IsDeviceLost(const absl::Status& status) {
  return status.GetPayload(kDeviceLostPayload).has_value();
}

}  // namespace hbsa

#endif  // HBSA_DEVICE_STATUS_H_
