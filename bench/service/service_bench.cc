// bench/service/service_bench.cc: hbsa-service-bench, what a remote attention call costs
// compared with moving its bytes (issue 10, deliverable 1).
//
// One program: it starts a plain gRPC echo service (echo.h; a child process of this binary, same
// gRPC build, channel arguments and message limits) and drives both that echo and our Attend on
// a running hbsa-server (--target), request by request and at each number of calls in flight.
// For every (request, in-flight) pair it prints and records (JSON lines, --json):
//   echo      latency of an echo call of the same request and response sizes
//   ours      end-to-end latency (client --client direct: Client::AttendInto, the zero-copy
//             path; proto: BuildRequest + Attend + CopyToBuffers, the message path; --shm: the
//             tensors in registered shared memory, AttendInto with references), and its split:
//     build     client: caller memory -> request (build, serialise where the client does)
//     transport e2e - build - client read - server total: the wire both ways, gRPC's own
//               framing, and (for clients that hand gRPC a message) its serialisation
//     parse, staging, h2d, kernel, d2h, response: the server's stage timings (AttendResponse)
//     queue     waiting for an executor
//     read      client: response -> caller memory
// Threads issue blocking calls back to back, one thread per call in flight.
//
//   hbsa-service-bench --target 127.0.0.1:50051 --requests sweep65536,sweep1048576,req3mb
//                      --inflight 1,8 --seconds 2 --json out.jsonl
//   hbsa-service-bench --role echo-server --listen 127.0.0.1:50061     (what --echo spawn runs)
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "echo.h"
#include "hbsa/client.h"
#include "workload.h"

extern char** environ;

namespace hbsa::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  std::string role = "client";
  std::string listen;
  std::string target;
  std::string echo = "spawn";       // spawn | none | HOST:PORT
  std::string requests = "sweep65536,sweep1048576,sweep16777216";
  std::string payloads;             // shorthand: sizes -> sweep<BYTES>
  std::string inflight = "1,8";
  std::string client = "direct";    // direct (zero-copy client path) | proto (message path)
  std::string shm;                  // "": bytes on the wire; else a name prefix: shared memory
  std::string label;
  std::string json;
  double seconds = 1.0;
  int min_calls = 4;
  int max_calls = 100000;
  int warmup = 2;
  int channels = 1;                 // connections, shared round robin by the threads
  bool lse = false;
  int64_t max_message_bytes = int64_t{1} << 30;
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a != "--lse" && a != "--help") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        return false;
      }
      v = argv[++i];
    }
    if (a == "--role") f->role = v;
    else if (a == "--listen") f->listen = v;
    else if (a == "--target") f->target = v;
    else if (a == "--echo") f->echo = v;
    else if (a == "--requests") f->requests = v;
    else if (a == "--payloads") f->payloads = v;
    else if (a == "--inflight") f->inflight = v;
    else if (a == "--client") f->client = v;
    else if (a == "--shm") f->shm = v;
    else if (a == "--label") f->label = v;
    else if (a == "--json") f->json = v;
    else if (a == "--seconds") { if (!absl::SimpleAtod(v, &f->seconds)) return false; }
    else if (a == "--min-calls") { if (!absl::SimpleAtoi(v, &f->min_calls)) return false; }
    else if (a == "--max-calls") { if (!absl::SimpleAtoi(v, &f->max_calls)) return false; }
    else if (a == "--warmup") { if (!absl::SimpleAtoi(v, &f->warmup)) return false; }
    else if (a == "--channels") { if (!absl::SimpleAtoi(v, &f->channels) || f->channels < 1) return false; }
    else if (a == "--max-message-bytes") { if (!absl::SimpleAtoi(v, &f->max_message_bytes)) return false; }
    else if (a == "--lse") f->lse = true;
    else {
      std::fprintf(stderr,
                   "usage: hbsa-service-bench --target HOST:PORT [--echo spawn|none|HOST:PORT]\n"
                   "  [--requests small128,req3mb,req200mb,sweep<BYTES>] [--payloads 64K,1M,...]\n"
                   "  [--inflight 1,8] [--client direct|proto] [--shm PREFIX] [--lse]\n"
                   "  [--seconds S] [--min-calls N] [--max-calls N] [--warmup N] [--channels N]\n"
                   "  [--label TEXT] [--json FILE]\n"
                   "  hbsa-service-bench --role echo-server --listen HOST:PORT\n");
      return false;
    }
  }
  return true;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// The same channel the hbsa client makes (message limits, round robin, keepalive).
