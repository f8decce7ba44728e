// client.cc: hbsa::client::Client over a grpc::Channel: channel options (message limits, load
// balancing, keepalive, TLS), the bearer token as a per-call credential, blocking and callback
// calls, deadlines, and the UNAVAILABLE-only retry policy described in hbsa/client.h.
#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <grpcpp/alarm.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "hbsa/client.h"
#include "wire/tensor_wire.h"

namespace hbsa::client {
namespace {

using Clock = std::chrono::steady_clock;
// gRPC deadlines are system_clock time points; durations are measured on the steady clock.
using Wall = std::chrono::system_clock;

absl::Status FromGrpc(const char* rpc, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(rpc, ": ", s.error_message()));
}

// The deadline of a call that starts now, or nullopt for none.
std::optional<Wall::time_point> DeadlineFor(const CallOptions& call) {
  if (call.timeout.count() <= 0) return std::nullopt;
  return Wall::now() + call.timeout;
}

void Prepare(grpc::ClientContext* ctx, const std::optional<Wall::time_point>& deadline,
             const CallOptions& call, const std::shared_ptr<grpc::CallCredentials>& token) {
  if (deadline.has_value()) ctx->set_deadline(*deadline);
  ctx->set_wait_for_ready(call.wait_for_ready);
  if (token != nullptr) ctx->set_credentials(token);
}

absl::StatusOr<std::string> ReadFile(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("client: cannot read ", what, " \"", path, "\""));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::string> ReadPem(const std::string& what, const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(what, path);
  if (!text.ok()) return text.status();
  if (!absl::StrContains(*text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("client: ", what, " \"", path, "\" holds no PEM block (-----BEGIN ...)"));
  }
  return text;
}

// The wait before attempt `attempt` + 1 (attempt counts from 1), jittered by +-20%.
std::chrono::milliseconds Backoff(const RetryPolicy& p, int attempt) {
  double ms = static_cast<double>(p.initial_backoff.count());
  for (int i = 1; i < attempt; ++i) ms *= p.multiplier;
  ms = std::min(ms, static_cast<double>(p.max_backoff.count()));
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<int64_t>(ms * jitter(rng)));
}

// Whether to try again after `status` on attempt `attempt`, given the deadline: only
// UNAVAILABLE, only while attempts remain and the backoff ends before the deadline.
bool ShouldRetry(const grpc::Status& status, int attempt, const CallOptions& call,
                 const std::optional<Wall::time_point>& deadline,
                 std::chrono::milliseconds backoff) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  if (attempt >= call.retry.max_attempts) return false;
  return !deadline.has_value() || Wall::now() + backoff < *deadline;
}

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

// Asynchronous calls of one Client whose objects still exist. A call's `done` runs before its
// object (gRPC context, response, and through the context a reference to the channel) is torn
// down on the gRPC thread, so a caller may destroy the Client right after its last `done`:
// ~Client waits here until that teardown is over, and the channel is released on the caller's
// thread, never from inside one of its own callbacks.
struct AsyncCalls {
  std::mutex mu;
  std::condition_variable idle;
  int64_t live = 0;
};

// Counts one asynchronous call for its whole lifetime (a member declared first: destroyed last).
class AsyncCallToken {
 public:
  explicit AsyncCallToken(std::shared_ptr<AsyncCalls> calls) : calls_(std::move(calls)) {
    std::lock_guard<std::mutex> lock(calls_->mu);
    ++calls_->live;
  }
  ~AsyncCallToken() {
    std::lock_guard<std::mutex> lock(calls_->mu);
    if (--calls_->live == 0) calls_->idle.notify_all();
  }
  AsyncCallToken(const AsyncCallToken&) = delete;
  AsyncCallToken& operator=(const AsyncCallToken&) = delete;

 private:
  std::shared_ptr<AsyncCalls> calls_;
};

struct Client::Stubs {
  std::shared_ptr<AsyncCalls> async_calls = std::make_shared<AsyncCalls>();
  std::unique_ptr<v1::Attention::Stub> attention;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
  std::unique_ptr<grpc::GenericStub> raw;  // AttendInto: requests and responses as raw bytes
  std::shared_ptr<grpc::CallCredentials> token;  // nullptr without a bearer token
};

