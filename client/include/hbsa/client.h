// hbsa/client.h: the C++ client of the hbsa attention service (proto/hbsa/v1/attention.proto).
//
// A caller describes one attention call with the library's own hbsa::AttentionArgs (dtype,
// shapes, byte views of q/k/v and cu_seqlens, the mask as dense bytes or compact CSR; see
// hbsa/attention.h), picks the form the mask travels in, and calls Client::Attend:
//
//   auto channel = hbsa::client::MakeChannel("dns:///hbsa.default.svc:50051", {});
//   hbsa::client::Client client(channel);
//   hbsa::client::RequestOptions ro{.mask_form = hbsa::client::MaskForm::kCompact};
//   absl::StatusOr<hbsa::client::AttendResult> r = client.Attend(args, ro, {.timeout = 10s});
//
// Ownership: Attend and the asynchronous calls copy what they need out of `args` into the
// request before they return, so the caller's buffers may be reused at once, and their results
// own their bytes. AttendInto copies nothing: it sends from and answers into the caller's
// buffers (see there). A Client is thread-safe: share one per channel.
//
// Errors: every failure is an absl::Status whose code is the gRPC code (same numbering) and
// whose message is "<rpc>: <server message>" (e.g. "Attend: cu_seqlens_q must be
// non-decreasing; entry 3 (12) < entry 2 (40)"). Local checks (hbsa::Validate before sending,
// malformed responses) use INVALID_ARGUMENT / INTERNAL with a "client:" prefix.
//
// Retries: only UNAVAILABLE is retried (the server is draining, restarting or unreachable, so
// the request was not processed; Attend is a pure function, so sending it again is harmless),
// with bounded exponential backoff and jitter, never past the call's deadline. Never retried:
// DEADLINE_EXCEEDED (the time is spent), INVALID_ARGUMENT and every other code (the same
// request would fail the same way, or the server is overloaded: RESOURCE_EXHAUSTED is left to
// the caller, who knows whether to shed or wait).
#ifndef HBSA_CLIENT_H_
#define HBSA_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hbsa/attention.h"
#include "hbsa/v1/attention.grpc.pb.h"

namespace grpc {
class CallCredentials;
class Channel;
}  // namespace grpc

