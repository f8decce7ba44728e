// tests/server/server_unit_test.cc: the pure pieces of hbsa-server: config parsing, status
// mapping, heuristics, mask conversion and request translation (no process, no network).
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <prometheus/metric_family.h>

#include "config.h"
#include "gpu_metrics.h"
#include "heuristics.h"
#include "hbsa/plan.h"
#include "mask_convert.h"
#include "metrics.h"
#include "process_metrics.h"
#include "status_map.h"
#include "translate.h"
#include "warmup.h"

namespace hbsa::server {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Config, Defaults) {
  absl::StatusOr<ServerConfig> c = ParseConfig({}, Env({}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->listen, "127.0.0.1:50051");  // loopback unless configured (issue 12)
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->health_listen, "");
  EXPECT_EQ(c->tls_cert_file, "");
  EXPECT_EQ(c->tls_reload_seconds, 10);
  EXPECT_EQ(c->auth_token, "");
  EXPECT_FALSE(c->reflection);
  EXPECT_EQ(c->backend, BackendChoice::kAuto);
  EXPECT_TRUE(c->devices.empty());
  EXPECT_EQ(c->streams_per_device, 4);
  EXPECT_EQ(c->cpu_threads, 0);
  EXPECT_EQ(c->queue_length, 256);
  EXPECT_EQ(c->max_message_bytes, 536870912);
  EXPECT_EQ(c->memory_budget_bytes, 0);
  EXPECT_EQ(c->drain_grace_seconds, 30);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_FALSE(c->help);
}

