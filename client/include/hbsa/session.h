// hbsa/session.h: the C++ client of hbsa.v1.Sessions (proto/hbsa/v1/session.proto): K/V that
// stay on the server, so that each decode step or prefill chunk sends only its new tokens.
//
//   auto channel = hbsa::client::MakeChannel("127.0.0.1:50051", {});
//   absl::StatusOr<hbsa::client::Session> s = hbsa::client::Session::Open(
//       channel, {.dtype = hbsa::DType::kBFloat16, .num_heads_k = 8, .head_dim = 128});
//   s->Append({.sequence_ids = {"req-17"}, .k = k, .v = v, .cu_seqlens = {0, n}});
//   absl::StatusOr<hbsa::client::SessionAttendResult> r = s->Attend(step);  // new queries
//   // ~Session closes it (or call Close() to see the status).
//
// Positions: a sequence's resident K/V are its rows in append order; an Attend's block mask and
// causal rule refer to them (key length = resident length after the call's own append; the
// last new query lines up with the last resident key).
//
// Ownership: every call copies what it needs from the caller's buffers into its request before
// it returns; results own their bytes. A Session is movable, not copyable, and not thread-safe
// (one sequence of steps; use one Session per thread or guard it).
//
// Errors: absl::Status with the gRPC code and "<rpc>: <server message>". NOT_FOUND means the
// session is gone (closed, evicted by TTL or LRU, or the server restarted: the message says
// which): open a new one and re-send the context. Session calls are never retried: Append is not
// idempotent, and a retry after a restart would meet NOT_FOUND anyway.
#ifndef HBSA_SESSION_H_
#define HBSA_SESSION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hbsa/attention.h"
#include "hbsa/client.h"
#include "hbsa/v1/session.grpc.pb.h"

namespace hbsa::client {

struct SessionOptions {
  DType dtype = DType::kFloat32;  // of every row and query of the session
  int32_t num_heads_k = 0;        // Hk
  int32_t head_dim = 0;           // D
  int64_t capacity_tokens = 0;    // tokens to reserve up front; 0 = none (grow on demand)
  double ttl_seconds = 0;         // idle TTL; 0 = the server's default
};

// New K/V rows for one or more sequences, packed like Attend's k/v: rows
// cu_seqlens[i]..cu_seqlens[i+1]-1 of k and v belong to sequence_ids[i].
struct SequenceRows {
  std::vector<std::string> sequence_ids;
  ConstBuffer k;                    // dtype [total, Hk, D]
  ConstBuffer v;                    // dtype [total, Hk, D]
  std::vector<int32_t> cu_seqlens;  // [N+1], 0-based, last = total
};

// New queries of B sequences against their resident K/V.
struct SessionAttendArgs {
  std::vector<std::string> sequence_ids;  // B sequences of the session
  ConstBuffer q;                          // dtype [total_q, Hq, D]
  int32_t num_heads_q = 0;                // Hq, a multiple of Hk
  std::vector<int32_t> cu_seqlens_q;      // [B+1]
  const SequenceRows* append = nullptr;   // rows appended first (may be null)
  int32_t q_block_size = 0;               // Sq
  int32_t k_block_size = 0;               // Sk
  bool causal = false;                    // bottom-right aligned
  std::optional<float> softmax_scale;     // unset: 1/sqrt(D)
  bool return_lse = false;
  // The mask over resident positions, as in AttentionArgs (Nk = sum of ceil(L_b / Sk) with L_b
  // the resident lengths after the append): dense bytes are bit-packed into a DenseBlockMask,
  // compact CSR travels as a CompactBlockMask.
  MaskFormat mask_format = MaskFormat::kDense;
  DenseMaskArgs dense_mask;
  CompactMaskArgs compact_mask;
  std::string request_id;
};

struct SessionAttendResult {
  AttendResult result;                    // out (and lse), timings, backend
  std::vector<int64_t> sequence_lengths;  // resident lengths used, in sequence_ids order
};

class Session {
 public:
  // Opens a session on the server behind `channel`; `bearer_token` as in Client.
  static absl::StatusOr<Session> Open(std::shared_ptr<grpc::Channel> channel,
                                      const SessionOptions& options, const CallOptions& call = {},
                                      const std::string& bearer_token = "");
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Closes the session if it is still open (the status is dropped; call Close to see it).
  ~Session();

