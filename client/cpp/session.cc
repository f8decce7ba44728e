// client/cpp/session.cc: hbsa::client::Session (see hbsa/session.h).
#include "hbsa/session.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hbsa::client {
namespace {

absl::Status FromGrpc(const char* rpc, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(rpc, ": ", s.error_message()));
}

v1::DType ProtoDType(DType d) {
  switch (d) {
    case DType::kFloat16:
      return v1::DTYPE_FLOAT16;
    case DType::kBFloat16:
      return v1::DTYPE_BFLOAT16;
    case DType::kFloat32:
      return v1::DTYPE_FLOAT32;
  }
  return v1::DTYPE_UNSPECIFIED;
}

void SetTensor(v1::Tensor* t, DType dtype, int64_t rows, int32_t heads, int32_t dim,
               ConstBuffer data) {
  t->set_dtype(ProtoDType(dtype));
  t->add_shape(rows);
  t->add_shape(heads);
  t->add_shape(dim);
  t->set_data(static_cast<const char*>(data.data), data.bytes);
}

}  // namespace

struct Session::Rpc {
  std::unique_ptr<v1::Sessions::Stub> stub;
  std::shared_ptr<grpc::CallCredentials> token;  // nullptr without a bearer token

  void Prepare(grpc::ClientContext* ctx, const CallOptions& call) const {
    if (call.timeout.count() > 0)
      ctx->set_deadline(std::chrono::system_clock::now() + call.timeout);
    ctx->set_wait_for_ready(call.wait_for_ready);
    if (token != nullptr) ctx->set_credentials(token);
  }
};

absl::StatusOr<v1::SessionRows> BuildSessionRows(const SequenceRows& rows,
                                                 const SessionOptions& o) {
  v1::SessionRows out;
  if (rows.cu_seqlens.size() != rows.sequence_ids.size() + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("client: rows.cu_seqlens must hold N+1 = ", rows.sequence_ids.size() + 1,
                     " entries; got ", rows.cu_seqlens.size()));
  }
  const int64_t total = rows.cu_seqlens.back();
  const size_t want = static_cast<size_t>(total) * o.num_heads_k * o.head_dim * DTypeSize(o.dtype);
  for (const auto& [b, name] : {std::pair{&rows.k, "k"}, std::pair{&rows.v, "v"}}) {
    if (b->bytes != want) {
      return absl::InvalidArgumentError(absl::StrCat("client: rows.", name, " must hold ", want,
                                                     " bytes ([", total, ", ", o.num_heads_k, ", ",
                                                     o.head_dim, "]); got ", b->bytes));
    }
  }
  for (const std::string& id : rows.sequence_ids) out.add_sequence_ids(id);
  for (int32_t c : rows.cu_seqlens) out.add_cu_seqlens(c);
  SetTensor(out.mutable_k(), o.dtype, total, o.num_heads_k, o.head_dim, rows.k);
  SetTensor(out.mutable_v(), o.dtype, total, o.num_heads_k, o.head_dim, rows.v);
  return out;
}

absl::StatusOr<Session> Session::Open(std::shared_ptr<grpc::Channel> channel,
                                      const SessionOptions& options, const CallOptions& call,
                                      const std::string& bearer_token) {
  Session s;
  s.rpc_ = std::make_shared<Rpc>();
  s.rpc_->stub = v1::Sessions::NewStub(channel);
  if (!bearer_token.empty()) s.rpc_->token = grpc::AccessTokenCredentials(bearer_token);
  s.options_ = options;
  v1::OpenSessionRequest req;
  req.set_dtype(ProtoDType(options.dtype));
  req.set_num_heads_k(options.num_heads_k);
  req.set_head_dim(options.head_dim);
  req.set_capacity_tokens(options.capacity_tokens);
  req.set_ttl_seconds(options.ttl_seconds);
  grpc::ClientContext ctx;
  s.rpc_->Prepare(&ctx, call);
  if (absl::Status st = FromGrpc("OpenSession", s.rpc_->stub->OpenSession(&ctx, req, &s.info_));
      !st.ok()) {
    return st;
  }
  s.id_ = s.info_.session_id();
  return s;
}

Session::Session(Session&& other) noexcept
    : rpc_(std::move(other.rpc_)),
      id_(std::exchange(other.id_, "")),
      info_(std::move(other.info_)),
      options_(other.options_) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    if (open()) Close().IgnoreError();
    rpc_ = std::move(other.rpc_);
    id_ = std::exchange(other.id_, "");
    info_ = std::move(other.info_);
    options_ = other.options_;
  }
  return *this;
}

