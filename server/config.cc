// server/config.cc: flag and HBSA_* environment parsing for hbsa-server (see config.h).
//
// One table lists every setting once: flag name, variable, default text, help and a setter
// that validates the value. Parsing applies the environment first, then the flags.
#include "config.h"

#include <cstdlib>
#include "absl/strings/string_view.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace hbsa::server {
namespace {

using Setter = std::function<absl::Status(absl::string_view value, ServerConfig* config)>;

struct Setting {
  const char* flag;      // without the leading "--"
  const char* env;       // HBSA_* variable, nullptr for none
  const char* meta;      // value placeholder in --help
  const char* fallback;  // default, as text
  const char* help;
  Setter set;
};

absl::Status Bad(absl::string_view flag, absl::string_view value, absl::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": ", rule, "; got \"", value, "\""));
}

absl::Status CheckHostPort(absl::string_view flag, absl::string_view v) {
  const size_t colon = v.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(v.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return Bad(flag, v, "must be HOST:PORT with a port in [0, 65535]");
  }
  return absl::OkStatus();
}

Setter PathSetter(std::string ServerConfig::*field) {
  return [=](absl::string_view v, ServerConfig* c) {
    c->*field = std::string(v);
    return absl::OkStatus();
  };
}

// Rules between settings, checked once everything is parsed.
absl::Status CheckCombinations(const ServerConfig& c) {
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert-file and --tls-key-file (HBSA_TLS_CERT_FILE, HBSA_TLS_KEY_FILE) must be "
        "given together");
  }
  const bool tls = !c.tls_cert_file.empty();
  if (!c.tls_client_ca_file.empty() && !tls) {
    return absl::InvalidArgumentError(
        "--tls-client-ca-file (HBSA_TLS_CLIENT_CA_FILE) needs --tls-cert-file and "
        "--tls-key-file: mutual TLS is TLS first");
  }
  if (!c.auth_token_file.empty() && !c.auth_token.empty()) {
    return absl::InvalidArgumentError(
        "--auth-token-file (HBSA_AUTH_TOKEN_FILE) and HBSA_AUTH_TOKEN are both set; use one");
  }
  if ((!c.auth_token_file.empty() || !c.auth_token.empty()) && !tls) {
    return absl::InvalidArgumentError(
        "--auth-token-file / HBSA_AUTH_TOKEN needs TLS (--tls-cert-file, --tls-key-file): a "
        "bearer token sent in plaintext can be read and replayed by anyone on the path");
  }
  if (!c.health_listen.empty() && c.health_listen == c.listen) {
    return absl::InvalidArgumentError("--health-listen must differ from --listen");
  }
  return absl::OkStatus();
}

