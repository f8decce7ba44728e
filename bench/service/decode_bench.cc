// bench/service/decode_bench.cc: hbsa-decode-bench, decode steps against server-resident K/V
// (issue 13) compared with the same steps sent as full K/V per call.
//
// For each (open sessions, context length, sparsity) it opens `sessions` sessions on a running
// hbsa-server (--target), fills each with one sequence of `context` tokens by Append (chunks of
// at most --append-chunk tokens), then runs `--steps` decode steps per session, all sessions
// stepping at once (one thread each, back to back): one query and one new K/V row per step
// (AttendSession with the row appended in the call), a random block-sparse compact mask over
// the resident key blocks (each block on with probability 1 - sparsity; the last, which holds
// the new token, always on), causal. With --full it then runs the same steps as stateless
// Attend calls carrying the whole K/V (skipped when that is past --max-message-bytes). The
// first step of each configuration is spot-checked: the session answer against the stateless
// answer of the same inputs (max |difference| printed; both run the same kernel on the same
// packed K/V, so it is 0 unless the kernel is not deterministic).
//
// Output: one line per (mode, configuration) with p50/p99 step latency (client wall time), steps
// per second over all sessions, the server's kernel time p50 (AttendResponse timings), request
// bytes per step, and with --json the same as JSON lines.
//
//   hbsa-decode-bench --target 127.0.0.1:50051 --sessions 1,16,256 --context 4096,32768
//                     --sparsity 0.5,0.9 --steps 50 --full --json decode.jsonl
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "hbsa/client.h"
#include "hbsa/session.h"

namespace {

using hbsa::client::Session;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::string target = "127.0.0.1:50051";
  std::vector<int> sessions = {1};
  std::vector<int64_t> contexts = {4096};
  std::vector<double> sparsities = {0.9};
  int steps = 50;
  int heads_q = 32, heads_k = 8, head_dim = 128;
  int q_block = 16, k_block = 64;
  int64_t append_chunk = 4096;
  int64_t max_message_bytes = int64_t{512} << 20;
  bool full = false;
  std::string json;
};

template <typename T>
bool ParseList(const std::string& v, std::vector<T>* out) {
  out->clear();
  for (absl::string_view p : absl::StrSplit(v, ',')) {
    T x{};
    if constexpr (std::is_same_v<T, double>) {
      if (!absl::SimpleAtod(p, &x)) return false;
    } else {
      if (!absl::SimpleAtoi(p, &x)) return false;
    }
    out->push_back(x);
  }
  return !out->empty();
}

bool Parse(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--full") {
      f->full = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    bool ok = true;
    if (a == "--target")
      f->target = v;
    else if (a == "--sessions")
      ok = ParseList(v, &f->sessions);
    else if (a == "--context")
      ok = ParseList(v, &f->contexts);
    else if (a == "--sparsity")
      ok = ParseList(v, &f->sparsities);
    else if (a == "--steps")
      ok = absl::SimpleAtoi(v, &f->steps);
    else if (a == "--heads-q")
      ok = absl::SimpleAtoi(v, &f->heads_q);
    else if (a == "--heads-k")
      ok = absl::SimpleAtoi(v, &f->heads_k);
    else if (a == "--head-dim")
      ok = absl::SimpleAtoi(v, &f->head_dim);
    else if (a == "--q-block")
      ok = absl::SimpleAtoi(v, &f->q_block);
    else if (a == "--k-block")
      ok = absl::SimpleAtoi(v, &f->k_block);
    else if (a == "--append-chunk")
      ok = absl::SimpleAtoi(v, &f->append_chunk);
    else if (a == "--max-message-bytes")
      ok = absl::SimpleAtoi(v, &f->max_message_bytes);
    else if (a == "--json")
      f->json = v;
    else
      return false;
    if (!ok) return false;
  }
  return true;
}

