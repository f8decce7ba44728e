// bench_main.cc: `hbsa-bench`, the load generator: flags, workload, levels, server metrics
// scraped around each level, and the report (stdout table, --csv, --json).
#include <cstdio>
#include <fstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench_runner.h"
#include "bench_workload.h"
#include "connect.h"
#include "flags.h"
#include "metrics_scrape.h"
#include "nlohmann/json.hpp"

namespace hbsa::tools {
namespace {

constexpr char kHelp[] = R"(hbsa-bench: load generator for the hbsa attention service (like Triton's perf_analyzer).

It sends one request over and over: at a fixed number of calls in flight (concurrency mode) or
at Poisson-distributed arrivals of a given mean rate (request-rate mode). For each level it sends
warm-up requests, then measures in windows until the last --stable-windows windows agree within
--stability (or --max-windows ran), and reports latency percentiles over those windows,
throughput and payload bandwidth. Optional: compare a fraction of the answers with the fast CPU
backend (a golden case's own expected output with --case), and scrape the server's Prometheus /metrics before and after each level.

Usage:
  hbsa-bench --target HOST:PORT [workload] [mode] [measurement] [output]
  hbsa-bench --version | --help (-h)

Workload (synthetic by default; every sequence has the same lengths):
  --case DIR               send a golden-format case folder instead of synthetic data
  --batch N                sequences per request (default 4)
  --seqlen-q N             query rows per sequence (default 512)
  --seqlen-k N             key rows per sequence (default: --seqlen-q)
  --heads-q N, --heads-k N query / KV heads (default 8, 2)
  --head-dim N             D (default 64)
  --dtype fp16|bf16|fp32   (default fp16)
  --q-block-size N, --k-block-size N   mask block sizes (default 64, 64)
  --density F              fraction of mask blocks on, (0, 1] (default 0.5)
  --causal                 bottom-right causal rule
  --mask-form dense|per_sequence|compact   how the mask travels (default dense)
  --lse                    also ask for the LSE
  --seed N                 inputs and mask (default 1)
Mode (one of):
  --concurrency LIST       calls kept in flight, e.g. 1,2,4,8 (default 1)
  --request-rate LIST      mean arrivals per second, e.g. 50,100 (Poisson)
  --max-outstanding N      request-rate mode: arrivals beyond N in flight are skipped (1024)
Measurement:
  --window-ms N            measurement window (default 2000)
  --max-windows N          bound on windows per level (default 10)
  --stable-windows N       windows that must agree (default 3)
  --stability F            allowed throughput spread, fraction (default 0.10)
  --warmup N               warm-up requests per level (default 8)
  --timeout-ms N           deadline per request (default 60000)
  --check-fraction F       compare this fraction of responses with the CPU backend (default 0)
  --max-checks N           at most N comparisons per level (default 32)
  --metrics-url URL        e.g. http://localhost:9464/metrics: server counts and stage times
Output:
  --csv FILE               one row per level
  --json FILE              {"workload": ..., "levels": [...]}

Example (server on this machine, CPU backend):
  hbsa-bench --target localhost:50051 --concurrency 1,2,4 --batch 2 --seqlen-q 256 \
             --window-ms 1000 --check-fraction 0.1 --metrics-url http://localhost:9464/metrics \
             --csv bench.csv --json bench.json
Exit status: 0 ok, 1 a spot-check failed or a level saw errors, 2 usage error, 3 cannot run.
)";

// Server-side view of a level: deltas of the hbsa_* families between two scrapes.
struct ServerDelta {
  bool available = false;
  double requests_ok = 0, requests_error = 0;
  double latency_mean_ms = 0;
  std::map<std::string, double> stage_mean_ms;  // queue, h2d, kernel, d2h
};

ServerDelta Diff(const std::vector<MetricSample>& a, const std::vector<MetricSample>& b) {
  ServerDelta d;
  d.available = true;
  auto delta = [&](const std::string& name, const std::map<std::string, std::string>& m) {
    return SumSamples(b, name, m) - SumSamples(a, name, m);
  };
  const double all = delta("hbsa_requests_total", {{"method", "Attend"}});
  d.requests_ok = delta("hbsa_requests_total", {{"method", "Attend"}, {"code", "OK"}});
  d.requests_error = all - d.requests_ok;
  const double n = delta("hbsa_request_duration_seconds_count", {{"method", "Attend"}});
  if (n > 0) d.latency_mean_ms = 1e3 * delta("hbsa_request_duration_seconds_sum", {{"method", "Attend"}}) / n;
  for (const char* stage : {"queue", "h2d", "kernel", "d2h"}) {
    const double c = delta("hbsa_stage_duration_seconds_count", {{"stage", stage}});
    d.stage_mean_ms[stage] = c > 0 ? 1e3 * delta("hbsa_stage_duration_seconds_sum", {{"stage", stage}}) / c : 0;
  }
  return d;
}

absl::StatusOr<std::vector<MetricSample>> Scrape(const std::string& url) {
  absl::StatusOr<std::string> body = HttpGet(url, std::chrono::milliseconds(5000));
  if (!body.ok()) return body.status();
  return ParsePrometheusText(*body);
}

nlohmann::json ToJson(const LevelResult& r, const ServerDelta& s) {
  nlohmann::json j = {
      {"mode", r.mode}, {"concurrency", r.concurrency}, {"request_rate", r.request_rate},
      {"windows", r.windows}, {"stable", r.stable}, {"seconds", r.seconds},
      {"requests", r.requests}, {"errors", r.errors}, {"error_codes", r.error_codes},
      {"skipped", r.skipped}, {"throughput_rps", r.throughput_rps},
      {"payload_gbps", r.payload_gbps}, {"latency_mean_ms", r.latency_mean_ms},
      {"p50_ms", r.p50_ms}, {"p90_ms", r.p90_ms}, {"p95_ms", r.p95_ms}, {"p99_ms", r.p99_ms},
      {"max_ms", r.max_ms}, {"checks", r.checks}, {"check_failures", r.check_failures},
      {"max_abs_err", r.max_abs_err}};
  if (s.available) {
    j["server"] = {{"requests_ok", s.requests_ok}, {"requests_error", s.requests_error},
                   {"latency_mean_ms", s.latency_mean_ms}, {"stage_mean_ms", s.stage_mean_ms}};
  } else {
    j["server"] = nullptr;
  }
  return j;
}

constexpr char kCsvHeader[] =
    "mode,concurrency,request_rate,windows,stable,requests,errors,skipped,throughput_rps,"
    "payload_gbps,latency_mean_ms,p50_ms,p90_ms,p95_ms,p99_ms,max_ms,checks,check_failures,"
    "max_abs_err,server_requests_ok,server_requests_error,server_latency_mean_ms,"
    "server_queue_ms,server_h2d_ms,server_kernel_ms,server_d2h_ms\n";

std::string CsvRow(const LevelResult& r, const ServerDelta& s) {
  std::string row = absl::StrFormat(
      "%s,%d,%g,%d,%d,%d,%d,%d,%.3f,%.6f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%d,%.3g", r.mode,
      r.concurrency, r.request_rate, r.windows, r.stable ? 1 : 0, r.requests, r.errors, r.skipped,
      r.throughput_rps, r.payload_gbps, r.latency_mean_ms, r.p50_ms, r.p90_ms, r.p95_ms, r.p99_ms,
      r.max_ms, r.checks, r.check_failures, r.max_abs_err);
  if (s.available) {
    absl::StrAppendFormat(&row, ",%g,%g,%.4f,%.4f,%.4f,%.4f,%.4f\n", s.requests_ok,
                          s.requests_error, s.latency_mean_ms, s.stage_mean_ms.at("queue"),
                          s.stage_mean_ms.at("h2d"), s.stage_mean_ms.at("kernel"),
                          s.stage_mean_ms.at("d2h"));
  } else {
    row += ",,,,,,,\n";
  }
  return row;
}

int Usage(absl::string_view msg) {
  std::cerr << "hbsa-bench: " << msg << " (see hbsa-bench --help)\n";
  return 2;
}

int Main(int argc, char** argv) {
  auto parsed = Flags::Parse(
      argc, argv, 1,
      With({"target", "case", "batch", "seqlen-q", "seqlen-k", "heads-q", "heads-k", "head-dim",
            "dtype", "q-block-size", "k-block-size", "density", "mask-form", "seed",
            "concurrency", "request-rate", "max-outstanding", "window-ms", "max-windows",
            "stable-windows", "stability", "warmup", "timeout-ms", "check-fraction",
            "max-checks", "metrics-url", "csv", "json"},
           ConnectValueFlags()),
      With({"causal", "lse", "help", "version"}, ConnectBoolFlags()));
  if (!parsed.ok()) return Usage(parsed.status().message());
  const Flags& f = *parsed;
  if (f.GetBool("help")) {
    std::cout << kHelp << "\n" << kConnectHelp;
    return 0;
  }
  if (f.GetBool("version")) {
    std::cout << "hbsa-bench " << HBSA_VERSION << "\n";
    return 0;
  }
  if (!f.Has("target")) return Usage("--target is required");
  if (f.Has("concurrency") && f.Has("request-rate")) return Usage("give --concurrency or --request-rate, not both");

  // Integer and number flags, each checked with its name.
  std::map<std::string, int64_t> ints;
  for (auto [name, def] : std::initializer_list<std::pair<const char*, int64_t>>{
           {"batch", 4}, {"seqlen-q", 512}, {"heads-q", 8}, {"heads-k", 2}, {"head-dim", 64},
           {"q-block-size", 64}, {"k-block-size", 64}, {"seed", 1}, {"max-outstanding", 1024},
           {"window-ms", 2000}, {"max-windows", 10}, {"stable-windows", 3}, {"warmup", 8},
           {"timeout-ms", 60000}, {"max-checks", 32}}) {
    absl::StatusOr<int64_t> v = f.GetInt(name, def);
    if (!v.ok()) return Usage(v.status().message());
    ints[name] = *v;
  }
  absl::StatusOr<int64_t> seqlen_k = f.GetInt("seqlen-k", ints["seqlen-q"]);
  absl::StatusOr<double> density = f.GetDouble("density", 0.5);
  absl::StatusOr<double> stability = f.GetDouble("stability", 0.10);
  absl::StatusOr<double> check_fraction = f.GetDouble("check-fraction", 0);
  for (const absl::Status& s : {seqlen_k.status(), density.status(), stability.status(), check_fraction.status()}) {
    if (!s.ok()) return Usage(s.message());
  }
  if (ints["window-ms"] < 10 || ints["window-ms"] > 600000) return Usage("--window-ms must be in [10, 600000]");
  if (ints["max-windows"] < 1 || ints["max-windows"] > 1000) return Usage("--max-windows must be in [1, 1000]");
  if (ints["stable-windows"] < 1 || ints["stable-windows"] > ints["max-windows"]) return Usage("--stable-windows must be in [1, --max-windows]");
  if (ints["warmup"] < 0 || ints["warmup"] > 100000) return Usage("--warmup must be in [0, 100000]");
  if (*check_fraction < 0 || *check_fraction > 1) return Usage("--check-fraction must be in [0, 1]");

  client::RequestOptions ro;
  const auto form = client::ParseMaskForm(f.Get("mask-form", "dense"));
  if (!form) return Usage("--mask-form must be dense, per_sequence or compact");
  ro.mask_form = *form;
  ro.return_lse = f.GetBool("lse");
  absl::StatusOr<std::unique_ptr<Workload>> w;
  if (f.Has("case")) {
    w = LoadCaseWorkload(f.Get("case"), ro);
  } else {
    SyntheticSpec s;
    const auto dtype = ParseDType(f.Get("dtype", "fp16"));
    if (!dtype) return Usage("--dtype must be fp16, bf16 or fp32");
    s.dtype = *dtype;
    s.batch = static_cast<int32_t>(ints["batch"]);
    s.seqlen_q = static_cast<int32_t>(ints["seqlen-q"]);
    s.seqlen_k = static_cast<int32_t>(*seqlen_k);
    s.heads_q = static_cast<int32_t>(ints["heads-q"]);
    s.heads_k = static_cast<int32_t>(ints["heads-k"]);
    s.head_dim = static_cast<int32_t>(ints["head-dim"]);
    s.q_block_size = static_cast<int32_t>(ints["q-block-size"]);
    s.k_block_size = static_cast<int32_t>(ints["k-block-size"]);
    s.density = *density;
    s.causal = f.GetBool("causal");
    s.seed = static_cast<uint64_t>(ints["seed"]);
    w = MakeSyntheticWorkload(s, ro);
  }
  if (!w.ok()) {
    std::cerr << "hbsa-bench: workload: " << w.status().message() << "\n";
    return absl::IsInvalidArgument(w.status()) ? 2 : 3;
  }
  Workload& work = **w;

  RunConfig config;
  config.window = std::chrono::milliseconds(ints["window-ms"]);
  config.max_windows = static_cast<int>(ints["max-windows"]);
  config.stable_windows = static_cast<int>(ints["stable-windows"]);
  config.stability = *stability;
  config.warmup_requests = ints["warmup"];
  config.check_fraction = *check_fraction;
  config.max_checks = ints["max-checks"];
  config.max_outstanding = ints["max-outstanding"];
  config.call.timeout = std::chrono::milliseconds(ints["timeout-ms"]);
  if (config.check_fraction > 0) {
    if (absl::Status s = ComputeExpected(&work); !s.ok()) {
      std::cerr << "hbsa-bench: expected answer (CPU backend): " << s.message() << "\n";
      return 3;
    }
  }

  std::vector<int64_t> concurrencies;
  std::vector<double> rates;
  if (f.Has("request-rate")) {
    for (absl::string_view part : absl::StrSplit(f.Get("request-rate"), ',', absl::SkipEmpty())) {
      double r;
      if (!absl::SimpleAtod(part, &r) || !(r > 0) || r > 1e6) return Usage("--request-rate must list rates in (0, 1e6]");
      rates.push_back(r);
    }
    if (rates.empty()) return Usage("--request-rate is empty");
  } else {
    auto c = f.GetIntList("concurrency", {1});
    if (!c.ok()) return Usage(c.status().message());
    for (int64_t n : *c) {
      if (n < 1 || n > 4096) return Usage("--concurrency values must be in [1, 4096]");
    }
    concurrencies = *c;
  }

  std::cout << "hbsa-bench: " << work.description << "\n"
            << absl::StrFormat("request %d bytes, %d allowed pairs; target %s\n",
                               work.request->ByteSizeLong(), work.allowed_pairs, f.Get("target"));
  absl::StatusOr<client::ChannelOptions> connect = ConnectOptions(f);
  if (!connect.ok()) return Usage(connect.status().message());
  client::Client client(f.Get("target"), *connect);
  const std::string metrics_url = f.Get("metrics-url");
  nlohmann::json levels = nlohmann::json::array();
  std::string csv = kCsvHeader;
  bool any_bad = false;
  std::cout << absl::StrFormat("%-12s %8s %7s %10s %9s %9s %9s %9s %9s %7s %s\n", "mode", "level",
                               "stable", "req/s", "GB/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms",
                               "errors", "server (ok, mean ms)");
  const size_t n_levels = rates.empty() ? concurrencies.size() : rates.size();
  for (size_t i = 0; i < n_levels; ++i) {
    std::vector<MetricSample> before;
    bool have_metrics = false;
    if (!metrics_url.empty()) {
      auto s = Scrape(metrics_url);
      if (s.ok()) {
        before = *std::move(s);
        have_metrics = true;
      } else {
        std::cerr << "hbsa-bench: metrics: " << s.status().message() << "\n";
      }
    }
    absl::StatusOr<LevelResult> r = rates.empty()
                                        ? RunConcurrencyLevel(client, work, concurrencies[i], config)
                                        : RunRateLevel(client, work, rates[i], config);
    if (!r.ok()) {
      std::cerr << "hbsa-bench: warm-up failed: " << absl::StatusCodeToString(r.status().code())
                << ": " << r.status().message() << "\n";
      return 3;
    }
    ServerDelta server;
    if (have_metrics) {
      auto after = Scrape(metrics_url);
      if (after.ok()) server = Diff(before, *after);
    }
    const std::string level = rates.empty() ? absl::StrCat(r->concurrency) : absl::StrFormat("%g/s", r->request_rate);
    std::cout << absl::StrFormat("%-12s %8s %7s %10.2f %9.4f %9.3f %9.3f %9.3f %9.3f %7d %s\n",
                                 r->mode, level, r->stable ? "yes" : "no", r->throughput_rps,
                                 r->payload_gbps, r->p50_ms, r->p90_ms, r->p95_ms, r->p99_ms,
                                 r->errors,
                                 server.available ? absl::StrFormat("%g ok, %.3f ms", server.requests_ok, server.latency_mean_ms)
                                                  : std::string("-"));
    if (r->checks > 0) {
      std::cout << absl::StrFormat("  spot-checks: %d compared, %d failed, max|out-ref| %.3g%s\n",
                                   r->checks, r->check_failures, r->max_abs_err,
                                   r->first_check_failure.empty() ? "" : absl::StrCat(" (", r->first_check_failure, ")"));
    }
    for (const auto& [code, n] : r->error_codes) std::cout << "  errors " << code << ": " << n << "\n";
    any_bad = any_bad || r->check_failures > 0 || r->errors > 0;
    levels.push_back(ToJson(*r, server));
    csv += CsvRow(*r, server);
  }
  if (f.Has("csv")) {
    std::ofstream out(f.Get("csv"));
    out << csv;
    if (!out) {
      std::cerr << "hbsa-bench: cannot write " << f.Get("csv") << "\n";
      return 3;
    }
  }
  if (f.Has("json")) {
    nlohmann::json doc = {{"workload", work.description},
                          {"target", f.Get("target")},
                          {"request_bytes", work.request->ByteSizeLong()},
                          {"allowed_pairs", work.allowed_pairs},
                          {"window_ms", ints["window-ms"]},
                          {"levels", levels}};
    std::ofstream out(f.Get("json"));
    out << doc.dump(2) << "\n";
    if (!out) {
      std::cerr << "hbsa-bench: cannot write " << f.Get("json") << "\n";
      return 3;
    }
  }
  return any_bad ? 1 : 0;
}

}  // namespace
}  // namespace hbsa::tools

int main(int argc, char** argv) { return hbsa::tools::Main(argc, argv); }