namespace hbsa::client {

// The form the block mask travels in (AttendRequest.block_mask).
enum class MaskForm : int {
  kDense = 0,        // DenseBlockMask: [Hk, Nq, Nk] bit-packed
  kPerSequence = 1,  // PerSequenceBlockMask: one bit-packed [Hk, nq_b, nk_b] plane per sequence
  kCompact = 2,      // CompactBlockMask: CSR of the allowed key blocks, same-sequence entries only
};
// "dense", "per_sequence", "compact".
std::string_view MaskFormName(MaskForm form);
// Accepts the names above (and "per-sequence"); nullopt otherwise.
std::optional<MaskForm> ParseMaskForm(std::string_view name);

// A range of a shared-memory region registered with Client::RegisterSharedMemory; the byte
// count is the tensor's own.
struct ShmRef {
  std::string region;
  int64_t offset = 0;
};

// Same-host callers: tensors that lie in registered shared memory instead of travelling as
// bytes (inputs: the caller has written them there; outputs: the server writes them there).
struct ShmTensors {
  std::optional<ShmRef> q, k, v, out, lse;
};

// How to turn AttentionArgs into an AttendRequest.
struct RequestOptions {
  MaskForm mask_form = MaskForm::kDense;  // wire form of the mask (any input form converts)
  bool return_lse = false;                // ask for the LSE [total_q, Hq] fp32
  std::string request_id;                 // echoed by the server; empty = none
  // Run hbsa::Validate before building (default on): bad input fails locally with the same
  // message the server would send, without a round trip. Off only to send malformed requests
  // on purpose (tests of the server's validation).
  bool validate = true;
  // Tensors in shared memory (AttendInto only; BuildRequest ignores it).
  ShmTensors shm;
};

// Builds the wire request from `args` (args.out and args.lse are ignored; everything else is
// copied). The mask may be given dense or compact and is converted to `options.mask_form`.
// Without validation, the request mirrors args as far as its shapes allow.
absl::StatusOr<v1::AttendRequest> BuildRequest(const AttentionArgs& args,
                                               const RequestOptions& options);

// BuildRequest without q, k and v (everything else, validated the same way): the header that
// AttendInto frames the caller's tensor bytes around.
absl::StatusOr<v1::AttendRequest> BuildRequestHeader(const AttentionArgs& args,
                                                     const RequestOptions& options);

// Bit-packs bytes (nonzero = 1) least-significant bit first, as numpy.packbits(bitorder=
// "little"): bit n is (out[n / 8] >> (n % 8)) & 1; pad bits are 0.
std::string PackBits(const uint8_t* bytes, int64_t n);

// One answer, owning its data.
struct AttendResult {
  std::string request_id;         // echoed
  DType dtype = DType::kFloat32;  // of `out`
  std::vector<int64_t> out_shape; // [total_q, Hq, D]
  std::string out;                // raw little-endian bytes, dtype elements
  bool has_lse = false;
  std::vector<float> lse;         // [total_q, Hq] when has_lse; -inf for empty rows
  v1::StageTimings server_timings;
  std::string backend;            // "cuda", "cpu" or "reference"
  int32_t device = -1;            // GPU ordinal, -1 for CPU
  double client_seconds = 0;      // wall time of the whole call, retries and backoff included
  int attempts = 0;               // 1 + retries
  int64_t request_bytes = 0;      // serialized request size
  int64_t response_bytes = 0;     // serialized response size
  double build_seconds = 0;       // AttendInto: caller memory -> request (framing, mask)
  double read_seconds = 0;        // AttendInto: response -> caller memory (out, lse)
};

// Checks a response against what its request implies (dtype, shape and byte counts of out and
// lse) and copies it into an AttendResult. INTERNAL with "client:" prefix on a mismatch.
absl::StatusOr<AttendResult> ParseResponse(const v1::AttendRequest& request,
                                           v1::AttendResponse response);

// Writes `result` into caller buffers laid out as args.out / args.lse (args.lse.data may be
// null to skip). INVALID_ARGUMENT when a buffer's size does not match.
absl::Status CopyToBuffers(const AttendResult& result, const AttentionArgs& args);

// Transport security of a channel. PEM contents, not paths (LoadTlsFiles reads files), so
// building a channel cannot fail; bad PEM fails the TLS handshake (UNAVAILABLE).
struct TlsOptions {
  bool enabled = false;          // TLS on; the other fields refine it
  std::string root_certs_pem;    // CAs that may sign the server's certificate; "" = gRPC's default roots
  std::string cert_chain_pem;    // client certificate for mutual TLS ("" = none)
  std::string private_key_pem;   // its key (with cert_chain_pem, or both empty)
  // Name the server's certificate must carry, when it differs from the target's host (e.g.
  // the target is an IP or a load balancer name); "" = the target's host.
  std::string server_name;
};

// Reads PEM files into TlsOptions with enabled = true: `ca_file` ("" = default roots), and
// `cert_file` with `key_file` for mutual TLS (both or neither). INVALID_ARGUMENT naming the
// file that is missing, unreadable or not PEM.
absl::StatusOr<TlsOptions> LoadTlsFiles(const std::string& ca_file, const std::string& cert_file,
                                        const std::string& key_file,
                                        const std::string& server_name = "");

// A bearer token from the first line of `path` (whitespace trimmed). INVALID_ARGUMENT when
// unreadable or empty.
absl::StatusOr<std::string> LoadTokenFile(const std::string& path);

// Channel construction.
struct ChannelOptions {
  // Largest message sent or received (requests carry q/k/v; responses out/lse). Matches the
  // server's default --max-message-bytes.
  int64_t max_message_bytes = int64_t{512} << 20;
  // Client-side load balancing policy across the addresses a target resolves to: "round_robin"
  // spreads calls over every pod of a headless Kubernetes Service (`dns:///name:port`) or every
  // entry of `ipv4:a:p,b:p`; "pick_first" sticks to one.
  std::string load_balancing_policy = "round_robin";
  // Keepalive pings on idle connections, so a vanished pod is noticed; 0 = off.
  int keepalive_seconds = 30;
  // Give this channel its own connections instead of sharing gRPC's process-wide pool (whose
  // connection to an address that recently failed keeps backing off for every channel).
  bool local_subchannel_pool = false;
  // TLS or mutual TLS to the server (its --tls-* flags); off = plaintext.
  TlsOptions tls;
  // Sent as "authorization: Bearer <token>" on every call by a Client built with these options
  // (the server's --auth-token-file). A per-call credential, so gRPC sends it over TLS only:
  // on a plaintext channel every call fails UNAUTHENTICATED ("...sufficient security level...")
  // and the token never leaves the process. "" = none.
  std::string bearer_token;
};

// Turns the user's target into a gRPC target URI: "host:port" stays as is (resolved by DNS);
// "a:p,b:p" (a comma-separated list without scheme) becomes "ipv4:a:p,b:p"; URIs with a scheme
// (dns:///, ipv4:, ipv6:, unix:) pass through.
std::string NormalizeTarget(std::string_view target);

// A channel to `target` (after NormalizeTarget) with the options above: TLS when
// options.tls.enabled, plaintext otherwise. The bearer token is not part of the channel: the
// Client attaches it to each call.
std::shared_ptr<grpc::Channel> MakeChannel(std::string_view target, const ChannelOptions& options);

// Backoff for retrying UNAVAILABLE.
struct RetryPolicy {
  int max_attempts = 4;  // total tries, first included; 1 = no retry
  std::chrono::milliseconds initial_backoff{50};
  std::chrono::milliseconds max_backoff{2000};
  double multiplier = 2.0;  // each wait is multiplier x the previous, +-20% jitter
};

// Per-call options.
struct CallOptions {
  // Deadline for the whole call, retries included; 0 = none (not recommended).
  std::chrono::milliseconds timeout{60000};
  RetryPolicy retry;
  // Wait for the channel to become ready instead of failing fast when no server is reachable
  // (still bounded by the deadline).
  bool wait_for_ready = false;
};

// Options of one AttendStream (Client::OpenStream).
struct StreamOptions {
  // Requests submitted and not yet answered (or failed): Submit blocks and TrySubmit refuses at
  // this bound, >= 1. The server itself reads at most its --stream-max-inflight (default 8) of a
  // stream at a time; requests beyond that wait in HTTP/2 flow control.
  int max_in_flight = 8;
  // Deadline of the whole stream, from its opening; 0 = none. When it passes, the stream ends
  // and every unanswered request fails with DEADLINE_EXCEEDED.
  std::chrono::milliseconds timeout{0};
  // Wait for the channel to become ready instead of failing fast when no server is reachable.
  bool wait_for_ready = false;
};

// One bidirectional AttendStream call: many requests over one stream, each answered on its own
// (proto/hbsa/v1/attention.proto). Made by Client::OpenStream; thread-safe (several threads may
// submit at once).
//
// Answers may arrive in any order; the stream matches them to requests by request_id, so the
// ids of the requests in flight at the same time must differ. A request with an empty id gets
// one assigned ("stream-<n>"), which its AttendResult::request_id shows.
//
// Errors: a request the server refuses or fails (e.g. INVALID_ARGUMENT for a bad cu_seqlens)
// fails alone, with the server's code and "AttendStream: <message>"; the stream goes on. When
// the stream itself ends (transport error, deadline, cancellation, server shutdown) every
// unanswered request fails with the stream's status, and later submits return it.
// No retries: after UNAVAILABLE, open a new stream and submit the failed requests again.
//
// Lifetime: destroy (or Finish) every stream before its Client and channel.
class AttendStream {
 public:
  // Runs exactly once per accepted request with its answer or error, on a gRPC thread: keep it
  // short and do not block in it (TrySubmit from inside is fine; Submit may wait for a slot).
  using Callback = std::function<void(absl::StatusOr<AttendResult>)>;