absl::StatusOr<TlsOptions> LoadTlsFiles(const std::string& ca_file, const std::string& cert_file,
                                        const std::string& key_file,
                                        const std::string& server_name) {
  TlsOptions t;
  t.enabled = true;
  t.server_name = server_name;
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "client: a client certificate and its key go together (mutual TLS needs both)");
  }
  if (!ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("CA file", ca_file);
    if (!ca.ok()) return ca.status();
    t.root_certs_pem = std::move(*ca);
  }
  if (!cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("client certificate", cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("client key", key_file);
    if (!key.ok()) return key.status();
    t.cert_chain_pem = std::move(*cert);
    t.private_key_pem = std::move(*key);
  }
  return t;
}

absl::StatusOr<std::string> LoadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile("token file", path);
  if (!text.ok()) return text.status();
  std::string token(absl::StripAsciiWhitespace(text->substr(0, text->find('\n'))));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("client: token file \"", path, "\" has an empty first line"));
  }
  return token;
}

std::string NormalizeTarget(std::string_view target) {
  const std::string t(target);
  if (absl::StrContains(t, ":/") || absl::StartsWith(t, "ipv4:") || absl::StartsWith(t, "ipv6:") ||
      absl::StartsWith(t, "unix:")) {
    return t;
  }
  if (absl::StrContains(t, ",")) return absl::StrCat("ipv4:", t);
  return t;
}

std::shared_ptr<grpc::Channel> MakeChannel(std::string_view target, const ChannelOptions& options) {
  grpc::ChannelArguments args;
  const int limit = static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX));
  args.SetMaxSendMessageSize(limit);
  args.SetMaxReceiveMessageSize(limit);
  if (!options.load_balancing_policy.empty()) {
    // The service config is the documented way to choose the policy; it applies to every
    // address the resolver returns (all A records of a headless Service, all ipv4: entries).
    args.SetServiceConfigJSON(absl::StrCat(R"({"loadBalancingConfig":[{")",
                                           options.load_balancing_policy, R"(":{}}]})"));
  }
  if (options.keepalive_seconds > 0) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_seconds * 1000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  }
  if (options.local_subchannel_pool) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (options.tls.enabled) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls.root_certs_pem;
    ssl.pem_cert_chain = options.tls.cert_chain_pem;
    ssl.pem_private_key = options.tls.private_key_pem;
    creds = grpc::SslCredentials(ssl);
    if (!options.tls.server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls.server_name);
    }
  }
  return grpc::CreateCustomChannel(NormalizeTarget(target), creds, args);
}

std::string_view ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kUnknown: return "UNKNOWN";
    case ServingStatus::kServing: return "SERVING";
    case ServingStatus::kNotServing: return "NOT_SERVING";
    case ServingStatus::kServiceUnknown: return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

Client::Client(std::shared_ptr<grpc::Channel> channel, std::string bearer_token)
    : channel_(std::move(channel)), bearer_token_(std::move(bearer_token)),
      stubs_(std::make_unique<Stubs>()) {
  stubs_->attention = v1::Attention::NewStub(channel_);
  stubs_->health = grpc::health::v1::Health::NewStub(channel_);
  stubs_->raw = std::make_unique<grpc::GenericStub>(channel_);
  if (!bearer_token_.empty()) stubs_->token = grpc::AccessTokenCredentials(bearer_token_);
}

Client::Client(std::string_view target, const ChannelOptions& options)
    : Client(MakeChannel(target, options), options.bearer_token) {}

Client::~Client() {
  std::unique_lock<std::mutex> lock(stubs_->async_calls->mu);
  stubs_->async_calls->idle.wait(lock, [this] { return stubs_->async_calls->live == 0; });
}

absl::StatusOr<AttendResult> Client::Attend(const AttentionArgs& args,
                                            const RequestOptions& request,
                                            const CallOptions& call) const {
  absl::StatusOr<v1::AttendRequest> req = BuildRequest(args, request);
  if (!req.ok()) return req.status();
  return Attend(*req, call);
}

absl::StatusOr<AttendResult> Client::Attend(const v1::AttendRequest& request,
                                            const CallOptions& call) const {
  const Clock::time_point t0 = Clock::now();
  const auto deadline = DeadlineFor(call);
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    Prepare(&ctx, deadline, call, stubs_->token);
    v1::AttendResponse response;
    const grpc::Status s = stubs_->attention->Attend(&ctx, request, &response);
    if (s.ok()) {
      absl::StatusOr<AttendResult> r = ParseResponse(request, std::move(response));
      if (r.ok()) {
        r->client_seconds = SecondsSince(t0);
        r->attempts = attempt;
        r->request_bytes = static_cast<int64_t>(request.ByteSizeLong());
      }
      return r;
    }
    const auto wait = Backoff(call.retry, attempt);
    if (!ShouldRetry(s, attempt, call, deadline, wait)) return FromGrpc("Attend", s);
    std::this_thread::sleep_for(wait);
  }
}

