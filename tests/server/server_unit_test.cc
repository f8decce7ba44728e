// tests/server/server_unit_test.cc: the pure pieces of hbsa-server: config parsing, status
// mapping, heuristics, mask conversion and request translation (no process, no network).
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config.h"
#include "heuristics.h"
#include "hbsa/plan.h"
#include "mask_convert.h"
#include "metrics.h"
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

TEST(Metrics, LatencyBucketsSpan100usTo60s) {
  const std::vector<double> b = Metrics::LatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 100e-6);
  EXPECT_GT(b.back(), 30.0);
  EXPECT_LT(b.back(), 70.0);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_DOUBLE_EQ(b[i], 2 * b[i - 1]);
}

}  // namespace
}  // namespace hbsa::server