  ~AttendStream();  // cancels a stream that was not finished; waits until its callbacks ran
  AttendStream(const AttendStream&) = delete;
  AttendStream& operator=(const AttendStream&) = delete;

  // Callback form. Sends `request` (moved in: the stream owns it until written) and returns
  // OK, then `done` runs once with the answer. Blocks while max_in_flight requests are
  // unanswered (back-pressure). Returns an error and never runs `done` when the request is not
  // sent: INVALID_ARGUMENT ("client: ...") for a request_id longer than 256 bytes (the server
  // would not echo it) or already in flight; FAILED_PRECONDITION after Finish; the stream's
  // status once it has ended.
  absl::Status Submit(v1::AttendRequest request, Callback done);
  // As Submit, but never blocks: RESOURCE_EXHAUSTED ("client: ...") when the stream is full.
  absl::Status TrySubmit(v1::AttendRequest request, Callback done);
  // Blocking form: Submit with a future; a request that was not sent has its error in the
  // future at once.
  std::future<absl::StatusOr<AttendResult>> Submit(v1::AttendRequest request);

  // Half-closes the stream (no more submits), waits until every request in flight is answered
  // and the server has finished, and returns the stream's status (OK, or the error that ended
  // it). Idempotent.
  absl::Status Finish();
  // Ends the stream now: unanswered requests fail with CANCELLED. Finish still waits.
  void Cancel();