template <typename Int>
Setter IntSetter(const char* flag, Int ServerConfig::*field, Int min, Int max) {
  return [=](absl::string_view v, ServerConfig* c) {
    Int x = 0;
    if (!absl::SimpleAtoi(v, &x) || x < min || x > max) {
      return Bad(flag, v, absl::StrCat("must be an integer in [", min, ", ", max, "]"));
    }
    c->*field = x;
    return absl::OkStatus();
  };
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> kSettings = {
      {"listen", "HBSA_LISTEN", "HOST:PORT", "127.0.0.1:50051",
       "gRPC listen address (loopback by default; 0.0.0.0:50051 for every interface).",
       [](absl::string_view v, ServerConfig* c) {
         if (auto s = CheckHostPort("listen", v); !s.ok()) return s;
         c->listen = std::string(v);
         return absl::OkStatus();
       }},
      {"metrics-listen", "HBSA_METRICS_LISTEN", "HOST:PORT", "127.0.0.1:9464",
       "Prometheus exposer address; metrics are served at /metrics (plain HTTP, no "
       "authentication: keep it on loopback or a network only Prometheus reaches).",
       [](absl::string_view v, ServerConfig* c) {
         if (auto s = CheckHostPort("metrics-listen", v); !s.ok()) return s;
         c->metrics_listen = std::string(v);
         return absl::OkStatus();
       }},
      {"health-listen", "HBSA_HEALTH_LISTEN", "HOST:PORT", "(none)",
       "Extra plaintext port serving only grpc.health.v1, for probes that cannot do TLS or "
       "send a token (the kubelet's gRPC probe). Empty = none.",
       [](absl::string_view v, ServerConfig* c) {
         if (!v.empty()) {
           if (auto s = CheckHostPort("health-listen", v); !s.ok()) return s;
         }
         c->health_listen = std::string(v);
         return absl::OkStatus();
       }},
      {"tls-cert-file", "HBSA_TLS_CERT_FILE", "PATH", "(none)",
       "Server certificate chain (PEM). With --tls-key-file: the gRPC port speaks TLS only. "
       "Re-read when it changes (see --tls-reload-seconds).",
       PathSetter(&ServerConfig::tls_cert_file)},
      {"tls-key-file", "HBSA_TLS_KEY_FILE", "PATH", "(none)",
       "Private key (PEM) of --tls-cert-file. Replace key and certificate together (write new "
       "files, then rename them into place).",
       PathSetter(&ServerConfig::tls_key_file)},
      {"tls-client-ca-file", "HBSA_TLS_CLIENT_CA_FILE", "PATH", "(none)",
       "Mutual TLS: CA certificates (PEM); every client must present a certificate they "
       "signed. Needs --tls-cert-file. Re-read when it changes.",
       PathSetter(&ServerConfig::tls_client_ca_file)},
      {"tls-reload-seconds", "HBSA_TLS_RELOAD_SECONDS", "S", "10",
       "How often the TLS files are checked for changes; new connections use new files.",
       IntSetter<int>("tls-reload-seconds", &ServerConfig::tls_reload_seconds, 1, 86400)},
      {"auth-token-file", "HBSA_AUTH_TOKEN_FILE", "PATH", "(none)",
       "Bearer-token authentication: the token is the file's first line (re-read on SIGHUP). "
       "Every call except grpc.health.v1 must send \"authorization: Bearer <token>\"; others "
       "get UNAUTHENTICATED. Needs TLS. The variable HBSA_AUTH_TOKEN may hold the token "
       "itself instead.",
       PathSetter(&ServerConfig::auth_token_file)},
      {"reflection", "HBSA_REFLECTION", "on|off", "off",
       "gRPC server reflection (lets grpcurl and similar tools list the API without the "
       ".proto). Behind the token when one is set.",
       [](absl::string_view v, ServerConfig* c) {
         if (v == "on" || v == "true" || v == "1") c->reflection = true;
         else if (v == "off" || v == "false" || v == "0") c->reflection = false;
         else return Bad("reflection", v, "must be on or off");
         return absl::OkStatus();
       }},
      {"backend", "HBSA_BACKEND", "auto|cuda|cpu", "auto",
       "Executor: cuda (GPUs), cpu (CPU backend) or auto (cuda when compiled in and a GPU is "
       "present, else cpu). `reference` runs the slow float64 oracle on the CPU executor.",
       [](absl::string_view v, ServerConfig* c) {
         if (v == "auto") c->backend = BackendChoice::kAuto;
         else if (v == "cuda") c->backend = BackendChoice::kCuda;
         else if (v == "cpu") c->backend = BackendChoice::kCpu;
         else if (v == "reference") c->backend = BackendChoice::kReference;
         else return Bad("backend", v, "must be auto, cuda, cpu or reference");
         return absl::OkStatus();
       }},
      {"devices", "HBSA_DEVICES", "all|0,1,...", "all", "GPU ordinals to serve on (cuda).",
       [](absl::string_view v, ServerConfig* c) {
         c->devices.clear();
         if (v == "all") return absl::OkStatus();
         for (absl::string_view part : absl::StrSplit(v, ',')) {
           int d = 0;
           if (!absl::SimpleAtoi(part, &d) || d < 0 || d > 1023) {
             return Bad("devices", v, "must be `all` or a comma-separated list of ordinals");
           }
           c->devices.push_back(d);
         }
         return absl::OkStatus();
       }},
      {"streams-per-device", "HBSA_STREAMS_PER_DEVICE", "N", "4",
       "CUDA streams per GPU; requests on different streams overlap.",
       IntSetter<int>("streams-per-device", &ServerConfig::streams_per_device, 1, 256)},
      {"cpu-threads", "HBSA_CPU_THREADS", "N", "0",
       "CPU executor worker threads (cpu backend); 0 = hardware threads.",
       IntSetter<int>("cpu-threads", &ServerConfig::cpu_threads, 0, 4096)},
      {"queue-length", "HBSA_QUEUE_LENGTH", "N", "256",
       "Admitted requests waiting to run; past it requests get RESOURCE_EXHAUSTED.",
       IntSetter<int>("queue-length", &ServerConfig::queue_length, 1, 1 << 20)},
      {"max-message-bytes", "HBSA_MAX_MESSAGE_BYTES", "N", "536870912",
       "Largest request or response message on the wire, in bytes.",
       IntSetter<int64_t>("max-message-bytes", &ServerConfig::max_message_bytes, 1024,
                          int64_t{2147483647})},
      {"memory-budget-bytes", "HBSA_MEMORY_BUDGET_BYTES", "N", "0",
       "Working memory per device for requests in flight; 0 = 80% of free GPU memory (cuda) "
       "or 4 GiB (cpu). A request larger than the budget gets RESOURCE_EXHAUSTED.",
       IntSetter<int64_t>("memory-budget-bytes", &ServerConfig::memory_budget_bytes, 0,
                          int64_t{1} << 50)},
      {"admission-budget-bytes", "HBSA_ADMISSION_BUDGET_BYTES", "N", "0",
       "Host memory all admitted requests (queued and running) may hold together: received "
       "message, converted mask, visit lists, staged inputs and outputs, each worked out from the "
       "request's header fields before anything is copied. A request that does not fit is "
       "refused at once with RESOURCE_EXHAUSTED; 0 = the memory budget (cpu, reference) or "
       "4 GiB per GPU (cuda).",
       IntSetter<int64_t>("admission-budget-bytes", &ServerConfig::admission_budget_bytes, 0,
                          int64_t{1} << 50)},
      {"drain-grace-seconds", "HBSA_DRAIN_GRACE_SECONDS", "S", "30",
       "After SIGTERM/SIGINT, how long in-flight work may take before the server exits; "
       "then running work is stopped and queued work failed, and the log counts both.",
       [](absl::string_view v, ServerConfig* c) {
         double s = 0;
         if (!absl::SimpleAtod(v, &s) || !(s >= 0) || s > 86400) {
           return Bad("drain-grace-seconds", v, "must be a number of seconds in [0, 86400]");
         }
         c->drain_grace_seconds = s;
         return absl::OkStatus();
       }},
      {"log-level", "HBSA_LOG_LEVEL", "LEVEL", "info", "trace, debug, info, warn or error.",
       [](absl::string_view v, ServerConfig* c) {
         if (v != "trace" && v != "debug" && v != "info" && v != "warn" && v != "error") {
           return Bad("log-level", v, "must be trace, debug, info, warn or error");
         }
         c->log_level = std::string(v);
         return absl::OkStatus();
       }},
      {"stream-max-inflight", "HBSA_STREAM_MAX_INFLIGHT", "N", "8",
       "AttendStream: requests of one stream admitted and not yet answered; the server stops "
       "reading the stream at this count (back-pressure).",
       IntSetter<int>("stream-max-inflight", &ServerConfig::stream_max_inflight, 1, 4096)},
      {"staging-threads", "HBSA_STAGING_THREADS", "N", "4",
       "CUDA: host threads per GPU that copy requests into pinned staging memory and issue their "
       "copies and kernels, so staging of one request overlaps the device work of others.",
       IntSetter<int>("staging-threads", &ServerConfig::staging_threads, 1, 256)},
      {"host-staging-bytes", "HBSA_HOST_STAGING_BYTES", "N", "0",
       "CUDA: pinned host memory per GPU for request inputs and outputs in flight (allocated once "
       "at start); 0 = 4 GiB. A request larger than this gets RESOURCE_EXHAUSTED.",
       IntSetter<int64_t>("host-staging-bytes", &ServerConfig::host_staging_bytes, 0,
                          int64_t{1} << 44)},
      {"batch-max-tokens", "HBSA_BATCH_MAX_TOKENS", "N", "16384",
       "Dynamic batching: waiting requests that can share a launch (same dtype, heads, head dim, "
       "block sizes, causal, scale, LSE, TF32; no shared memory) are merged into one varlen "
       "launch of at most this many query and key tokens. 0 turns batching off.",
       IntSetter<int64_t>("batch-max-tokens", &ServerConfig::batch_max_tokens, 0,
                          int64_t{1} << 31)},
      {"batch-max-delay-us", "HBSA_BATCH_MAX_DELAY_US", "US", "0",
       "Dynamic batching: how long the oldest request of a batch may wait for companions, in "
       "microseconds (never past a request's deadline). 0 merges only what is already waiting.",
       IntSetter<int>("batch-max-delay-us", &ServerConfig::batch_max_delay_us, 0, 1000000)},
      {"session-memory-bytes", "HBSA_SESSION_MEMORY_BYTES", "N", "1073741824",
       "Sessions (resident K/V): page memory per device, taken from host memory at start "
       "(first step: host memory on every backend). An append or attend that needs more pages "
       "than are free (after eviction) gets RESOURCE_EXHAUSTED. 0 turns sessions off.",
       IntSetter<int64_t>("session-memory-bytes", &ServerConfig::session_memory_bytes, 0,
                          int64_t{1} << 44)},
      {"session-page-bytes", "HBSA_SESSION_PAGE_BYTES", "N", "65536",
       "Sessions: bytes of one page. A page holds the K and V rows of page_tokens tokens, "
       "page_tokens = N / (2 * Hk * D * dtype size), e.g. 16 tokens for Hk = 8, D = 128, bf16 "
       "at the default. One pool serves sessions of every shape, so the page is fixed in bytes.",
       IntSetter<int64_t>("session-page-bytes", &ServerConfig::session_page_bytes, 256,
                          int64_t{1} << 30)},
      {"session-ttl-seconds", "HBSA_SESSION_TTL_SECONDS", "S", "600",
       "Sessions: idle time after which a session is evicted (calls on it then get NOT_FOUND "
       "saying so), when OpenSession does not ask for another TTL.",
       [](absl::string_view v, ServerConfig* c) {
         double s = 0;
         if (!absl::SimpleAtod(v, &s) || !(s > 0) || s > 31536000) {
           return Bad("session-ttl-seconds", v, "must be a number of seconds in (0, 31536000]");
         }
         c->session_ttl_seconds = s;
         return absl::OkStatus();
       }},
      {"session-max-ttl-seconds", "HBSA_SESSION_MAX_TTL_SECONDS", "S", "86400",
       "Sessions: the largest idle TTL OpenSession may ask for (larger requests are clamped).",
       [](absl::string_view v, ServerConfig* c) {
         double s = 0;
         if (!absl::SimpleAtod(v, &s) || !(s > 0) || s > 31536000) {
           return Bad("session-max-ttl-seconds", v, "must be a number of seconds in (0, 31536000]");
         }
         c->session_max_ttl_seconds = s;
         return absl::OkStatus();
       }},
      {"session-eviction", "HBSA_SESSION_EVICTION", "lru|none", "lru",
       "Sessions: when the page pool is full, evict the least recently used other sessions "
       "(lru) or refuse the call with RESOURCE_EXHAUSTED (none). TTL eviction applies always.",
       [](absl::string_view v, ServerConfig* c) {
         if (v == "lru") c->session_evict_lru = true;
         else if (v == "none") c->session_evict_lru = false;
         else return Bad("session-eviction", v, "must be lru or none");
         return absl::OkStatus();
       }},
      {"session-max", "HBSA_SESSION_MAX", "N", "4096",
       "Sessions: most sessions open at once; OpenSession past it gets RESOURCE_EXHAUSTED "
       "(after evicting expired sessions, and the least recently used one under lru).",
       IntSetter<int>("session-max", &ServerConfig::session_max, 1, 1 << 24)},
      {"test-executor-delay-ms", "HBSA_TEST_EXECUTOR_DELAY_MS", "MS", "0",
       "TEST ONLY: each request sleeps this long on its executor before computing, so tests "
       "can fill the queue and observe deadlines, cancellation and drains.",
       IntSetter<int>("test-executor-delay-ms", &ServerConfig::test_executor_delay_ms, 0,
                      600000)},
      {"test-warmup-delay-ms", "HBSA_TEST_WARMUP_DELAY_MS", "MS", "0",
       "TEST ONLY: hold warm-up (health NOT_SERVING) this long.",
       IntSetter<int>("test-warmup-delay-ms", &ServerConfig::test_warmup_delay_ms, 0, 600000)},
      {"test-device-lost-after", "HBSA_TEST_DEVICE_LOST_AFTER", "N", "-1",
       "TEST ONLY: replace the executor by one that computes N requests on the CPU (warm-up "
       "included) and then fails as a GPU with a sticky error would (device-lost: NOT_SERVING, "
       "exit 3); -1 = off.",
       IntSetter<int>("test-device-lost-after", &ServerConfig::test_device_lost_after, -1,
                      1 << 30)},
  };
  return kSettings;
}