Session::~Session() {
  if (!open()) return;
  CallOptions call;
  call.timeout = std::chrono::milliseconds(5000);
  Close(call).IgnoreError();
}

absl::StatusOr<std::vector<int64_t>> Session::Append(const SequenceRows& rows,
                                                     const CallOptions& call) {
  if (!open()) return absl::FailedPreconditionError("client: Append on a closed Session");
  v1::AppendRequest req;
  req.set_session_id(id_);
  absl::StatusOr<v1::SessionRows> r = BuildSessionRows(rows, options_);
  if (!r.ok()) return r.status();
  *req.mutable_rows() = std::move(*r);
  v1::AppendResponse resp;
  grpc::ClientContext ctx;
  rpc_->Prepare(&ctx, call);
  if (absl::Status st = FromGrpc("Append", rpc_->stub->Append(&ctx, req, &resp)); !st.ok())
    return st;
  return std::vector<int64_t>(resp.sequence_lengths().begin(), resp.sequence_lengths().end());
}

absl::StatusOr<SessionAttendResult> Session::Attend(const SessionAttendArgs& a,
                                                    const CallOptions& call) {
  if (!open()) return absl::FailedPreconditionError("client: Attend on a closed Session");
  if (a.cu_seqlens_q.size() != a.sequence_ids.size() + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("client: cu_seqlens_q must hold B+1 = ", a.sequence_ids.size() + 1,
                     " entries; got ", a.cu_seqlens_q.size()));
  }
  const int64_t total_q = a.cu_seqlens_q.back();
  const size_t q_bytes =
      static_cast<size_t>(total_q) * a.num_heads_q * options_.head_dim * DTypeSize(options_.dtype);
  if (a.q.bytes != q_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("client: q must hold ", q_bytes, " bytes ([",
                                                   total_q, ", ", a.num_heads_q, ", ",
                                                   options_.head_dim, "]); got ", a.q.bytes));
  }
  v1::AttendSessionRequest req;
  req.set_session_id(id_);
  req.set_request_id(a.request_id);
  for (const std::string& id : a.sequence_ids) req.add_sequence_ids(id);
  SetTensor(req.mutable_q(), options_.dtype, total_q, a.num_heads_q, options_.head_dim, a.q);
  for (int32_t c : a.cu_seqlens_q) req.add_cu_seqlens_q(c);
  if (a.append != nullptr) {
    absl::StatusOr<v1::SessionRows> r = BuildSessionRows(*a.append, options_);
    if (!r.ok()) return r.status();
    *req.mutable_append() = std::move(*r);
  }
  req.set_q_block_size(a.q_block_size);
  req.set_k_block_size(a.k_block_size);
  req.set_causal(a.causal);
  if (a.softmax_scale.has_value()) req.set_softmax_scale(*a.softmax_scale);
  req.set_return_lse(a.return_lse);
  if (a.mask_format == MaskFormat::kDense) {
    v1::DenseBlockMask* m = req.mutable_dense_mask();
    const int64_t n = a.dense_mask.shape[0] * a.dense_mask.shape[1] * a.dense_mask.shape[2];
    if (a.dense_mask.data.bytes != static_cast<size_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("client: dense_mask must hold shape[0]*shape[1]*shape[2] = ", n,
                       " bytes; got ", a.dense_mask.data.bytes));
    }
    for (int64_t d : a.dense_mask.shape) m->add_shape(d);
    m->set_bits(PackBits(static_cast<const uint8_t*>(a.dense_mask.data.data), n));
  } else {
    v1::CompactBlockMask* m = req.mutable_compact_mask();
    const auto* ro = static_cast<const int64_t*>(a.compact_mask.row_offsets.data);
    const auto* ci = static_cast<const int32_t*>(a.compact_mask.col_indices.data);
    m->mutable_row_offsets()->Add(ro, ro + a.compact_mask.row_offsets.bytes / sizeof(int64_t));
    m->mutable_col_indices()->Add(ci, ci + a.compact_mask.col_indices.bytes / sizeof(int32_t));
  }
  const auto t0 = std::chrono::steady_clock::now();
  v1::AttendSessionResponse resp;
  grpc::ClientContext ctx;
  rpc_->Prepare(&ctx, call);
  if (absl::Status st = FromGrpc("AttendSession", rpc_->stub->AttendSession(&ctx, req, &resp));
      !st.ok())
    return st;
  SessionAttendResult out;
  v1::AttendResponse& r = *resp.mutable_attention();
  const size_t want_out = q_bytes;
  if (r.out().dtype() != ProtoDType(options_.dtype) || r.out().data().size() != want_out ||
      (a.return_lse &&
       r.lse().data().size() != static_cast<size_t>(total_q) * a.num_heads_q * sizeof(float))) {
    return absl::InternalError(
        absl::StrCat("client: AttendSession response does not match the request (out ",
                     r.out().data().size(), " bytes, expected ", want_out, ")"));
  }
  AttendResult& res = out.result;
  res.request_id = r.request_id();
  res.dtype = options_.dtype;
  res.out_shape = {total_q, a.num_heads_q, options_.head_dim};
  res.out = std::move(*r.mutable_out()->mutable_data());
  res.has_lse = a.return_lse;
  if (a.return_lse) {
    res.lse.resize(static_cast<size_t>(total_q) * a.num_heads_q);
    std::memcpy(res.lse.data(), r.lse().data().data(), res.lse.size() * sizeof(float));
  }
  res.server_timings = r.timings();
  res.backend = r.backend();
  res.device = r.device();
  res.client_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.attempts = 1;
  res.request_bytes = static_cast<int64_t>(req.ByteSizeLong());
  res.response_bytes = static_cast<int64_t>(resp.ByteSizeLong());
  out.sequence_lengths.assign(resp.sequence_lengths().begin(), resp.sequence_lengths().end());
  return out;
}

