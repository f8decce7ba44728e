// bench/service/echo.h: the floor of the service benchmark, a plain gRPC echo over raw bytes.
//
// The echo service runs on the same gRPC build, with the same channel arguments and message
// limits as hbsa-server, and moves messages of the same sizes as our Attend calls: a request of
// N bytes whose first 8 bytes (little-endian) say how many bytes to answer with. The server
// answers from one preallocated buffer without copying, and the client copies the answer into
// caller memory (as our client does with `out`), so an echo call costs what gRPC needs to move
// the bytes and nothing else. It is the "moving the bytes" that issue 10 measures us against.
#ifndef HBSA_BENCH_SERVICE_ECHO_H_
#define HBSA_BENCH_SERVICE_ECHO_H_

#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace hbsa::bench {

// The echo method's full name (a generic method: no .proto).
inline constexpr char kEchoMethod[] = "/hbsa.bench.Echo/Echo";

// Runs the echo server on `listen` (HOST:PORT) until the process is killed. Returns only on a
// start-up failure.
int RunEchoServer(const std::string& listen, int64_t max_message_bytes);

// A blocking echo client over `channel`.
class EchoClient {
 public:
  explicit EchoClient(std::shared_ptr<grpc::Channel> channel);
  // Sends `request_bytes` bytes asking for `response_bytes` back, copies the answer into
  // `sink` (resized to fit), and returns the call's status.
  absl::Status Call(int64_t request_bytes, int64_t response_bytes, std::string* sink);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

}  // namespace hbsa::bench

#endif  // HBSA_BENCH_SERVICE_ECHO_H_