const Setting* FindSetting(absl::string_view flag) {
  for (const Setting& s : Settings()) {
    if (flag == s.flag) return &s;
  }
  return nullptr;
}

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

absl::StatusOr<ServerConfig> ParseConfig(const std::vector<std::string>& args,
                                         const EnvLookup& env) {
  ServerConfig config;
  for (const Setting& s : Settings()) {
    if (s.env == nullptr) continue;
    if (std::optional<std::string> v = env(s.env); v.has_value()) {
      if (absl::Status st = s.set(*v, &config); !st.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(s.env, " (", st.message(), ")"));
      }
    }
  }
  // The token itself only ever comes from the environment: a flag would show in `ps`.
  if (std::optional<std::string> v = env("HBSA_AUTH_TOKEN"); v.has_value()) {
    config.auth_token = std::string(absl::StripAsciiWhitespace(*v));
    if (config.auth_token.empty()) {
      return absl::InvalidArgumentError("HBSA_AUTH_TOKEN is set but empty");
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      config.help = true;
      continue;
    }
    if (arg == "--version") {
      config.version = true;
      continue;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", arg,
                                                     "\"; flags start with --"));
    }
    absl::string_view name = arg, value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    const Setting* s = FindSetting(name);
    if (s == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, "; see --help"));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value (", s->meta, ")"));
      }
      value = args[++i];
    }
    if (absl::Status st = s->set(value, &config); !st.ok()) return st;
  }
  if (absl::Status st = CheckCombinations(config); !st.ok()) return st;
  return config;
}