namespace {

void NoRelease(void*) {}

// The request of AttendInto: the header (everything but q, k and v, serialized by protobuf),
// then each tensor's framing and its data as a slice over the caller's memory (not copied), or
// a shared-memory reference instead of data.
absl::StatusOr<grpc::ByteBuffer> BuildRawRequest(const AttentionArgs& args,
                                                 const RequestOptions& options, int64_t* bytes) {
  absl::StatusOr<v1::AttendRequest> header = BuildRequestHeader(args, options);
  if (!header.ok()) return header.status();
  auto ref_of = [](const std::optional<ShmRef>& r, size_t n, v1::SharedMemoryRef* out) {
    out->set_region(r->region);
    out->set_offset(r->offset);
    out->set_byte_size(static_cast<int64_t>(n));
  };
  const size_t out_bytes = size_t(args.total_q) * args.num_heads_q * args.head_dim * DTypeSize(args.dtype);
  if (options.shm.out) ref_of(options.shm.out, out_bytes, header->mutable_out_shm());
  if (options.shm.lse) {
    ref_of(options.shm.lse, size_t(args.total_q) * args.num_heads_q * sizeof(float), header->mutable_lse_shm());
  }
  std::vector<grpc::Slice> slices;
  slices.emplace_back(header->SerializeAsString());
  const int dtype = args.dtype == DType::kFloat16 ? v1::DTYPE_FLOAT16
                    : args.dtype == DType::kBFloat16 ? v1::DTYPE_BFLOAT16 : v1::DTYPE_FLOAT32;
  const int64_t q_shape[3] = {args.total_q, args.num_heads_q, args.head_dim};
  const int64_t kv_shape[3] = {args.total_k, args.num_heads_k, args.head_dim};
  const struct {
    uint32_t field;
    const int64_t* shape;
    const ConstBuffer* data;
    const std::optional<ShmRef>* shm;
  } tensors[3] = {{2, q_shape, &args.q, &options.shm.q},
                  {3, kv_shape, &args.k, &options.shm.k},
                  {4, kv_shape, &args.v, &options.shm.v}};
  for (const auto& t : tensors) {
    if (t.shm->has_value()) {
      v1::SharedMemoryRef ref;
      ref_of(*t.shm, t.data->bytes, &ref);
      slices.emplace_back(wire::TensorHeader(t.field, dtype, t.shape, 3, 0, &ref));
      continue;
    }
    slices.emplace_back(wire::TensorHeader(t.field, dtype, t.shape, 3, t.data->bytes));
    if (t.data->bytes > 0) {
      slices.emplace_back(const_cast<void*>(t.data->data), t.data->bytes, NoRelease);
    }
  }
  grpc::ByteBuffer buf(slices.data(), slices.size());
  *bytes = static_cast<int64_t>(buf.Length());
  return buf;
}

// Reads an AttendResponse from raw bytes into `args` (out, and lse when asked and given).
absl::Status ReadRawResponse(const grpc::ByteBuffer& buf, const AttentionArgs& args,
                             const RequestOptions& options, AttendResult* r) {
  std::vector<grpc::Slice> slices;
  if (!buf.Dump(&slices).ok()) return absl::InternalError("client: unreadable response");
  std::vector<wire::Fragment> fragments;
  for (const grpc::Slice& s : slices) {
    if (s.size() > 0) fragments.push_back({reinterpret_cast<const char*>(s.begin()), s.size()});
  }
  wire::WireTensor out, lse;
  std::string rest;
  if (absl::Status s = wire::SplitTensors(fragments, {2, 3}, {&out, &lse}, "hbsa.v1.AttendResponse", &rest);
      !s.ok()) {
    return absl::InternalError(absl::StrCat("client: ", s.message()));
  }
  v1::AttendResponse meta;
  if (!meta.ParseFromString(rest)) return absl::InternalError("client: malformed response");
  if (meta.has_error() && meta.error().code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(meta.error().code()), meta.error().message());
  }
  r->request_id = meta.request_id();
  r->backend = meta.backend();
  r->device = meta.device();
  r->server_timings = meta.timings();
  r->dtype = args.dtype;
  r->out_shape = {args.total_q, args.num_heads_q, args.head_dim};
  const size_t want = size_t(args.total_q) * args.num_heads_q * args.head_dim * DTypeSize(args.dtype);
  const size_t got_want = options.shm.out ? 0 : want;
  if (out.shape != r->out_shape || out.data.bytes != got_want) {
    return absl::InternalError(absl::StrCat("client: response out holds ", out.data.bytes,
                                            " bytes; expected ", got_want, " for [total_q, Hq, D]"));
  }
  if (!options.shm.out) {
    if (args.out.bytes != want || (want > 0 && args.out.data == nullptr)) {
      return absl::InvalidArgumentError(absl::StrCat("client: out buffer holds ", args.out.bytes,
                                                     " bytes; the result has ", want));
    }
    out.data.CopyTo(static_cast<char*>(args.out.data));
  }
  if (options.return_lse) {
    const size_t lse_want = size_t(args.total_q) * args.num_heads_q * sizeof(float);
    r->has_lse = true;
    if (!options.shm.lse) {
      if (lse.data.bytes != lse_want) {
        return absl::InternalError(absl::StrCat("client: response lse holds ", lse.data.bytes,
                                                " bytes; expected ", lse_want));
      }
      if (args.lse.data != nullptr) {
        if (args.lse.bytes != lse_want) {
          return absl::InvalidArgumentError(absl::StrCat("client: lse buffer holds ", args.lse.bytes,
                                                         " bytes; the result has ", lse_want));
        }
        lse.data.CopyTo(static_cast<char*>(args.lse.data));
      }
    }
  }
  r->response_bytes = static_cast<int64_t>(buf.Length());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AttendResult> Client::AttendInto(const AttentionArgs& args, const RequestOptions& request,
                                                const CallOptions& call) const {
  const Clock::time_point t0 = Clock::now();
  int64_t request_bytes = 0;
  absl::StatusOr<grpc::ByteBuffer> req = BuildRawRequest(args, request, &request_bytes);
  if (!req.ok()) return req.status();
  const double build_seconds = SecondsSince(t0);
  const auto deadline = DeadlineFor(call);
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    Prepare(&ctx, deadline, call, stubs_->token);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stubs_->raw->UnaryCall(&ctx, "/hbsa.v1.Attention/Attend", grpc::StubOptions(), &*req, &response,
                           [&done](grpc::Status s) { done.set_value(std::move(s)); });
    const grpc::Status s = done.get_future().get();
    if (s.ok()) {
      const Clock::time_point t1 = Clock::now();
      AttendResult r;
      if (absl::Status st = ReadRawResponse(response, args, request, &r); !st.ok()) return st;
      r.read_seconds = SecondsSince(t1);
      r.build_seconds = build_seconds;
      r.client_seconds = SecondsSince(t0);
      r.attempts = attempt;
      r.request_bytes = request_bytes;
      return r;
    }
    const auto wait = Backoff(call.retry, attempt);
    if (!ShouldRetry(s, attempt, call, deadline, wait)) return FromGrpc("Attend", s);
    std::this_thread::sleep_for(wait);
  }
}