  const std::string& id() const { return id_; }
  const v1::OpenSessionResponse& info() const { return info_; }  // page size, TTL, device
  bool open() const { return !id_.empty(); }

  // Appends rows; returns the resident lengths of rows.sequence_ids after it.
  absl::StatusOr<std::vector<int64_t>> Append(const SequenceRows& rows,
                                              const CallOptions& call = {});
  // Attention of new queries against the resident K/V (after args.append).
  absl::StatusOr<SessionAttendResult> Attend(const SessionAttendArgs& args,
                                             const CallOptions& call = {});
  // Frees the session on the server; the object is closed afterwards whatever the outcome.
  absl::Status Close(const CallOptions& call = {});

 private:
  Session() = default;
  struct Rpc;
  std::shared_ptr<Rpc> rpc_;  // stub and token
  std::string id_;
  v1::OpenSessionResponse info_;
  SessionOptions options_;
};

// Client-side routing of sessions over several replicas (e.g. the pod addresses of a headless
// Kubernetes Service): a session lives on one server, so every call about it must reach that
// server. The router maps a caller-chosen routing key (a conversation or request id) to one
// address by consistent hashing: each address owns `virtual_nodes` points on a 64-bit ring
// (RouteHash of "<address>#<i>"), and a key (RouteHash of its bytes) belongs to the first point at
// or after it. Every client with the same address list picks the same replica for a key; when an
// address joins or leaves, only the keys of the ring arcs it gains or loses move (their sessions
// answer NOT_FOUND and are reopened). A Session opened through the router keeps its channel.
// Thread-safe after construction.
class SessionRouter {
 public:
  // `addresses`: "host:port" each, at least one; duplicates are ignored.
  explicit SessionRouter(std::vector<std::string> addresses, const ChannelOptions& options = {},
                         int virtual_nodes = 128);
  const std::vector<std::string>& addresses() const { return addresses_; }
  // The address `key` maps to.
  const std::string& AddressFor(std::string_view key) const;
  std::shared_ptr<grpc::Channel> ChannelFor(std::string_view key) const;
  // Session::Open on the replica of `key`.
  absl::StatusOr<Session> Open(std::string_view key, const SessionOptions& options,
                               const CallOptions& call = {}) const;

 private:
  std::vector<std::string> addresses_;                    // sorted, distinct
  std::vector<std::shared_ptr<grpc::Channel>> channels_;  // one per address
  std::vector<std::pair<uint64_t, int>> ring_;            // (point, address index), sorted
  std::string bearer_token_;
};

// The router's hash: FNV-1a 64 of the bytes, then MurmurHash3's 64-bit finalizer (fmix64), so
// that keys differing only in their last bytes spread over the ring. The Python client's
// hbsa.route_hash is the same function.
uint64_t RouteHash(std::string_view bytes);

// "host:port" -> the sorted "ip:port" addresses the host resolves to (getaddrinfo, IPv4 and
// IPv6; IPv6 as "[ip]:port"), for a SessionRouter over a headless Service's pods.
// UNAVAILABLE when the name does not resolve.
absl::StatusOr<std::vector<std::string>> ResolveAddresses(std::string_view host_port);

// The wire form of rows (exposed for tests and tools). INVALID_ARGUMENT naming the field when
// the buffer sizes do not match [total, Hk, D] of `options`.
absl::StatusOr<v1::SessionRows> BuildSessionRows(const SequenceRows& rows,
                                                 const SessionOptions& options);

}  // namespace hbsa::client

#endif  // HBSA_SESSION_H_