std::string HelpText() {
  std::string out =
      "hbsa-server: heterogeneous block-sparse attention over gRPC (hbsa.v1.Attention).\n\n"
      "Usage: hbsa-server [--flag VALUE | --flag=VALUE]...\n"
      "Each flag can also be set by the environment variable in brackets; the flag wins.\n\n";
  for (const Setting& s : Settings()) {
    absl::StrAppend(&out, "  --", s.flag, " ", s.meta);
    if (s.env != nullptr) absl::StrAppend(&out, "  [", s.env, "]");
    absl::StrAppend(&out, "  default ", s.fallback, "\n      ", s.help, "\n");
  }
  absl::StrAppend(&out,
                  "  --help, -h\n      Print this text and exit.\n"
                  "  --version\n      Print the version (hbsa-server X.Y.Z) and exit.\n\n"
                  "Environment only:\n  HBSA_AUTH_TOKEN\n      The bearer token itself (instead "
                  "of --auth-token-file).\n\n"
                  "Signals: SIGTERM/SIGINT drain (health NOT_SERVING, finish in-flight work within "
                  "the grace period, exit 0); SIGHUP re-reads --auth-token-file and checks the "
                  "TLS files.\nExit codes: 0 clean, 2 bad configuration or "
                  "startup failure, 3 sticky GPU error.\n");
  return out;
}