// bf16 bits of uniform values in [-1, 1).
std::vector<uint16_t> RandomBf16(std::mt19937* rng, size_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<uint16_t> x(n);
  for (uint16_t& b : x) {
    const float f = u(*rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    b = static_cast<uint16_t>(bits >> 16);
  }
  return x;
}

float Bf16ToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The compact mask of one decode query (Nq = 1 per KV head) over nk key blocks.
void DecodeMask(std::mt19937* rng, int hk, int64_t nk, double sparsity, std::vector<int64_t>* ro,
                std::vector<int32_t>* ci) {
  std::bernoulli_distribution on(1.0 - sparsity);
  ro->assign(1, 0);
  ci->clear();
  for (int h = 0; h < hk; ++h) {
    for (int64_t j = 0; j < nk; ++j) {
      if (j == nk - 1 || on(*rng)) ci->push_back(static_cast<int32_t>(j));
    }
    ro->push_back(static_cast<int64_t>(ci->size()));
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

struct Run {
  std::vector<double> latency, kernel;
  int64_t request_bytes = 0;
  double seconds = 0;
  int errors = 0;
  std::string first_error;
};

void Report(const Flags& f, const char* mode, int sessions, int64_t context, double sparsity,
            const Run& r, double spot_check, std::ofstream* json) {
  const double steps = static_cast<double>(r.latency.size());
  std::printf(
      "%-8s sessions=%-4d context=%-7lld sparsity=%.2f  p50=%8.3f ms  p99=%8.3f ms  %9.1f steps/s  "
      "kernel p50=%8.3f ms  request=%lld B/step  errors=%d%s%s\n",
      mode, sessions, static_cast<long long>(context), sparsity, 1e3 * Percentile(r.latency, 0.5),
      1e3 * Percentile(r.latency, 0.99), r.seconds > 0 ? steps / r.seconds : 0.0,
      1e3 * Percentile(r.kernel, 0.5),
      static_cast<long long>(steps > 0 ? r.request_bytes / steps : 0), r.errors,
      r.errors ? " first: " : "", r.first_error.c_str());
  if (spot_check >= 0)
    std::printf("         spot check: max |session - full| = %.3g\n", spot_check);
  if (json != nullptr && json->is_open()) {
    nlohmann::json j = {{"mode", mode},
                        {"sessions", sessions},
                        {"context", context},
                        {"sparsity", sparsity},
                        {"heads_q", f.heads_q},
                        {"heads_k", f.heads_k},
                        {"head_dim", f.head_dim},
                        {"steps", steps},
                        {"p50_s", Percentile(r.latency, 0.5)},
                        {"p99_s", Percentile(r.latency, 0.99)},
                        {"steps_per_s", r.seconds > 0 ? steps / r.seconds : 0},
                        {"kernel_p50_s", Percentile(r.kernel, 0.5)},
                        {"errors", r.errors},
                        {"request_bytes_per_step", steps > 0 ? r.request_bytes / steps : 0},
                        {"spot_check_max_abs", spot_check}};
    *json << j.dump() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  if (!Parse(argc, argv, &f)) {
    std::fprintf(stderr,
                 "usage: hbsa-decode-bench [--target H:P] [--sessions 1,16] [--context 4096,32768] "
                 "[--sparsity 0.5,0.9] [--steps N] [--heads-q 32] [--heads-k 8] [--head-dim 128] "
                 "[--q-block 16] [--k-block 64] [--append-chunk 4096] [--full] [--json FILE]\n");
    return 2;
  }
  hbsa::client::ChannelOptions co;
  co.max_message_bytes = f.max_message_bytes;
  co.load_balancing_policy = "pick_first";
  auto channel = hbsa::client::MakeChannel(f.target, co);
  hbsa::client::Client client(channel);
  std::ofstream json;
  if (!f.json.empty()) json.open(f.json, std::ios::app);
  const int64_t row = int64_t{f.heads_k} * f.head_dim;  // elements per K (or V) row
  hbsa::client::CallOptions call;
  call.timeout = std::chrono::milliseconds(120000);

  for (int n : f.sessions) {
    for (int64_t context : f.contexts) {
      // Open and fill the sessions (one sequence "s" each).
      std::vector<Session> sessions;
      std::vector<std::vector<uint16_t>> ks(n), vs(n);
      bool ok = true;
      for (int i = 0; i < n && ok; ++i) {
        std::mt19937 rng(1000 + i);
        ks[i] = RandomBf16(&rng, static_cast<size_t>(context) * row);
        vs[i] = RandomBf16(&rng, static_cast<size_t>(context) * row);
        absl::StatusOr<Session> s = Session::Open(
            channel,
            {.dtype = hbsa::DType::kBFloat16,
             .num_heads_k = f.heads_k,
             .head_dim = f.head_dim,
             .capacity_tokens = context + f.steps * static_cast<int64_t>(f.sparsities.size()) + 1},
            call);
        if (!s.ok()) {
          std::fprintf(stderr, "open: %s\n", std::string(s.status().message()).c_str());
          ok = false;
          break;
        }
        for (int64_t r0 = 0; r0 < context && ok; r0 += f.append_chunk) {
          const int64_t m = std::min(f.append_chunk, context - r0);
          hbsa::client::SequenceRows rows{
              {"s"},
              {ks[i].data() + r0 * row, static_cast<size_t>(m * row * 2)},
              {vs[i].data() + r0 * row, static_cast<size_t>(m * row * 2)},
              {0, static_cast<int32_t>(m)}};
          absl::StatusOr<std::vector<int64_t>> l = s->Append(rows, call);
          if (!l.ok()) {
            std::fprintf(stderr, "append: %s\n", std::string(l.status().message()).c_str());
            ok = false;
          }
        }
        sessions.push_back(std::move(*s));
      }
      if (!ok) continue;
      for (double sparsity : f.sparsities) {
        for (const char* mode : {"session", "full"}) {
          const bool full = std::strcmp(mode, "full") == 0;
          if (full && !f.full) continue;
          if (full &&
              2 * (context + f.steps * static_cast<int64_t>(f.sparsities.size()) + 1) * row * 2 >
                  f.max_message_bytes) {
            std::printf(
                "full     sessions=%-4d context=%-7lld: skipped (K/V past --max-message-bytes)\n",
                n, static_cast<long long>(context));
            continue;
          }
          std::vector<Run> runs(n);
          std::atomic<double> spot{-1};
          const Clock::time_point t0 = Clock::now();
          std::vector<std::thread> threads;
          for (int i = 0; i < n; ++i) {
            threads.emplace_back([&, i] {
              std::mt19937 rng(7 * i + static_cast<int>(1000 * sparsity));
              Run& r = runs[i];
              // The K/V this pass attends to: session mode appends each step's row to the
              // session and to ks[i]/vs[i] (which mirror it); full mode works on a copy and
              // leaves the session alone.
              std::vector<uint16_t> k_copy, v_copy;
              if (full) {
                k_copy = ks[i];
                v_copy = vs[i];
              }
              std::vector<uint16_t>& k = full ? k_copy : ks[i];
              std::vector<uint16_t>& v = full ? v_copy : vs[i];
              int64_t length = static_cast<int64_t>(k.size() / row);
              Session& s = sessions[i];
              for (int step = 0; step < f.steps; ++step) {
                std::vector<uint16_t> q =
                    RandomBf16(&rng, static_cast<size_t>(f.heads_q) * f.head_dim);
                std::vector<uint16_t> nk = RandomBf16(&rng, row), nv = RandomBf16(&rng, row);
                k.insert(k.end(), nk.begin(), nk.end());
                v.insert(v.end(), nv.begin(), nv.end());
                ++length;
                std::vector<int64_t> ro;
                std::vector<int32_t> ci;
                DecodeMask(&rng, f.heads_k, (length + f.k_block - 1) / f.k_block, sparsity, &ro,
                           &ci);
                const Clock::time_point c0 = Clock::now();
                absl::StatusOr<hbsa::client::AttendResult> res;
                if (!full) {
                  hbsa::client::SequenceRows add{
                      {"s"}, {nk.data(), nk.size() * 2}, {nv.data(), nv.size() * 2}, {0, 1}};
                  hbsa::client::SessionAttendArgs a;
                  a.sequence_ids = {"s"};
                  a.q = {q.data(), q.size() * 2};
                  a.num_heads_q = f.heads_q;
                  a.cu_seqlens_q = {0, 1};
                  a.append = &add;
                  a.q_block_size = f.q_block;
                  a.k_block_size = f.k_block;
                  a.causal = true;
                  a.mask_format = hbsa::MaskFormat::kCompact;
                  a.compact_mask.row_offsets = {ro.data(), ro.size() * 8};
                  a.compact_mask.col_indices = {ci.data(), ci.size() * 4};
                  absl::StatusOr<hbsa::client::SessionAttendResult> sr = s.Attend(a, call);
                  if (sr.ok())
                    res = std::move(sr->result);
                  else
                    res = sr.status();
                }
                if (full || (step == 0 && i == 0)) {
                  // The same inputs, stateless: the whole K/V travels.
                  const int32_t cu_q[2] = {0, 1};
                  const int32_t cu_k[2] = {0, static_cast<int32_t>(length)};
                  hbsa::AttentionArgs a;
                  a.dtype = hbsa::DType::kBFloat16;
                  a.total_q = 1;
                  a.total_k = length;
                  a.num_heads_q = f.heads_q;
                  a.num_heads_k = f.heads_k;
                  a.head_dim = f.head_dim;
                  a.batch = 1;
                  a.cu_seqlens_q = {cu_q, 8};
                  a.cu_seqlens_k = {cu_k, 8};
                  a.q_block_size = f.q_block;
                  a.k_block_size = f.k_block;
                  a.causal = true;
                  a.mask_format = hbsa::MaskFormat::kCompact;
                  a.compact_mask.row_offsets = {ro.data(), ro.size() * 8};
                  a.compact_mask.col_indices = {ci.data(), ci.size() * 4};
                  a.q = {q.data(), q.size() * 2};
                  a.k = {k.data(), k.size() * 2};
                  a.v = {v.data(), v.size() * 2};
                  hbsa::client::RequestOptions ro;
                  ro.mask_form = hbsa::client::MaskForm::kCompact;
                  absl::StatusOr<hbsa::client::AttendResult> fr = client.Attend(a, ro, call);
                  if (!full && fr.ok() && res.ok()) {
                    double m = 0;
                    const auto* x = reinterpret_cast<const uint16_t*>(res->out.data());
                    const auto* y = reinterpret_cast<const uint16_t*>(fr->out.data());
                    for (size_t e = 0; e < res->out.size() / 2; ++e) {
                      m = std::max(
                          m, static_cast<double>(std::abs(Bf16ToFloat(x[e]) - Bf16ToFloat(y[e]))));
                    }
                    spot.store(m);
                  }
                  if (full) res = std::move(fr);
                }
                const double seconds = std::chrono::duration<double>(Clock::now() - c0).count();
                if (!res.ok()) {
                  if (r.errors++ == 0) r.first_error = std::string(res.status().message());
                  continue;
                }
                if (!(step == 0 && i == 0 && !full))
                  r.latency.push_back(seconds);  // not the checked step
                r.kernel.push_back(res->server_timings.kernel_seconds());
                r.request_bytes += res->request_bytes;
              }
            });
          }
          for (std::thread& t : threads) t.join();
          Run all;
          all.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
          for (const Run& r : runs) {
            all.latency.insert(all.latency.end(), r.latency.begin(), r.latency.end());
            all.kernel.insert(all.kernel.end(), r.kernel.begin(), r.kernel.end());
            all.request_bytes += r.request_bytes;
            all.errors += r.errors;
            if (all.first_error.empty()) all.first_error = r.first_error;
          }
          Report(f, mode, n, context, sparsity, all, full ? -1 : spot.load(), &json);
        }
      }
      for (Session& s : sessions) s.Close(call).IgnoreError();
    }
  }
  return 0;
}