absl::Status Client::RegisterSharedMemory(const std::string& name, const std::string& key,
                                          int64_t offset, int64_t byte_size,
                                          const CallOptions& call) const {
  grpc::ClientContext ctx;
  Prepare(&ctx, DeadlineFor(call), call, stubs_->token);
  v1::RegisterSharedMemoryRequest req;
  req.set_name(name);
  req.set_key(key);
  req.set_offset(offset);
  req.set_byte_size(byte_size);
  v1::RegisterSharedMemoryResponse resp;
  return FromGrpc("RegisterSharedMemory", stubs_->attention->RegisterSharedMemory(&ctx, req, &resp));
}

absl::Status Client::UnregisterSharedMemory(const std::string& name, const CallOptions& call) const {
  grpc::ClientContext ctx;
  Prepare(&ctx, DeadlineFor(call), call, stubs_->token);
  v1::UnregisterSharedMemoryRequest req;
  req.set_name(name);
  v1::UnregisterSharedMemoryResponse resp;
  return FromGrpc("UnregisterSharedMemory", stubs_->attention->UnregisterSharedMemory(&ctx, req, &resp));
}

// One asynchronous Attend with its retries. Owned by shared_ptrs captured in the gRPC and alarm
// callbacks, so it lives exactly until `done` has run.
class AsyncAttendCall : public std::enable_shared_from_this<AsyncAttendCall> {
 public:
  AsyncAttendCall(std::shared_ptr<AsyncCalls> calls, v1::Attention::Stub* stub,
                  std::shared_ptr<grpc::CallCredentials> token,
                  std::shared_ptr<const v1::AttendRequest> request, const CallOptions& call,
                  Client::AttendCallback done)
      : live_(std::move(calls)), stub_(stub), token_(std::move(token)), request_(std::move(request)), call_(call),
        done_(std::move(done)),
        t0_(Clock::now()), deadline_(DeadlineFor(call)) {}