std::string BackendChoiceName(BackendChoice backend) {
  switch (backend) {
    case BackendChoice::kAuto: return "auto";
    case BackendChoice::kCuda: return "cuda";
    case BackendChoice::kCpu: return "cpu";
    case BackendChoice::kReference: return "reference";
  }
  return "unknown";
}

std::string DescribeConfig(const ServerConfig& c) {
  const char* tls = c.tls_cert_file.empty() ? "off" : c.tls_client_ca_file.empty() ? "tls" : "mtls";
  const bool token = !c.auth_token_file.empty() || !c.auth_token.empty();
  return absl::StrCat(
      "listen=", c.listen, " metrics_listen=", c.metrics_listen,
      c.health_listen.empty() ? "" : absl::StrCat(" health_listen=", c.health_listen),
      " tls=", tls, " auth_token=", token ? "on" : "off", " reflection=",
      c.reflection ? "on" : "off",
      " backend=", BackendChoiceName(c.backend), " devices=",
      c.devices.empty() ? "all" : absl::StrJoin(c.devices, ","),
      " streams_per_device=", c.streams_per_device, " cpu_threads=", c.cpu_threads,
      " queue_length=", c.queue_length, " max_message_bytes=", c.max_message_bytes,
      " memory_budget_bytes=", c.memory_budget_bytes,
      " admission_budget_bytes=", c.admission_budget_bytes,
      " drain_grace_seconds=", c.drain_grace_seconds, " log_level=", c.log_level,
      " stream_max_inflight=", c.stream_max_inflight, " staging_threads=", c.staging_threads,
      " host_staging_bytes=", c.host_staging_bytes, " batch_max_tokens=", c.batch_max_tokens,
      " batch_max_delay_us=", c.batch_max_delay_us,
      " session_memory_bytes=", c.session_memory_bytes, " session_page_bytes=",
      c.session_page_bytes, " session_ttl_seconds=", c.session_ttl_seconds,
      " session_eviction=", c.session_evict_lru ? "lru" : "none", " session_max=", c.session_max,
      c.test_executor_delay_ms > 0 ? absl::StrCat(" TEST executor_delay_ms=", c.test_executor_delay_ms) : "",
      c.test_warmup_delay_ms > 0 ? absl::StrCat(" TEST warmup_delay_ms=", c.test_warmup_delay_ms) : "",
      c.test_device_lost_after >= 0
          ? absl::StrCat(" TEST device_lost_after=", c.test_device_lost_after)
          : "");
}

}  // namespace hbsa::server