std::shared_ptr<grpc::Channel> Channel(const std::string& target, const Flags& f) {
  client::ChannelOptions o;
  o.max_message_bytes = f.max_message_bytes;
  o.local_subchannel_pool = true;
  return client::MakeChannel(target, o);
}

struct Sample {
  double e2e = 0, build = 0, read = 0;
  v1::StageTimings server;
};

struct Stats {
  int64_t calls = 0, errors = 0;
  double wall = 0;
  std::vector<double> lat;
  std::map<std::string, double> sums;  // stage -> seconds summed over calls
  std::string first_error;
  double Pct(double p) const {
    if (lat.empty()) return 0;
    std::vector<double> s = lat;
    std::sort(s.begin(), s.end());
    return s[std::min(s.size() - 1, static_cast<size_t>(p * static_cast<double>(s.size())))];
  }
  double Mean() const {
    double t = 0;
    for (double x : lat) t += x;
    return lat.empty() ? 0 : t / static_cast<double>(lat.size());
  }
  double Avg(const std::string& k) const {
    auto it = sums.find(k);
    return it == sums.end() || calls == 0 ? 0 : it->second / static_cast<double>(calls);
  }
};

// Runs `n` threads calling `call` back to back for f.seconds (at least f.min_calls calls in all).
template <typename Call>
Stats Drive(int n, const Flags& f, Call call) {
  Stats st;
  std::mutex mu;
  std::condition_variable cv;
  int warmed = 0;
  Clock::time_point t0, until;
  std::atomic<int64_t> issued{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      for (int w = 0; w < f.warmup; ++w) {
        Sample s;
        (void)call(t, &s);
      }
      {
        // The timed window starts when every thread has warmed up.
        std::unique_lock<std::mutex> lock(mu);
        if (++warmed == n) {
          t0 = Clock::now();
          until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.seconds));
          cv.notify_all();
        }
        cv.wait(lock, [&] { return warmed == n; });
      }
      while (true) {
        const int64_t i = issued.fetch_add(1);
        if (i >= f.max_calls || (Clock::now() >= until && i >= f.min_calls)) break;
        Sample s;
        absl::Status status = call(t, &s);
        std::lock_guard<std::mutex> lock(mu);
        if (!status.ok()) {
          ++st.errors;
          if (st.first_error.empty()) st.first_error = std::string(status.message());
          continue;
        }
        ++st.calls;
        st.lat.push_back(s.e2e);
        const v1::StageTimings& g = s.server;
        st.sums["build"] += s.build;
        st.sums["read"] += s.read;
        st.sums["queue"] += g.queue_seconds();
        st.sums["parse"] += g.parse_seconds();
        st.sums["staging"] += g.staging_seconds();
        st.sums["h2d"] += g.host_to_device_seconds();
        st.sums["kernel"] += g.kernel_seconds();
        st.sums["d2h"] += g.device_to_host_seconds();
        st.sums["response"] += g.response_seconds();
        st.sums["server_total"] += g.total_seconds();
        st.sums["batch"] += g.batch_size();
        st.sums["transport"] += s.e2e - s.build - s.read - g.total_seconds();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  st.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  return st;
}

// One POSIX shared-memory object: [q | k | v | out of thread 0 | lse 0 | out 1 | lse 1 | ...].
struct ShmSetup {
  std::string key, name;
  char* base = nullptr;
  size_t bytes = 0;
  size_t q_off = 0, k_off = 0, v_off = 0, out0 = 0, stride = 0, lse_rel = 0;