  void Start() {
    ++attempt_;
    ctx_ = std::make_unique<grpc::ClientContext>();
    Prepare(ctx_.get(), deadline_, call_, token_);
    response_.Clear();
    auto self = shared_from_this();
    stub_->async()->Attend(ctx_.get(), request_.get(), &response_,
                           [self](grpc::Status s) { self->OnDone(std::move(s)); });
  }

 private:
  void OnDone(grpc::Status s) {
    if (s.ok()) {
      absl::StatusOr<AttendResult> r = ParseResponse(*request_, std::move(response_));
      if (r.ok()) {
        r->client_seconds = SecondsSince(t0_);
        r->attempts = attempt_;
        r->request_bytes = static_cast<int64_t>(request_->ByteSizeLong());
      }
      done_(std::move(r));
      return;
    }
    const auto wait = Backoff(call_.retry, attempt_);
    if (!ShouldRetry(s, attempt_, call_, deadline_, wait)) {
      done_(FromGrpc("Attend", s));
      return;
    }
    // Back off on a gRPC alarm rather than sleeping on a gRPC thread.
    alarm_ = std::make_unique<grpc::Alarm>();
    auto self = shared_from_this();
    // The alarm keeps its callback after firing, and the alarm belongs to this object: the
    // callback moves its reference out when it runs, or the object would own itself forever.
    alarm_->Set(Wall::now() + wait, [self](bool) mutable {
      std::shared_ptr<AsyncAttendCall> me = std::move(self);
      me->Start();
    });
  }

  AsyncCallToken live_;  // first: released after every other member
  v1::Attention::Stub* stub_;
  std::shared_ptr<grpc::CallCredentials> token_;
  std::shared_ptr<const v1::AttendRequest> request_;
  CallOptions call_;
  Client::AttendCallback done_;
  Clock::time_point t0_;
  std::optional<Wall::time_point> deadline_;
  int attempt_ = 0;
  std::unique_ptr<grpc::ClientContext> ctx_;
  v1::AttendResponse response_;
  std::unique_ptr<grpc::Alarm> alarm_;
};

void Client::AttendAsync(std::shared_ptr<const v1::AttendRequest> request, const CallOptions& call,
                         AttendCallback done) const {
  std::make_shared<AsyncAttendCall>(stubs_->async_calls, stubs_->attention.get(), stubs_->token, std::move(request),
                                    call, std::move(done))
      ->Start();
}

std::future<absl::StatusOr<AttendResult>> Client::AttendFuture(
    std::shared_ptr<const v1::AttendRequest> request, const CallOptions& call) const {
  auto promise = std::make_shared<std::promise<absl::StatusOr<AttendResult>>>();
  auto future = promise->get_future();
  AttendAsync(std::move(request), call,
              [promise](absl::StatusOr<AttendResult> r) { promise->set_value(std::move(r)); });
  return future;
}

absl::StatusOr<std::unique_ptr<AttendStream>> Client::OpenStream(const StreamOptions& options) const {
  return AttendStream::Open(stubs_->attention.get(), stubs_->token, options);
}

absl::StatusOr<v1::Capabilities> Client::GetCapabilities(const CallOptions& call) const {
  const auto deadline = DeadlineFor(call);
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    Prepare(&ctx, deadline, call, stubs_->token);
    v1::Capabilities caps;
    const grpc::Status s = stubs_->attention->GetCapabilities(&ctx, {}, &caps);
    if (s.ok()) return caps;
    const auto wait = Backoff(call.retry, attempt);
    if (!ShouldRetry(s, attempt, call, deadline, wait)) return FromGrpc("GetCapabilities", s);
    std::this_thread::sleep_for(wait);
  }
}

absl::StatusOr<ServingStatus> Client::CheckHealth(std::string_view service,
                                                  const CallOptions& call) const {
  grpc::ClientContext ctx;
  Prepare(&ctx, DeadlineFor(call), call, stubs_->token);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(std::string(service));
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status s = stubs_->health->Check(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc("Health.Check", s);
  return static_cast<ServingStatus>(resp.status());
}

}  // namespace hbsa::client