TEST(Config, FlagsBothFormsAndEnvironmentWithFlagWinning) {
  absl::StatusOr<ServerConfig> c = ParseConfig(
      {"--listen", "127.0.0.1:1", "--backend=cpu", "--devices", "0,2", "--queue-length=3"},
      Env({{"HBSA_LISTEN", "10.0.0.1:9"}, {"HBSA_QUEUE_LENGTH", "7"}, {"HBSA_CPU_THREADS", "5"},
           {"HBSA_DRAIN_GRACE_SECONDS", "1.5"}, {"HBSA_LOG_LEVEL", "debug"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:1");  // flag beats HBSA_LISTEN
  EXPECT_EQ(c->backend, BackendChoice::kCpu);
  EXPECT_EQ(c->devices, (std::vector<int>{0, 2}));
  EXPECT_EQ(c->queue_length, 3);
  EXPECT_EQ(c->cpu_threads, 5);  // from the environment
  EXPECT_EQ(c->drain_grace_seconds, 1.5);
  EXPECT_EQ(c->log_level, "debug");
}

TEST(Config, ErrorsNameTheFlagOrVariable) {
  struct Bad {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    const char* needle;
  };
  const std::vector<Bad> cases = {
      {{"--nope"}, {}, "--nope"},
      {{"--listen"}, {}, "--listen"},
      {{"--listen", "nohost"}, {}, "--listen"},
      {{"--backend", "tpu"}, {}, "--backend"},
      {{"--queue-length", "0"}, {}, "--queue-length"},
      {{"--streams-per-device", "x"}, {}, "--streams-per-device"},
      {{"--devices", "0,a"}, {}, "--devices"},
      {{"--log-level", "loud"}, {}, "--log-level"},
      {{"--drain-grace-seconds", "-1"}, {}, "--drain-grace-seconds"},
      {{}, {{"HBSA_MAX_MESSAGE_BYTES", "12"}}, "HBSA_MAX_MESSAGE_BYTES"},
      {{"positional"}, {}, "positional"},
  };
  for (const Bad& b : cases) {
    absl::StatusOr<ServerConfig> c = ParseConfig(b.args, Env(b.env));
    ASSERT_FALSE(c.ok()) << b.needle;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(b.needle), absl::string_view::npos) << c.status();
  }
}

TEST(Config, SecuritySettingsAndTheirCombinations) {
  absl::StatusOr<ServerConfig> c = ParseConfig(
      {"--tls-cert-file", "/c.pem", "--tls-key-file=/k.pem", "--tls-client-ca-file", "/ca.pem",
       "--reflection", "on", "--health-listen", "0.0.0.0:50052"},
      Env({{"HBSA_AUTH_TOKEN", " Zq9-secret \n"}, {"HBSA_TLS_RELOAD_SECONDS", "2"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls_cert_file, "/c.pem");
  EXPECT_EQ(c->tls_key_file, "/k.pem");
  EXPECT_EQ(c->tls_client_ca_file, "/ca.pem");
  EXPECT_EQ(c->tls_reload_seconds, 2);
  EXPECT_EQ(c->auth_token, "Zq9-secret");
  EXPECT_TRUE(c->reflection);
  EXPECT_EQ(c->health_listen, "0.0.0.0:50052");
  EXPECT_NE(DescribeConfig(*c).find("tls=mtls auth_token=on reflection=on"), std::string::npos)
      << DescribeConfig(*c);
  EXPECT_EQ(DescribeConfig(*c).find("Zq9"), std::string::npos);  // the token is never logged

  struct Bad {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    const char* needle;
  };
  const std::vector<Bad> cases = {
      {{"--tls-cert-file", "/c.pem"}, {}, "must be given together"},
      {{"--tls-key-file", "/k.pem"}, {}, "must be given together"},
      {{"--tls-client-ca-file", "/ca.pem"}, {}, "mutual TLS is TLS first"},
      {{"--auth-token-file", "/t"}, {}, "needs TLS"},
      {{}, {{"HBSA_AUTH_TOKEN", "x"}}, "needs TLS"},
      {{"--tls-cert-file=/c", "--tls-key-file=/k", "--auth-token-file=/t"},
       {{"HBSA_AUTH_TOKEN", "x"}}, "both set"},
      {{}, {{"HBSA_AUTH_TOKEN", "  "}}, "HBSA_AUTH_TOKEN is set but empty"},
      {{"--reflection", "maybe"}, {}, "--reflection"},
      {{"--tls-reload-seconds", "0"}, {}, "--tls-reload-seconds"},
      {{"--health-listen", "nohost"}, {}, "--health-listen"},
      {{"--listen", "127.0.0.1:7", "--health-listen", "127.0.0.1:7"}, {}, "must differ"},
  };
  for (const Bad& b : cases) {
    absl::StatusOr<ServerConfig> bad = ParseConfig(b.args, Env(b.env));
    ASSERT_FALSE(bad.ok()) << b.needle;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find(b.needle), absl::string_view::npos) << bad.status();
  }
}

TEST(Config, HelpDocumentsEveryFlagAndVariable) {
  absl::StatusOr<ServerConfig> c = ParseConfig({"--help"}, Env({}));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->help);
  const std::string help = HelpText();
  for (const char* s : {"--listen", "HBSA_LISTEN", "--metrics-listen", "HBSA_METRICS_LISTEN",
                        "--backend", "HBSA_BACKEND", "--devices", "HBSA_DEVICES",
                        "--streams-per-device", "HBSA_STREAMS_PER_DEVICE", "--cpu-threads",
                        "HBSA_CPU_THREADS", "--queue-length", "HBSA_QUEUE_LENGTH",
                        "--max-message-bytes", "HBSA_MAX_MESSAGE_BYTES", "--memory-budget-bytes",
                        "HBSA_MEMORY_BUDGET_BYTES", "--drain-grace-seconds",
                        "HBSA_DRAIN_GRACE_SECONDS", "--log-level", "HBSA_LOG_LEVEL", "--help",
                        "--version", "TEST ONLY", "--health-listen", "HBSA_HEALTH_LISTEN", "--tls-cert-file",
                        "HBSA_TLS_CERT_FILE", "--tls-key-file", "HBSA_TLS_KEY_FILE",
                        "--tls-client-ca-file", "HBSA_TLS_CLIENT_CA_FILE", "--tls-reload-seconds",
                        "HBSA_TLS_RELOAD_SECONDS", "--auth-token-file", "HBSA_AUTH_TOKEN_FILE",
                        "HBSA_AUTH_TOKEN", "--reflection", "HBSA_REFLECTION", "SIGHUP",
                        "--test-device-lost-after"}) {
    EXPECT_NE(help.find(s), std::string::npos) << s;
  }
}

TEST(Config, SessionFlags) {
  absl::StatusOr<ServerConfig> d = ParseConfig({}, Env({}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->session_memory_bytes, int64_t{1} << 30);
  EXPECT_EQ(d->session_page_bytes, 65536);
  EXPECT_EQ(d->session_ttl_seconds, 600);
  EXPECT_TRUE(d->session_evict_lru);
  EXPECT_EQ(d->session_max, 4096);
  absl::StatusOr<ServerConfig> c =
      ParseConfig({"--session-memory-bytes", "4096", "--session-page-bytes=1024", "--session-eviction",
                   "none", "--session-ttl-seconds", "2.5", "--session-max-ttl-seconds", "60"},
                  Env({{"HBSA_SESSION_MAX", "7"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->session_memory_bytes, 4096);
  EXPECT_EQ(c->session_page_bytes, 1024);
  EXPECT_FALSE(c->session_evict_lru);
  EXPECT_EQ(c->session_ttl_seconds, 2.5);
  EXPECT_EQ(c->session_max_ttl_seconds, 60);
  EXPECT_EQ(c->session_max, 7);
  for (const auto& [args, needle] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--session-eviction", "fifo"}, "must be lru or none"},
           {{"--session-page-bytes", "100"}, "session-page-bytes"},
           {{"--session-ttl-seconds", "0"}, "must be a number of seconds in (0, 31536000]"},
           {{"--session-max", "0"}, "session-max"}}) {
    absl::StatusOr<ServerConfig> bad = ParseConfig(args, Env({}));
    ASSERT_FALSE(bad.ok()) << needle;
    EXPECT_NE(bad.status().message().find(needle), absl::string_view::npos) << bad.status();
  }
  const std::string help = HelpText();
  for (const char* s : {"--session-memory-bytes", "HBSA_SESSION_MEMORY_BYTES", "--session-page-bytes",
                        "--session-ttl-seconds", "--session-max-ttl-seconds", "--session-eviction",
                        "HBSA_SESSION_EVICTION", "--session-max"}) {
    EXPECT_NE(help.find(s), std::string::npos) << s;
  }
}

TEST(Config, VersionFlag) {
  absl::StatusOr<ServerConfig> c = ParseConfig({"--version"}, Env({}));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->version);
  EXPECT_FALSE(c->help);
  c = ParseConfig({"-h"}, Env({}));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->help);
  EXPECT_FALSE(c->version);
}

TEST(StatusMap, KeepsCodeAndMessage) {
  const std::vector<std::pair<absl::Status, grpc::StatusCode>> cases = {
      {absl::InvalidArgumentError("q.data bad"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::UnimplementedError("x"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::ResourceExhaustedError("x"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::UnavailableError("x"), grpc::StatusCode::UNAVAILABLE},
      {absl::DeadlineExceededError("x"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::CancelledError("x"), grpc::StatusCode::CANCELLED},
      {absl::InternalError("x"), grpc::StatusCode::INTERNAL},
  };
  for (const auto& [in, want] : cases) {
    const grpc::Status g = ToGrpcStatus(in);
    EXPECT_EQ(g.error_code(), want);
    EXPECT_EQ(g.error_message(), std::string(in.message()));
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::UnknownError("odd")).error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::OK), "OK");
}

TEST(Heuristics, CpuThreads) {
  // Tiny work: one thread, whatever the machine.
  EXPECT_EQ(CpuThreadsForRequest(1e5, 16, 1), 1);
  // Big work alone: every thread.
  EXPECT_EQ(CpuThreadsForRequest(1e12, 16, 1), 16);
  // Big work shared by 4 active requests: a quarter each.
  EXPECT_EQ(CpuThreadsForRequest(1e12, 16, 4), 4);
  // More requests than threads: one each.
  EXPECT_EQ(CpuThreadsForRequest(1e12, 4, 9), 1);
  // Medium work: limited by work per thread (2e7 each).
  EXPECT_EQ(CpuThreadsForRequest(6e7, 16, 1), 3);
  EXPECT_EQ(CpuThreadsForRequest(1e12, 0, 0), 1);
}

TEST(Heuristics, DenseMaskForm) {
  EXPECT_FALSE(DenseMaskToCompact(1000));
  EXPECT_FALSE(DenseMaskToCompact(kMaxUnpackedDenseMaskEntries));
  EXPECT_TRUE(DenseMaskToCompact(kMaxUnpackedDenseMaskEntries + 1));
}

TEST(MaskConvert, UnpackAndPadBits) {
  const std::string bits("\x05\x02", 2);  // bits 0, 2, 9
  ASSERT_TRUE(CheckPackedBits(bits, 10, "f").ok());
  EXPECT_EQ(UnpackBits(bits, 10), (std::vector<uint8_t>{1, 0, 1, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_FALSE(CheckPackedBits(bits, 9, "f").ok());   // bit 9 is a pad bit for 9 entries
  EXPECT_FALSE(CheckPackedBits(bits, 17, "f").ok());  // needs 3 bytes
  const absl::Status s = CheckPackedBits(bits, 20, "dense_mask.bits");
  EXPECT_NE(s.message().find("dense_mask.bits"), absl::string_view::npos);
}

// Two sequences: q lengths 3, 5 (Sq = 2: 2 + 3 blocks), k lengths 4, 2 (Sk = 2: 2 + 1 blocks).
struct TinyLayout {
  std::vector<int32_t> cu_q{0, 3, 8}, cu_k{0, 4, 6};
  BlockLayoutStorage storage{2, cu_q.data(), cu_k.data(), 2, 2};
};

std::string Pack(const std::vector<int>& on, int64_t count) {
  std::string bits(static_cast<size_t>((count + 7) / 8), '\0');
  for (int n : on) bits[static_cast<size_t>(n / 8)] |= static_cast<char>(1 << (n % 8));
  return bits;
}

TEST(MaskConvert, DenseBitsToCompactKeepsInSequencePairsOnly) {
  TinyLayout t;
  const BlockLayout& l = t.storage.view();
  ASSERT_EQ(l.num_q_blocks, 5);
  ASSERT_EQ(l.num_k_blocks, 3);
  // Hk = 1, [5, 3]: row i, col j -> bit i*3 + j. On: (0,0) (0,2: cross-seq) (1,1) (2,2) (4,0: cross).
  const std::string bits = Pack({0, 2, 4, 8, 12}, 15);
  CompactMask m = DenseBitsToCompact(bits, l, 1);
  EXPECT_EQ(m.row_offsets, (std::vector<int64_t>{0, 1, 2, 3, 3, 3}));
  EXPECT_EQ(m.col_indices, (std::vector<int32_t>{0, 1, 2}));
}

TEST(MaskConvert, PerSequenceToCompact) {
  TinyLayout t;
  const BlockLayout& l = t.storage.view();
  // Hk = 2. Sequence 0: [2, 2, 2] bits; sequence 1: [2, 3, 1] bits.
  const std::string s0 = Pack({0, 3, 5}, 8);   // h0: (0,0) (1,1); h1: (0,1)
  const std::string s1 = Pack({1, 3, 5}, 6);   // h0: (1,0); h1: (0,0) (2,0)
  absl::StatusOr<CompactMask> m = PerSequenceToCompact({s0, s1}, l, 2);
  ASSERT_TRUE(m.ok()) << m.status();
  // Rows h*5 + i; global key block of sequence 1's local 0 is 2.
  EXPECT_EQ(m->row_offsets, (std::vector<int64_t>{0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6}));
  EXPECT_EQ(m->col_indices, (std::vector<int32_t>{0, 1, 2, 1, 2, 2}));
  EXPECT_FALSE(PerSequenceToCompact({s0}, l, 2).ok());
  const std::string two_bytes("\x01\x00", 2);  // sequence 1 needs 1 byte
  const absl::Status bad = PerSequenceToCompact({s0, two_bytes}, l, 2).status();
  EXPECT_NE(bad.message().find("per_sequence_mask.sequences[1]"), absl::string_view::npos) << bad;
}

TEST(Translate, WarmupRequestTranslatesAndNamesProtoFields) {
  TranslateLimits limits{536870912, int64_t{1} << 30};
  v1::AttendRequest r = MakeWarmupRequest();
  absl::StatusOr<std::unique_ptr<TranslatedRequest>> t = Translate(r, limits);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->mask_form, "dense");
  EXPECT_EQ((*t)->args.mask_format, MaskFormat::kDense);
  EXPECT_EQ((*t)->args.num_heads_q, 2);
  EXPECT_EQ((*t)->out_bytes, 14 * 2 * 32 * 2);
  EXPECT_EQ((*t)->lse_bytes, 14 * 2 * 4);
  EXPECT_EQ((*t)->args.out.data, nullptr);  // the executor allocates outputs

  r.mutable_q()->set_shape(1, 3);  // Hq = 3 with Hk = 2
  r.mutable_q()->mutable_data()->resize(14 * 3 * 32 * 2, '\x3c');
  for (v1::Tensor* kv : {r.mutable_k(), r.mutable_v()}) {
    kv->set_shape(1, 2);
    kv->mutable_data()->resize(19 * 2 * 32 * 2, '\x3c');
  }
  t = Translate(r, limits);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("q.shape[1] (num_heads_q)"), absl::string_view::npos) << t.status();

  r = MakeWarmupRequest();
  r.mutable_dense_mask()->set_shape(0, 2);
  t = Translate(r, limits);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("dense_mask.shape"), absl::string_view::npos) << t.status();

  // Past the memory budget: RESOURCE_EXHAUSTED.
  t = Translate(MakeWarmupRequest(), TranslateLimits{536870912, 1000});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  // Response past the message limit: RESOURCE_EXHAUSTED.
  t = Translate(MakeWarmupRequest(), TranslateLimits{2048, 0});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(Metrics, LatencyBucketsSpan50usTo60sFinestWhereLatenciesLive) {
  const std::vector<double> b = Metrics::LatencyBuckets();
  ASSERT_EQ(b.size(), 29u);
  EXPECT_DOUBLE_EQ(b.front(), 50e-6);
  EXPECT_DOUBLE_EQ(b.back(), 60.0);
  int per_decade_fine = 0, coarse = 0;
  for (size_t i = 1; i < b.size(); ++i) {
    ASSERT_GT(b[i], b[i - 1]);
    const double ratio = b[i] / b[i - 1];
    if (b[i] <= 0.1 + 1e-12 && b[i - 1] >= 100e-6 - 1e-12) {
      EXPECT_LE(ratio, 1.67) << b[i];  // 1-1.5-2-3-5-7.5: at most x5/3 between bounds
      ++per_decade_fine;
    } else {
      ++coarse;
    }
  }
  EXPECT_EQ(per_decade_fine, 18);  // three decades, six steps each
  EXPECT_EQ(coarse, 10);
}

TEST(ProcessMetrics, ParsesProcStatWithAHostileCommandName) {
  // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime(14) stime(15) cutime cstime priority nice num_threads(20) itrealvalue starttime(22)
  // vsize(23) rss(24) ...
  const std::string stat =
      "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 7 0 9000 "
      "123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  std::optional<ProcStat> p = ParseProcStat(stat);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->utime_ticks, 250u);
  EXPECT_EQ(p->stime_ticks, 125u);
  EXPECT_EQ(p->num_threads, 7);
  EXPECT_EQ(p->start_ticks, 9000u);
  EXPECT_EQ(p->vsize_bytes, 123456789u);
  EXPECT_EQ(p->rss_pages, 2048);
  EXPECT_FALSE(ParseProcStat("4242 (cut short) S 1 2 3").has_value());
  EXPECT_FALSE(ParseProcStat("no parenthesis at all").has_value());
  EXPECT_EQ(ParseBootTime("cpu  1 2 3\nbtime 1764640000\nprocesses 9\n"), 1764640000);
  EXPECT_FALSE(ParseBootTime("cpu  1 2 3\n").has_value());
}

TEST(ProcessMetrics, CollectsThisProcess) {
  std::map<std::string, double> got;
  for (const prometheus::MetricFamily& f : ProcessCollector().Collect()) {
    ASSERT_EQ(f.metric.size(), 1u) << f.name;
    got[f.name] = f.type == prometheus::MetricType::Counter ? f.metric[0].counter.value : f.metric[0].gauge.value;
  }
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_threads", "process_start_time_seconds",
                           "process_open_fds", "process_max_fds"}) {
    EXPECT_EQ(got.count(name), 1u) << name;
  }
  EXPECT_GT(got["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GE(got["process_open_fds"], 3);  // stdin, stdout, stderr
  // An extra descriptor shows up on the next scrape.
  const double before = got["process_open_fds"];
  FILE* f = fopen("/proc/self/stat", "r");
  ASSERT_NE(f, nullptr);
  double after = -1;
  for (const prometheus::MetricFamily& fam : ProcessCollector().Collect()) {
    if (fam.name == "process_open_fds") after = fam.metric[0].gauge.value;
  }
  fclose(f);
  EXPECT_EQ(after, before + 1);
}

// A stand-in for libnvidia-ml: two GPUs by PCI bus id; the second has no power sensor.
namespace fake_nvml {
int inits = 0, shutdowns = 0;
int Init() { return ++inits, 0; }
int Shutdown() { return ++shutdowns, 0; }
int Handle(const char* bus, NvmlApi::Device* d) {
  static int a = 0, b = 1;
  if (std::string(bus) == "0000:3b:00.0") *d = &a;
  else if (std::string(bus) == "0000:86:00.0") *d = &b;
  else return 13;  // NVML_ERROR_NOT_FOUND
  return 0;
}
int Which(NvmlApi::Device d) { return *static_cast<int*>(d); }
int Util(NvmlApi::Device d, NvmlApi::Utilization* u) {
  u->gpu = Which(d) == 0 ? 75 : 5;
  u->memory = 10;
  return 0;
}
int Mem(NvmlApi::Device d, NvmlApi::Memory* m) {
  m->total = 80ull << 30;
  m->used = Which(d) == 0 ? 40ull << 30 : 1ull << 30;
  m->free = m->total - m->used;
  return 0;
}
int Power(NvmlApi::Device d, unsigned int* mw) {
  if (Which(d) == 1) return 3;  // NVML_ERROR_NOT_SUPPORTED
  *mw = 312500;
  return 0;
}
int Temp(NvmlApi::Device, int sensor, unsigned int* c) {
  if (sensor != 0) return 2;
  *c = 61;
  return 0;
}
NvmlApi Api() {
  NvmlApi api;
  api.init = Init;
  api.shutdown = Shutdown;
  api.handle_by_pci_bus_id = Handle;
  api.utilization = Util;
  api.memory = Mem;
  api.power_milliwatts = Power;
  api.temperature = Temp;
  return api;
}
}  // namespace fake_nvml

TEST(GpuMetrics, FamiliesByDeviceFromNvmlAndNothingForWhatItRefuses) {
  fake_nvml::inits = fake_nvml::shutdowns = 0;
  std::map<std::string, double> got;  // "family{device}" -> value
  {
    absl::StatusOr<std::shared_ptr<GpuCollector>> c =
        GpuCollector::Make(fake_nvml::Api(), {{"0", "0000:3b:00.0"}, {"1", "0000:86:00.0"}});
    ASSERT_TRUE(c.ok()) << c.status();
    for (const prometheus::MetricFamily& f : (*c)->Collect()) {
      EXPECT_EQ(f.type, prometheus::MetricType::Gauge);
      for (const prometheus::ClientMetric& m : f.metric) {
        ASSERT_EQ(m.label.size(), 1u);
        EXPECT_EQ(m.label[0].name, "device");
        got[f.name + "{" + m.label[0].value + "}"] = m.gauge.value;
      }
    }
  }
  EXPECT_EQ(fake_nvml::inits, 1);
  EXPECT_EQ(fake_nvml::shutdowns, 1);  // by the destructor
  EXPECT_DOUBLE_EQ(got["hbsa_gpu_utilization_ratio{0}"], 0.75);
  EXPECT_DOUBLE_EQ(got["hbsa_gpu_utilization_ratio{1}"], 0.05);
  EXPECT_DOUBLE_EQ(got["hbsa_gpu_memory_used_bytes{0}"], 40.0 * (1ull << 30));
  EXPECT_DOUBLE_EQ(got["hbsa_gpu_memory_total_bytes{1}"], 80.0 * (1ull << 30));
  EXPECT_DOUBLE_EQ(got["hbsa_gpu_power_watts{0}"], 312.5);
  EXPECT_EQ(got.count("hbsa_gpu_power_watts{1}"), 0u);  // refused: left out, not 0
  EXPECT_DOUBLE_EQ(got["hbsa_gpu_temperature_celsius{1}"], 61);
  EXPECT_EQ(got.size(), 9u);

  // A GPU NVML does not know: no collector (the server then serves no GPU families).
  absl::StatusOr<std::shared_ptr<GpuCollector>> unknown =
      GpuCollector::Make(fake_nvml::Api(), {{"0", "0000:3b:00.0"}, {"1", "0000:ff:00.0"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(unknown.status().message().find("0000:ff:00.0"), std::string::npos) << unknown.status();
  EXPECT_EQ(fake_nvml::shutdowns, 2);  // initialised, then shut down again
}

TEST(GpuMetrics, LoadNvmlFailsCleanlyWithoutADriver) {
  // This machine may or may not have a driver; either way the answer is a clear one.
  absl::StatusOr<NvmlApi> api = LoadNvml();
  if (!api.ok()) {
    EXPECT_EQ(api.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(api.status().message().find("libnvidia-ml.so.1"), std::string::npos) << api.status();
  } else {
    EXPECT_NE(api->init, nullptr);
    EXPECT_NE(api->temperature, nullptr);
  }
}

}  // namespace
}  // namespace hbsa::server
