// tests/server/server_harness.h: helpers for the loopback integration tests of hbsa-server.
//
// Starts the real hbsa-server binary as a child process on free loopback ports, talks to it
// with the generated hbsa.v1 stubs, checks grpc.health.v1 through a generic stub (the health
// messages are one field each, encoded here by hand), scrapes /metrics over a plain socket,
// and turns golden cases into AttendRequests in each of the three mask forms.
#ifndef HBSA_TESTS_SERVER_SERVER_HARNESS_H_
#define HBSA_TESTS_SERVER_SERVER_HARNESS_H_

#include <sys/types.h>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "hbsa/golden.h"
#include "hbsa/v1/attention.grpc.pb.h"

namespace hbsa::testing {

// One asynchronous Attend call: started in the constructor (with an optional deadline from now),
// awaited with Wait, cancellable with Cancel. Keep it alive until Wait returned.
class AsyncAttend {
 public:
  AsyncAttend(v1::Attention::Stub* stub, const v1::AttendRequest& req,
              std::optional<std::chrono::milliseconds> deadline = std::nullopt)
      : req_(req) {
    if (deadline) ctx_.set_deadline(std::chrono::system_clock::now() + *deadline);
    stub->async()->Attend(&ctx_, &req_, &resp_, [this](grpc::Status s) { done_.set_value(s); });
    future_ = done_.get_future();
  }
  grpc::Status Wait() { return future_.get(); }
  void Cancel() { ctx_.TryCancel(); }
  const v1::AttendResponse& response() const { return resp_; }

 private:
  grpc::ClientContext ctx_;
  v1::AttendRequest req_;
  v1::AttendResponse resp_;
  std::promise<grpc::Status> done_;
  std::future<grpc::Status> future_;
};

// A port on 127.0.0.1 that was free a moment ago.
int FreePort();

class ServerProcess {
 public:
  // Starts hbsa-server with --listen/--metrics-listen on free loopback ports, --backend cpu
  // and `extra_args`; waits until health reports SERVING unless `wait_serving` is false.
  // channel() uses `credentials` (nullptr = plaintext), e.g. TLS for a server started with
  // --tls-cert-file.
  static std::unique_ptr<ServerProcess> Start(
      const std::vector<std::string>& extra_args, bool wait_serving = true,
      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  ~ServerProcess();  // SIGKILLs the process if it still runs

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  int metrics_port() const { return metrics_port_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  std::unique_ptr<v1::Attention::Stub> stub() const { return v1::Attention::NewStub(channel_); }
  pid_t pid() const { return pid_; }
  // Waits for health SERVING on "" (true) or gives up after `timeout`.
  bool WaitServing(std::chrono::milliseconds timeout);
  // Sends `sig`; returns the exit code (or -signal) once the process ends, nullopt on timeout.
  std::optional<int> SignalAndWait(int sig, std::chrono::milliseconds timeout);
  // Waits for the process to end on its own.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  std::string Log() const;  // stdout + stderr so far

 private:
  pid_t pid_ = -1;
  int port_ = 0, metrics_port_ = 0;
  std::string log_path_;
  std::shared_ptr<grpc::Channel> channel_;
  bool exited_ = false;
};

enum class Health { kUnknown, kServing, kNotServing, kUnavailable };
// grpc.health.v1.Health/Check for `service` ("" = overall).
Health CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service);

// GET http://127.0.0.1:port/path; the body, or "" on failure.
std::string HttpGet(int port, const std::string& path);
// Value of the series `series` (e.g. `hbsa_requests_total{code="OK",method="Attend"}`, labels
// in alphabetical order as prometheus-cpp prints them) in a /metrics text; nullopt if absent.
std::optional<double> MetricValue(const std::string& text, const std::string& series);
// Sum over every series of metric family `name` (any labels).
double MetricSum(const std::string& text, const std::string& name);

enum class MaskForm { kDense, kPerSequence, kCompact };
const char* MaskFormName(MaskForm form);
// The golden case as a request with its mask in `form`.
v1::AttendRequest MakeRequest(const golden::Case& c, MaskForm form, bool return_lse,
                              const std::string& id);
// Compares a response's out (and lse when present) with the case under SEMANTICS.md.
golden::Comparison CompareResponse(const golden::Case& c, const v1::AttendResponse& r);

// A case built here instead of loaded: one fp32 sequence of `lq` query and `lk` key rows,
// q/k/v uniform in [-1, 1) from `seed`, every block on. With `expected` the out and lse come
// from the float64 reference (hbsa::Run(kReference)); without, they are left empty (for
// requests whose answer the test does not read, e.g. ones it cancels).
golden::Case SyntheticCase(int64_t lq, int64_t lk, int32_t hq, int32_t hk, int32_t d, int32_t sq,
                           int32_t sk, bool causal, uint32_t seed, bool expected);

// Peak resident memory (VmHWM) and current resident memory (VmRSS) of process `pid`, bytes;
// -1 when /proc cannot be read.
int64_t PeakRssBytes(pid_t pid);
int64_t RssBytes(pid_t pid);

// Golden cases, loaded once.
const std::vector<golden::Case>& GoldenCases();
const golden::Case& GoldenCase(const std::string& name);

}  // namespace hbsa::testing

#endif  // HBSA_TESTS_SERVER_SERVER_HARNESS_H_
