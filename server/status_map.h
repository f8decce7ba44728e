// server/status_map.h: the one place where absl::Status becomes grpc::Status.
//
// Inside the server everything is absl::Status (library, translation, scheduler, executors);
// the RPC edge converts once, here. The canonical codes are the same set in both worlds, so the
// mapping keeps the code and the message; anything outside the canonical range is INTERNAL.
// Which code a condition gets is decided where it is detected (STYLE.md rule 7):
//   bad input INVALID_ARGUMENT; unsupported configuration UNIMPLEMENTED; too large, out of
//   memory, queue full RESOURCE_EXHAUSTED; draining or GPU unhealthy UNAVAILABLE; deadline /
//   cancel DEADLINE_EXCEEDED / CANCELLED; failed launch INTERNAL.
#ifndef HBSA_SERVER_STATUS_MAP_H_
#define HBSA_SERVER_STATUS_MAP_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace hbsa::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "INVALID_ARGUMENT", ...: the label used in metrics and logs.
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_STATUS_MAP_H_