  static absl::StatusOr<std::unique_ptr<ShmSetup>> Make(const std::string& name, const BenchRequest& r,
                                                        int threads, bool lse) {
    auto s = std::make_unique<ShmSetup>();
    s->name = name;
    s->key = absl::StrCat("/", name);
    auto up = [](size_t x) { return (x + 4095) / 4096 * 4096; };
    const AttentionArgs& a = r.args;
    s->q_off = 0;
    s->k_off = up(a.q.bytes);
    s->v_off = s->k_off + up(a.k.bytes);
    s->out0 = s->v_off + up(a.v.bytes);
    s->lse_rel = up(a.out.bytes);
    const size_t lse_bytes = lse ? size_t(a.total_q) * a.num_heads_q * 4 : 0;
    s->stride = s->lse_rel + up(lse_bytes);
    s->bytes = s->out0 + s->stride * static_cast<size_t>(threads);
    shm_unlink(s->key.c_str());
    const int fd = shm_open(s->key.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("shm_open ", s->key, " failed"));
    if (ftruncate(fd, static_cast<off_t>(s->bytes)) != 0) {
      close(fd);
      return absl::UnavailableError("ftruncate failed");
    }
    void* p = mmap(nullptr, s->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return absl::UnavailableError("mmap failed");
    s->base = static_cast<char*>(p);
    std::memcpy(s->base + s->q_off, a.q.data, a.q.bytes);
    std::memcpy(s->base + s->k_off, a.k.data, a.k.bytes);
    std::memcpy(s->base + s->v_off, a.v.data, a.v.bytes);
    return s;
  }
  ~ShmSetup() {
    if (base != nullptr) munmap(base, bytes);
    shm_unlink(key.c_str());
  }
  const char* At(size_t off) const { return base + off; }
  client::ShmTensors Refs(int thread, bool lse) const {
    client::ShmTensors t;
    t.q = client::ShmRef{name, static_cast<int64_t>(q_off)};
    t.k = client::ShmRef{name, static_cast<int64_t>(k_off)};
    t.v = client::ShmRef{name, static_cast<int64_t>(v_off)};
    const size_t o = out0 + stride * static_cast<size_t>(thread);
    t.out = client::ShmRef{name, static_cast<int64_t>(o)};
    if (lse) t.lse = client::ShmRef{name, static_cast<int64_t>(o + lse_rel)};
    return t;
  }
};

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int RunClient(const Flags& f, const std::string& echo_target) {
  std::vector<std::string> names;
  if (!f.payloads.empty()) {
    absl::StatusOr<std::vector<int64_t>> sizes = ParseSizes(f.payloads);
    if (!sizes.ok()) {
      std::fprintf(stderr, "%s\n", std::string(sizes.status().message()).c_str());
      return 2;
    }
    for (int64_t b : *sizes) names.push_back(absl::StrCat("sweep", b));
  }
  for (absl::string_view n : absl::StrSplit(f.requests, ',', absl::SkipEmpty())) {
    if (f.payloads.empty()) names.emplace_back(n);
  }
  std::vector<int> inflight;
  for (absl::string_view n : absl::StrSplit(f.inflight, ',', absl::SkipEmpty())) {
    int x = 0;
    if (!absl::SimpleAtoi(n, &x) || x < 1) return 2;
    inflight.push_back(x);
  }
  std::ofstream json;
  if (!f.json.empty()) json.open(f.json, std::ios::app);

  // --channels N: N connections to each server (own subchannel pools), thread t uses t % N.
  std::vector<std::unique_ptr<client::Client>> clients;
  std::vector<std::unique_ptr<EchoClient>> echoes;
  for (int c = 0; c < f.channels; ++c) {
    clients.push_back(std::make_unique<client::Client>(Channel(f.target, f)));
    if (!echo_target.empty()) echoes.push_back(std::make_unique<EchoClient>(Channel(echo_target, f)));
  }
  client::Client& ours = *clients.front();
  auto ours_of = [&](int t) -> client::Client& { return *clients[static_cast<size_t>(t % f.channels)]; };
  EchoClient* echo = echoes.empty() ? nullptr : echoes.front().get();
  auto echo_of = [&](int t) -> EchoClient& { return *echoes[static_cast<size_t>(t % f.channels)]; };
  client::CallOptions call;
  call.timeout = std::chrono::milliseconds(120000);
  call.wait_for_ready = true;

  std::printf("%-18s %3s %10s %10s | %8s %8s | %8s %8s %8s %8s | %s\n", "request", "n", "req_B",
              "resp_B", "echo_p50", "echo_r/s", "p50_ms", "p99_ms", "req/s", "ovh/echo",
              "split ms: build transport queue parse staging h2d kernel d2h response read [batch]");
  for (const std::string& name : names) {
    absl::StatusOr<std::unique_ptr<BenchRequest>> made = MakeBenchRequest(name);
    if (!made.ok()) {
      std::fprintf(stderr, "%s\n", std::string(made.status().message()).c_str());
      return 2;
    }
    BenchRequest& req = **made;
    client::RequestOptions ro;
    ro.mask_form = client::MaskForm::kCompact;
    ro.return_lse = f.lse;
    ro.request_id = name;
    // Sizes on the wire (the proto path's message), for the echo.
    absl::StatusOr<v1::AttendRequest> proto = client::BuildRequest(req.args, ro);
    if (!proto.ok()) {
      std::fprintf(stderr, "%s\n", std::string(proto.status().message()).c_str());
      return 2;
    }
    const int64_t req_bytes = static_cast<int64_t>(proto->ByteSizeLong());
    const int64_t resp_bytes = req.output_bytes + (f.lse ? req.args.total_q * req.args.num_heads_q * 4 : 0) + 128;
    proto = absl::InternalError("released");  // free the copy

    for (int n : inflight) {
      // Caller memory for each thread's answer.
      std::vector<std::vector<uint16_t>> outs(static_cast<size_t>(n), req.out);
      std::vector<std::vector<float>> lses(static_cast<size_t>(n));
      if (f.lse) for (auto& l : lses) l.assign(size_t(req.args.total_q) * req.args.num_heads_q, 0.f);
      // Same-host mode: the request's tensors and each thread's outputs in one registered
      // shared-memory object (written once here; calls then carry references only).
      std::unique_ptr<ShmSetup> shm;
      if (!f.shm.empty()) {
        absl::StatusOr<std::unique_ptr<ShmSetup>> made_shm =
            ShmSetup::Make(absl::StrCat(f.shm, "_", name, "_", n), req, n, f.lse);
        if (!made_shm.ok()) {
          std::fprintf(stderr, "%s\n", std::string(made_shm.status().message()).c_str());
          return 2;
        }
        shm = std::move(*made_shm);
        if (absl::Status st = ours.RegisterSharedMemory(shm->name, shm->key, 0, static_cast<int64_t>(shm->bytes), call);
            !st.ok()) {
          std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
          return 2;
        }
      }
      Stats es;
      if (echo != nullptr) {
        std::vector<std::string> sinks(static_cast<size_t>(n));
        es = Drive(n, f, [&](int t, Sample* s) {
          const Clock::time_point a = Clock::now();
          absl::Status st = echo_of(t).Call(req_bytes, resp_bytes, &sinks[static_cast<size_t>(t)]);
          s->e2e = Seconds(a, Clock::now());
          return st;
        });
      }
      Stats os = Drive(n, f, [&](int t, Sample* s) -> absl::Status {
        AttentionArgs args = req.args;
        args.out = {outs[size_t(t)].data(), outs[size_t(t)].size() * 2};
        if (f.lse) args.lse = {lses[size_t(t)].data(), lses[size_t(t)].size() * 4};
        const Clock::time_point a = Clock::now();
        if (f.client == "proto") {
          absl::StatusOr<v1::AttendRequest> r = client::BuildRequest(args, ro);
          if (!r.ok()) return r.status();
          const Clock::time_point b = Clock::now();
          absl::StatusOr<client::AttendResult> res = ours_of(t).Attend(*r, call);
          if (!res.ok()) return res.status();
          const Clock::time_point c = Clock::now();
          if (absl::Status st = client::CopyToBuffers(*res, args); !st.ok()) return st;
          const Clock::time_point d = Clock::now();
          s->build = Seconds(a, b);
          s->read = Seconds(c, d);
          s->e2e = Seconds(a, d);
          s->server = res->server_timings;
          return absl::OkStatus();
        }
        client::RequestOptions o = ro;
        if (shm != nullptr) {
          o.shm = shm->Refs(t, f.lse);
          args.q = {shm->At(shm->q_off), args.q.bytes};
          args.k = {shm->At(shm->k_off), args.k.bytes};
          args.v = {shm->At(shm->v_off), args.v.bytes};
        }
        absl::StatusOr<client::AttendResult> res = ours_of(t).AttendInto(args, o, call);
        if (!res.ok()) return res.status();
        s->build = res->build_seconds;
        s->read = res->read_seconds;
        s->e2e = res->client_seconds;
        s->server = res->server_timings;
        return absl::OkStatus();
      });
      if (shm != nullptr) {
        if (absl::Status st = ours.UnregisterSharedMemory(shm->name); !st.ok()) {
          std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
        }
      }
      const double ovh = os.Mean() - os.Avg("kernel");
      const double ratio = es.calls > 0 ? ovh / es.Mean() : 0;
      std::printf("%-18s %3d %10lld %10lld | %8.3f %8.1f | %8.3f %8.3f %8.1f %8.2f | %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f [%.1f]%s\n",
                  name.c_str(), n, static_cast<long long>(req_bytes), static_cast<long long>(resp_bytes),
                  es.Pct(0.5) * 1e3, es.wall > 0 ? es.calls / es.wall : 0, os.Pct(0.5) * 1e3,
                  os.Pct(0.99) * 1e3, os.wall > 0 ? os.calls / os.wall : 0, ratio,
                  os.Avg("build") * 1e3, os.Avg("transport") * 1e3, os.Avg("queue") * 1e3,
                  os.Avg("parse") * 1e3, os.Avg("staging") * 1e3, os.Avg("h2d") * 1e3,
                  os.Avg("kernel") * 1e3, os.Avg("d2h") * 1e3, os.Avg("response") * 1e3,
                  os.Avg("read") * 1e3, os.Avg("batch"),
                  os.errors > 0 ? absl::StrCat("  ERRORS ", os.errors, ": ", os.first_error).c_str() : "");
      std::fflush(stdout);
      if (json.is_open()) {
        nlohmann::json j;
        j["label"] = f.label;
        j["client"] = f.shm.empty() ? f.client : "shm";
        j["request"] = name;
        j["inflight"] = n;
        j["channels"] = f.channels;
        j["request_bytes"] = req_bytes;
        j["response_bytes"] = resp_bytes;
        j["echo"] = {{"calls", es.calls}, {"p50_ms", es.Pct(0.5) * 1e3}, {"p99_ms", es.Pct(0.99) * 1e3},
                     {"mean_ms", es.Mean() * 1e3}, {"req_per_s", es.wall > 0 ? es.calls / es.wall : 0}};
        nlohmann::json split;
        for (const char* k : {"build", "transport", "queue", "parse", "staging", "h2d", "kernel",
                              "d2h", "response", "read", "server_total"}) {
          split[k] = os.Avg(k) * 1e3;
        }
        j["ours"] = {{"calls", os.calls}, {"errors", os.errors}, {"p50_ms", os.Pct(0.5) * 1e3},
                     {"p99_ms", os.Pct(0.99) * 1e3}, {"mean_ms", os.Mean() * 1e3},
                     {"req_per_s", os.wall > 0 ? os.calls / os.wall : 0},
                     {"mean_batch", os.Avg("batch")}, {"split_ms", split}};
        j["overhead_over_echo"] = ratio;
        if (!os.first_error.empty()) j["first_error"] = os.first_error;
        json << j.dump() << "\n";
        json.flush();
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace hbsa::bench

int main(int argc, char** argv) {
  using namespace hbsa::bench;  // NOLINT
  Flags f;
  if (!ParseFlags(argc, argv, &f)) return 2;
  if (f.role == "echo-server") return RunEchoServer(f.listen, f.max_message_bytes);
  if (f.target.empty()) {
    std::fprintf(stderr, "--target is required\n");
    return 2;
  }
  std::string echo_target;
  pid_t child = 0;
  if (f.echo == "spawn") {
    // Started before this process makes any channel (no gRPC state is forked).
    echo_target = absl::StrCat("127.0.0.1:", FreePort());
    const std::string self = "/proc/self/exe", max = std::to_string(f.max_message_bytes);
    std::vector<std::string> args = {"hbsa-service-bench", "--role", "echo-server", "--listen",
                                     echo_target, "--max-message-bytes", max};
    std::vector<char*> argv_c;
    for (std::string& a : args) argv_c.push_back(a.data());
    argv_c.push_back(nullptr);
    if (posix_spawn(&child, self.c_str(), nullptr, nullptr, argv_c.data(), environ) != 0) {
      std::fprintf(stderr, "cannot start the echo server\n");
      return 2;
    }
  } else if (f.echo != "none") {
    echo_target = f.echo;
  }
  const int rc = RunClient(f, echo_target);
  if (child > 0) {
    kill(child, SIGTERM);
    waitpid(child, nullptr, 0);
  }
  return rc;
}