absl::Status Session::Close(const CallOptions& call) {
  if (!open()) return absl::OkStatus();
  v1::CloseSessionRequest req;
  req.set_session_id(std::exchange(id_, ""));
  v1::CloseSessionResponse resp;
  grpc::ClientContext ctx;
  rpc_->Prepare(&ctx, call);
  return FromGrpc("CloseSession", rpc_->stub->CloseSession(&ctx, req, &resp));
}

uint64_t RouteHash(std::string_view bytes) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // MurmurHash3's fmix64: FNV-1a alone hardly moves the high bits for keys that differ in their
  // last bytes ("addr#0", "addr#1", ...), which would bunch an address's points on the ring.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

SessionRouter::SessionRouter(std::vector<std::string> addresses, const ChannelOptions& options,
                             int virtual_nodes)
    : bearer_token_(options.bearer_token) {
  std::set<std::string> distinct(addresses.begin(), addresses.end());
  addresses_.assign(distinct.begin(), distinct.end());
  ChannelOptions one = options;
  one.load_balancing_policy = "pick_first";  // each channel is one replica
  for (size_t i = 0; i < addresses_.size(); ++i) {
    channels_.push_back(MakeChannel(addresses_[i], one));
    for (int v = 0; v < std::max(virtual_nodes, 1); ++v) {
      ring_.emplace_back(RouteHash(absl::StrCat(addresses_[i], "#", v)), static_cast<int>(i));
    }
  }
  std::sort(ring_.begin(), ring_.end());
}

const std::string& SessionRouter::AddressFor(std::string_view key) const {
  static const std::string kNone;
  if (ring_.empty()) return kNone;
  const uint64_t h = RouteHash(key);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(h, 0));
  if (it == ring_.end()) it = ring_.begin();
  return addresses_[it->second];
}

std::shared_ptr<grpc::Channel> SessionRouter::ChannelFor(std::string_view key) const {
  const std::string& a = AddressFor(key);
  for (size_t i = 0; i < addresses_.size(); ++i) {
    if (addresses_[i] == a) return channels_[i];
  }
  return nullptr;
}

absl::StatusOr<Session> SessionRouter::Open(std::string_view key, const SessionOptions& options,
                                            const CallOptions& call) const {
  std::shared_ptr<grpc::Channel> channel = ChannelFor(key);
  if (channel == nullptr)
    return absl::FailedPreconditionError("client: SessionRouter has no addresses");
  return Session::Open(std::move(channel), options, call, bearer_token_);
}

absl::StatusOr<std::vector<std::string>> ResolveAddresses(std::string_view host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("client: \"", std::string(host_port), "\" must be host:port"));
  }
  const std::string host(host_port.substr(0, colon)), port(host_port.substr(colon + 1));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("client: cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::set<std::string> out;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof(buf));
      out.insert(absl::StrCat(buf, ":", port));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, buf,
                sizeof(buf));
      out.insert(absl::StrCat("[", buf, "]:", port));
    }
  }
  freeaddrinfo(res);
  return std::vector<std::string>(out.begin(), out.end());
}

}  // namespace hbsa::client