  // Requests submitted and not yet answered.
  int in_flight() const;

  class Reactor;  // the gRPC reactor (client/cpp/stream.cc)

 private:
  friend class Client;
  static absl::StatusOr<std::unique_ptr<AttendStream>> Open(
      v1::Attention::Stub* stub, std::shared_ptr<grpc::CallCredentials> token,
      const StreamOptions& options);
  AttendStream() = default;
  std::unique_ptr<Reactor> reactor_;
};

// grpc.health.v1 serving status.
enum class ServingStatus : int { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
std::string_view ServingStatusName(ServingStatus status);  // "SERVING", "NOT_SERVING", ...

// The client. Thread-safe; cheap to create per channel.
class Client {
 public:
  // `bearer_token` ("" = none) is attached to every call, as ChannelOptions::bearer_token.
  explicit Client(std::shared_ptr<grpc::Channel> channel, std::string bearer_token = "");
  // Connects to `target` with MakeChannel(target, options), with options.bearer_token.
  explicit Client(std::string_view target, const ChannelOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Blocking: builds the request from `args`, sends it, parses the answer.
  absl::StatusOr<AttendResult> Attend(const AttentionArgs& args, const RequestOptions& request,
                                      const CallOptions& call = {}) const;
  // Blocking, zero-copy: the request's q, k and v are sent straight from the caller's buffers
  // (args.q/k/v, which must not change until the call returns; no copy is made of them), and
  // the answer is written straight into args.out (and args.lse when it is set and
  // request.return_lse): one copy, from the received bytes. The result carries no out/lse
  // bytes of its own. Tensors named in request.shm travel as references instead (their
  // bytes are not sent; outputs named there are written by the server into shared memory and
  // args.out/args.lse are then not touched).
  absl::StatusOr<AttendResult> AttendInto(const AttentionArgs& args, const RequestOptions& request,
                                          const CallOptions& call = {}) const;

  // Registers shared-memory object `key` (a POSIX shm_open name), bytes [offset, offset + size),
  // under `name` for ShmTensors; Unregister forgets it.
  absl::Status RegisterSharedMemory(const std::string& name, const std::string& key,
                                    int64_t offset, int64_t byte_size,
                                    const CallOptions& call = {}) const;
  absl::Status UnregisterSharedMemory(const std::string& name, const CallOptions& call = {}) const;

  // Blocking, with a prebuilt request (reused by load generators; never modified).
  absl::StatusOr<AttendResult> Attend(const v1::AttendRequest& request,
                                      const CallOptions& call = {}) const;

  // Asynchronous (gRPC callback API): returns at once; `done` runs exactly once, on a gRPC
  // thread (keep it short, do not block in it), after the last attempt. The request is owned
  // by the call until then. ~Client waits until every asynchronous call it started is over
  // (done run and the call's gRPC state released), so destroying the Client right after the
  // last `done` is safe; destroying it from inside a `done` deadlocks.
  using AttendCallback = std::function<void(absl::StatusOr<AttendResult>)>;
  void AttendAsync(std::shared_ptr<const v1::AttendRequest> request, const CallOptions& call,
                   AttendCallback done) const;
  // The same, as a future.
  std::future<absl::StatusOr<AttendResult>> AttendFuture(
      std::shared_ptr<const v1::AttendRequest> request, const CallOptions& call = {}) const;

  // Opens an AttendStream (see there). INVALID_ARGUMENT for max_in_flight < 1.
  absl::StatusOr<std::unique_ptr<AttendStream>> OpenStream(const StreamOptions& options = {}) const;

  // The server's capabilities (backends, devices, head dims, dtypes, limits).
  absl::StatusOr<v1::Capabilities> GetCapabilities(const CallOptions& call = {}) const;

  // grpc.health.v1 Check for `service` ("" = the whole server). Not retried.
  absl::StatusOr<ServingStatus> CheckHealth(std::string_view service,
                                            const CallOptions& call = {}) const;

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  struct Stubs;
  std::shared_ptr<grpc::Channel> channel_;
  std::string bearer_token_;
  std::unique_ptr<Stubs> stubs_;
};

}  // namespace hbsa::client

#endif  // HBSA_CLIENT_H_
