// server/config.h: hbsa-server's configuration, from command-line flags and HBSA_* variables.
//
// Every setting has a flag and an environment variable; the flag wins over the variable, the
// variable over the default. Parsing is a pure function of (arguments, environment) so it is
// unit-tested without a process. HelpText() documents each setting; it is what --help prints.
#ifndef HBSA_SERVER_CONFIG_H_
#define HBSA_SERVER_CONFIG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hbsa::server {

// Which executor serves requests.
enum class BackendChoice {
  kAuto,       // cuda when compiled in and a GPU exists, else cpu
  kCuda,       // CUDA executor; startup fails without a usable GPU
  kCpu,        // CPU executor running hbsa::Run(kCpu)
  kReference,  // CPU executor running the float64 reference (slow; debugging and tests)
};

struct ServerConfig {
  // Both default to loopback: a server reachable from other hosts is a deliberate setting
  // (the container images and Kubernetes files set 0.0.0.0).
  std::string listen = "127.0.0.1:50051";        // gRPC address, HOST:PORT
  std::string metrics_listen = "127.0.0.1:9464"; // Prometheus /metrics address, HOST:PORT
  // Plaintext port serving only grpc.health.v1 (for probes that speak neither TLS nor tokens,
  // such as the kubelet's); empty = none.
  std::string health_listen;
  // Transport security of the gRPC port (security.h). Server certificate chain and key (PEM),
  // both or neither: TLS when given. A client CA turns on mutual TLS (clients must present a
  // certificate it signed). The files are re-read when they change, checked every
  // tls_reload_seconds.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  int tls_reload_seconds = 10;
  // Bearer-token authentication (needs TLS): the token from this file (first line) or from
  // HBSA_AUTH_TOKEN; every call but grpc.health.v1 must carry "authorization: Bearer <token>".
  std::string auth_token_file;
  std::string auth_token;                        // from HBSA_AUTH_TOKEN only (never a flag)
  bool reflection = false;                       // gRPC server reflection
  BackendChoice backend = BackendChoice::kAuto;
  std::vector<int> devices;                      // GPU ordinals; empty = all
  int streams_per_device = 4;                    // CUDA streams per GPU, >= 1
  int cpu_threads = 0;                           // CPU executor threads; 0 = hardware threads
  int queue_length = 256;                        // admitted requests waiting to run, >= 1
  int64_t max_message_bytes = 536870912;         // largest request/response on the wire
  int64_t memory_budget_bytes = 0;               // 0 = 80% of free GPU memory / 4 GiB on CPU
  int64_t admission_budget_bytes = 0;            // host bytes of all admitted requests; 0 = see --help
  double drain_grace_seconds = 30;               // in-flight work gets this long after SIGTERM
  std::string log_level = "info";                // trace|debug|info|warn|error
  int stream_max_inflight = 8;                   // AttendStream requests in flight per stream
  int staging_threads = 4;                       // CUDA: host threads staging requests, per GPU
  int64_t host_staging_bytes = 0;                // CUDA: pinned staging arena per GPU; 0 = 4 GiB
  int64_t batch_max_tokens = 16384;              // dynamic batching token budget; 0 = off
  int batch_max_delay_us = 0;                    // how long a batch may wait for companions
  // Sessions of resident K/V (session_store.h): page memory per device, the page size, the
  // idle TTL (default and maximum a session may ask for), LRU eviction when the pool is full,
  // and the most sessions open at once.
  int64_t session_memory_bytes = int64_t{1} << 30;  // page pool per device; 0 = sessions off
  int64_t session_page_bytes = 65536;                // one page (K and V of its tokens)
  double session_ttl_seconds = 600;                  // default idle TTL
  double session_max_ttl_seconds = 86400;            // largest TTL a session may ask for
  bool session_evict_lru = true;                     // evict least recently used when full
  int session_max = 4096;                            // sessions open at once
  // Test-only knobs (documented as such in --help): slow the executor down by this many
  // milliseconds per request, and hold warm-up this long, so tests can observe queueing,
  // deadlines, cancellation, health transitions and drains deterministically.
  int test_executor_delay_ms = 0;
  int test_warmup_delay_ms = 0;
  // Test-only: serve with FaultExecutor (fault_executor.h), which computes this many requests
  // (warm-up included) and then loses its "device" like a sticky CUDA error; -1 = off.
  int test_device_lost_after = -1;
  bool help = false;                             // --help (or -h) was given
  bool version = false;                          // --version was given
};

// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (std::getenv).
EnvLookup ProcessEnv();

// Parses `args` (argv without argv[0]; "--flag value" and "--flag=value" forms) over `env`.
// INVALID_ARGUMENT naming the flag (and its variable) for unknown flags, missing values and
// values out of range.
absl::StatusOr<ServerConfig> ParseConfig(const std::vector<std::string>& args,
                                         const EnvLookup& env);

// The --help text: every flag, its variable, default and meaning.
std::string HelpText();

std::string BackendChoiceName(BackendChoice backend);

// One line describing the effective configuration, for the startup log.
std::string DescribeConfig(const ServerConfig& config);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_CONFIG_H_
