// server_process.h: runs a real hbsa-server as a child process for the client's loopback tests:
// free ports on 127.0.0.1, CPU backend, waits until grpc.health.v1 says SERVING, and on
// destruction sends SIGTERM (the graceful drain) and reaps it (SIGKILL after 30 s).
#ifndef HBSA_TESTS_CLIENT_SERVER_PROCESS_H_
#define HBSA_TESTS_CLIENT_SERVER_PROCESS_H_

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "hbsa/client.h"

namespace hbsa::testing {

// A port that was free a moment ago (bound to 0, read back, closed).
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class ServerProcess {
 public:
  // `extra_args` are appended to the server's flags; `connect` is how the start-up health check
  // reaches it (TLS options for a server started with --tls-cert-file).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::vector<std::string>& extra_args = {},
      const client::ChannelOptions& connect = {}) {
    auto p = std::unique_ptr<ServerProcess>(new ServerProcess);
    p->port_ = FreePort();
    p->metrics_port_ = FreePort();
    std::vector<std::string> args = {binary,
                                     "--listen", absl::StrCat("127.0.0.1:", p->port_),
                                     "--metrics-listen", absl::StrCat("127.0.0.1:", p->metrics_port_),
                                     "--backend", "cpu", "--cpu-threads", "2",
                                     "--log-level", "warn", "--drain-grace-seconds", "5"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    p->pid_ = fork();
    if (p->pid_ < 0) return absl::InternalError("fork failed");
    if (p->pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    client::Client c(p->target(), connect);
    client::CallOptions call;
    call.timeout = std::chrono::milliseconds(1000);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (std::chrono::steady_clock::now() < give_up) {
      int status;
      if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
        p->pid_ = -1;
        return absl::InternalError(absl::StrCat(binary, " exited during start-up (status ", status, ")"));
      }
      auto s = c.CheckHealth("", call);
      if (s.ok() && *s == client::ServingStatus::kServing) return p;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return absl::DeadlineExceededError("hbsa-server did not become SERVING within 90 s");
  }

  ~ServerProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string metrics_url() const { return absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics"); }

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int port_ = 0, metrics_port_ = 0;
};

}  // namespace hbsa::testing

#endif  // HBSA_TESTS_CLIENT_SERVER_PROCESS_H_
