// tests/server/server_harness.cc: child-process server, health, /metrics and golden requests.
#include "server_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <grpcpp/generic/generic_stub.h>

#include "hbsa/plan.h"

#ifndef HBSA_SERVER_BINARY
#error "HBSA_SERVER_BINARY must name the hbsa-server executable"
#endif

namespace hbsa::testing {

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::unique_ptr<ServerProcess> ServerProcess::Start(
    const std::vector<std::string>& extra_args, bool wait_serving,
    std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto p = std::unique_ptr<ServerProcess>(new ServerProcess());
  p->port_ = FreePort();
  p->metrics_port_ = FreePort();
  char tmpl[] = "/tmp/hbsa-server-test-XXXXXX";
  const int log_fd = mkstemp(tmpl);
  p->log_path_ = tmpl;
  std::vector<std::string> args = {HBSA_SERVER_BINARY,
                                   "--listen", p->target(),
                                   "--metrics-listen", "127.0.0.1:" + std::to_string(p->metrics_port_),
                                   "--backend", "cpu"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  p->pid_ = fork();
  if (p->pid_ == 0) {
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  p->channel_ = grpc::CreateChannel(
      p->target(), credentials != nullptr ? credentials : grpc::InsecureChannelCredentials());
  if (wait_serving && !p->WaitServing(std::chrono::seconds(20))) return nullptr;
  return p;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (!log_path_.empty()) unlink(log_path_.c_str());
}

bool ServerProcess::WaitServing(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (CheckHealth(channel_, "") == Health::kServing) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::optional<int> ServerProcess::Wait(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

std::optional<int> ServerProcess::SignalAndWait(int sig, std::chrono::milliseconds timeout) {
  kill(pid_, sig);
  return Wait(timeout);
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Health CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  // HealthCheckRequest { string service = 1; } / HealthCheckResponse { ServingStatus status = 1; }
  std::string wire;
  if (!service.empty()) {
    wire.push_back('\x0a');
    wire.push_back(static_cast<char>(service.size()));
    wire += service;
  }
  grpc::Slice slice(wire);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(s); });
  const grpc::Status s = done.get_future().get();
  if (!s.ok()) return Health::kUnavailable;
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string body;
  for (const auto& sl : slices) body.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (body.size() >= 2 && body[0] == '\x08') {
    if (body[1] == 1) return Health::kServing;
    if (body[1] == 2) return Health::kNotServing;
  }
  return Health::kUnknown;
}

std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

std::optional<double> MetricValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

double MetricSum(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  double sum = 0;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const size_t sp = line.rfind(' ');
    sum += std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return sum;
}

const char* MaskFormName(MaskForm form) {
  switch (form) {
    case MaskForm::kDense: return "dense";
    case MaskForm::kPerSequence: return "per_sequence";
    case MaskForm::kCompact: return "compact";
  }
  return "?";
}

namespace {

v1::Tensor ToTensor(const golden::NpyArray& a, v1::DType dtype) {
  v1::Tensor t;
  t.set_dtype(dtype);
  for (int64_t d : a.shape) t.add_shape(d);
  t.set_data(a.data.data(), a.data.size());
  return t;
}

void PackBit(std::string* bits, int64_t n) {
  (*bits)[static_cast<size_t>(n >> 3)] |= static_cast<char>(1 << (n & 7));
}

}  // namespace

v1::AttendRequest MakeRequest(const golden::Case& c, MaskForm form, bool return_lse,
                              const std::string& id) {
  const v1::DType dtype = c.dtype == DType::kFloat16    ? v1::DTYPE_FLOAT16
                          : c.dtype == DType::kBFloat16 ? v1::DTYPE_BFLOAT16
                                                        : v1::DTYPE_FLOAT32;
  v1::AttendRequest r;
  r.set_request_id(id);
  *r.mutable_q() = ToTensor(c.q, dtype);
  *r.mutable_k() = ToTensor(c.k, dtype);
  *r.mutable_v() = ToTensor(c.v, dtype);
  for (int32_t x : c.cu_q) r.add_cu_seqlens_q(x);
  for (int32_t x : c.cu_k) r.add_cu_seqlens_k(x);
  r.set_q_block_size(c.sq);
  r.set_k_block_size(c.sk);
  r.set_causal(c.causal);
  if (c.scale.has_value()) r.set_softmax_scale(*c.scale);
  r.set_return_lse(return_lse);
  const int64_t hk = c.block_mask.shape[0], nq = c.block_mask.shape[1], nk = c.block_mask.shape[2];
  const uint8_t* mask = c.block_mask.data.data();
  switch (form) {
    case MaskForm::kDense: {
      v1::DenseBlockMask* m = r.mutable_dense_mask();
      m->add_shape(hk);
      m->add_shape(nq);
      m->add_shape(nk);
      std::string bits(static_cast<size_t>((hk * nq * nk + 7) / 8), '\0');
      for (int64_t n = 0; n < hk * nq * nk; ++n) {
        if (mask[n] != 0) PackBit(&bits, n);
      }
      m->set_bits(bits);
      break;
    }
    case MaskForm::kPerSequence: {
      BlockLayoutStorage layout(c.batch(), c.cu_q.data(), c.cu_k.data(), c.sq, c.sk);
      const BlockLayout& l = layout.view();
      for (int32_t b = 0; b < c.batch(); ++b) {
        const int64_t q0 = l.q_block_start[b], nq_b = l.q_block_start[b + 1] - q0;
        const int64_t k0 = l.k_block_start[b], nk_b = l.k_block_start[b + 1] - k0;
        std::string bits(static_cast<size_t>((hk * nq_b * nk_b + 7) / 8), '\0');
        for (int64_t h = 0; h < hk; ++h) {
          for (int64_t i = 0; i < nq_b; ++i) {
            for (int64_t j = 0; j < nk_b; ++j) {
              if (mask[(h * nq + q0 + i) * nk + k0 + j] != 0) PackBit(&bits, (h * nq_b + i) * nk_b + j);
            }
          }
        }
        r.mutable_per_sequence_mask()->add_sequences(bits);
      }
      break;
    }
    case MaskForm::kCompact: {
      v1::CompactBlockMask* m = r.mutable_compact_mask();
      m->add_row_offsets(0);
      for (int64_t row = 0; row < hk * nq; ++row) {
        for (int64_t j = 0; j < nk; ++j) {
          if (mask[row * nk + j] != 0) m->add_col_indices(static_cast<int32_t>(j));
        }
        m->add_row_offsets(m->col_indices_size());
      }
      break;
    }
  }
  return r;
}

golden::Comparison CompareResponse(const golden::Case& c, const v1::AttendResponse& r) {
  const size_t out_bytes = static_cast<size_t>(c.out.NumElements()) * DTypeSize(c.dtype);
  const size_t lse_bytes = static_cast<size_t>(c.lse.NumElements()) * sizeof(float);
  if (r.out().data().size() != out_bytes || (r.has_lse() && r.lse().data().size() != lse_bytes)) {
    golden::Comparison bad;
    bad.out_failures = 1;
    bad.first_failure = "response out/lse has the wrong size: " +
                        std::to_string(r.out().data().size()) + " bytes, want " +
                        std::to_string(out_bytes);
    return bad;
  }
  const float* lse = r.has_lse() ? reinterpret_cast<const float*>(r.lse().data().data()) : nullptr;
  return golden::Compare(c, c.dtype, r.out().data().data(), lse);
}

golden::Case SyntheticCase(int64_t lq, int64_t lk, int32_t hq, int32_t hk, int32_t d, int32_t sq,
                           int32_t sk, bool causal, uint32_t seed, bool expected) {
  golden::Case c;
  c.name = "synthetic";
  c.dtype = DType::kFloat32;
  c.hq = hq;
  c.hk = hk;
  c.d = d;
  c.sq = sq;
  c.sk = sk;
  c.causal = causal;
  c.cu_q = {0, static_cast<int32_t>(lq)};
  c.cu_k = {0, static_cast<int32_t>(lk)};
  uint32_t state = seed * 2654435761u + 1;
  auto fill = [&state](golden::NpyArray* a, std::vector<int64_t> shape) {
    a->descr = "<f4";
    a->shape = std::move(shape);
    std::vector<float> f(static_cast<size_t>(a->shape[0] * a->shape[1] * a->shape[2]));
    for (float& x : f) {
      state = state * 1664525u + 1013904223u;  // LCG: reproducible, no <random> distribution drift
      x = static_cast<float>(state >> 8) / static_cast<float>(1 << 24) * 2.0f - 1.0f;
    }
    a->data.resize(f.size() * sizeof(float));
    std::memcpy(a->data.data(), f.data(), a->data.size());
  };
  fill(&c.q, {lq, hq, d});
  fill(&c.k, {lk, hk, d});
  fill(&c.v, {lk, hk, d});
  const int64_t nq = (lq + sq - 1) / sq, nk = (lk + sk - 1) / sk;
  c.block_mask.descr = "|u1";
  c.block_mask.shape = {hk, nq, nk};
  c.block_mask.data.assign(static_cast<size_t>(hk * nq * nk), 1);
  if (expected) {
    std::vector<uint8_t> out;
    std::vector<float> lse;
    const absl::Status s = Run(Backend::kReference, c.MakeArgs(&out, &lse));
    if (!s.ok()) std::abort();
    c.out.descr = "<f4";
    c.out.shape = {lq, hq, d};
    c.out.data = std::move(out);
    c.lse.descr = "<f4";
    c.lse.shape = {lq, hq};
    c.lse.data.resize(lse.size() * sizeof(float));
    std::memcpy(c.lse.data.data(), lse.data(), c.lse.data.size());
  }
  return c;
}

namespace {

int64_t StatusField(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1) * 1024;
  }
  return -1;
}

}  // namespace

int64_t PeakRssBytes(pid_t pid) { return StatusField(pid, "VmHWM"); }
int64_t RssBytes(pid_t pid) { return StatusField(pid, "VmRSS"); }

const std::vector<golden::Case>& GoldenCases() {
  static const std::vector<golden::Case>* cases = [] {
    auto* v = new std::vector<golden::Case>();
    for (const std::string& dir : golden::ListCaseDirs(golden::DefaultGoldenRoot())) {
      absl::StatusOr<golden::Case> c = golden::LoadCase(dir);
      if (c.ok()) v->push_back(std::move(*c));
    }
    return v;
  }();
  return *cases;
}

const golden::Case& GoldenCase(const std::string& name) {
  for (const golden::Case& c : GoldenCases()) {
    if (c.name == name) return c;
  }
  static const golden::Case kEmpty;
  return kEmpty;
}

}  // namespace hbsa::testing
