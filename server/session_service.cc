// server/session_service.cc: the calls of hbsa.v1.Sessions (see session_service.h).
#include "session_service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "request_id.h"
#include "status_map.h"
#include "wire_request.h"

namespace hbsa::server {
namespace {

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

absl::Status Invalid(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

absl::Status Draining() {
  return absl::UnavailableError(
      "server is draining (shutting down); its sessions will be lost, open new ones on another "
      "server");
}

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, AttentionService* attention,
                                 const char* method, const std::string& id, const absl::Status& s,
                                 Clock::time_point received, int64_t bytes) {
  attention->RecordOutcome(method, id, s, kNoDevice, received, bytes);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// The session request's q, cu_seqlens_q, block sizes, flags and mask as an AttendRequest
// without tensors (ParsedRequest::meta); the key side is filled in by the caller.
v1::AttendRequest MetaOf(const v1::AttendSessionRequest& r) {
  v1::AttendRequest m;
  m.set_request_id(r.request_id());
  m.mutable_cu_seqlens_q()->CopyFrom(r.cu_seqlens_q());
  m.set_q_block_size(r.q_block_size());
  m.set_k_block_size(r.k_block_size());
  m.set_causal(r.causal());
  if (r.has_softmax_scale()) m.set_softmax_scale(r.softmax_scale());
  m.set_return_lse(r.return_lse());
  m.set_allow_tf32(r.allow_tf32());
  switch (r.block_mask_case()) {
    case v1::AttendSessionRequest::kDenseMask:
      *m.mutable_dense_mask() = r.dense_mask();
      break;
    case v1::AttendSessionRequest::kPerSequenceMask:
      *m.mutable_per_sequence_mask() = r.per_sequence_mask();
      break;
    case v1::AttendSessionRequest::kCompactMask:
      *m.mutable_compact_mask() = r.compact_mask();
      break;
    default:
      break;
  }
  return m;
}

void ViewTensor(int dtype, std::vector<int64_t> shape, const char* data, size_t bytes,
                WireTensor* w) {
  w->dtype = dtype;
  w->shape = std::move(shape);
  w->data.pieces.clear();
  if (bytes > 0) w->data.pieces.push_back({data, bytes});
  w->data.bytes = bytes;
}

// One AttendSession call: admitted in the constructor, finished by whoever completes the job.
class AttendSessionCall final : public grpc::ServerUnaryReactor {
 public:
  AttendSessionCall(SessionService* service, grpc::CallbackServerContext* context,
                    const v1::AttendSessionRequest* request, v1::AttendSessionResponse* response)
      : service_(service), response_(response), flags_(std::make_shared<CallFlags>()) {
    const Clock::time_point received = Clock::now();
    request_id_ = request->request_id();
    service->metrics()->AddReceivedBytes(static_cast<int64_t>(request->ByteSizeLong()));
    if (service->scheduler()->draining()) {
      Fail(Draining(), received);
      return;
    }
    std::unique_ptr<Job> job;
    absl::Status s = service->PrepareAttend(*request, &job, &lengths_);
    if (!s.ok()) {
      Fail(s, received);
      return;
    }
    job->method = "AttendSession";
    job->flags = flags_;
    job->deadline = DeadlineOf(*context);
    job->received = received;
    job->parse_seconds = Since(received);
    job->done = [this](const absl::Status& st, Job& j) { Done(st, j); };
    s = service->scheduler()->Submit(&job);
    // On success the call may already be finished and deleted here: touch nothing.
    if (!s.ok()) Fail(s, received);
  }

  void OnCancel() override { flags_->cancelled.store(true); }
  void OnDone() override { delete this; }

 private:
  void Done(const absl::Status& status, Job& job) {
    if (!status.ok()) {
      Fail(status, job.received, job.device);
      return;
    }
    // The executor's response bytes, read back into the message (a copy of out/lse; the
    // stateless Attend frames them without one, which this path can adopt when it goes raw).
    grpc::ByteBuffer bytes = ResponseOf(job);
    const int64_t size = static_cast<int64_t>(bytes.Length());
    grpc::ProtoBufferReader reader(&bytes);
    if (!response_->mutable_attention()->ParseFromZeroCopyStream(&reader)) {
      Fail(absl::InternalError("AttendSession: could not read back the computed response"),
           job.received);
      return;
    }
    for (int64_t l : lengths_) response_->add_sequence_lengths(l);
    service_->metrics()->ObserveSessionStep(Since(job.received));
    service_->attention()->RecordOutcome("AttendSession", request_id_, status, job.device,
                                         job.received, size);
    Finish(grpc::Status::OK);
  }

  void Fail(const absl::Status& status, Clock::time_point received,
            const std::string& device = kNoDevice) {
    service_->attention()->RecordOutcome("AttendSession", request_id_, status, device, received, 0);
    Finish(ToGrpcStatus(status));
  }

  SessionService* const service_;
  v1::AttendSessionResponse* const response_;
  std::shared_ptr<CallFlags> flags_;
  std::string request_id_;
  std::vector<int64_t> lengths_;
};

}  // namespace

SessionService::SessionService(TranslateLimits limits, SessionStore* store, Scheduler* scheduler,
                               Metrics* metrics, AttentionService* attention)
    : limits_(limits),
      store_(store),
      scheduler_(scheduler),
      metrics_(metrics),
      attention_(attention) {}

grpc::ServerUnaryReactor* SessionService::OpenSession(grpc::CallbackServerContext* context,
                                                      const v1::OpenSessionRequest* request,
                                                      v1::OpenSessionResponse* response) {
  const Clock::time_point received = Clock::now();
  absl::Status s;
  if (scheduler_->draining()) {
    s = Draining();
  } else if (absl::StatusOr<OpenedSession> o = store_->Open(*request); !o.ok()) {
    s = o.status();
  } else {
    response->set_session_id(o->id);
    response->set_device(o->device);
    response->set_page_tokens(o->page_tokens);
    response->set_page_bytes(o->page_bytes);
    response->set_ttl_seconds(o->ttl_seconds);
    response->set_reserved_tokens(o->reserved_tokens);
  }
  return Answer(context, attention_, "OpenSession", "", s, received,
                static_cast<int64_t>(response->ByteSizeLong()));
}

grpc::ServerUnaryReactor* SessionService::Append(grpc::CallbackServerContext* context,
                                                 const v1::AppendRequest* request,
                                                 v1::AppendResponse* response) {
  const Clock::time_point received = Clock::now();
  metrics_->AddReceivedBytes(static_cast<int64_t>(request->ByteSizeLong()));
  absl::Status s;
  if (scheduler_->draining()) {
    s = Draining();
  } else if (absl::StatusOr<std::vector<int64_t>> l =
                 store_->Append(request->session_id(), request->rows());
             !l.ok()) {
    s = l.status();
  } else {
    int64_t tokens = 0;
    for (int64_t x : *l) {
      response->add_sequence_lengths(x);
      tokens += x;
    }
    response->set_session_tokens(tokens);
    metrics_->ObserveSessionAppend(Since(received));
  }
  return Answer(context, attention_, "Append", "", s, received,
                static_cast<int64_t>(response->ByteSizeLong()));
}

grpc::ServerUnaryReactor* SessionService::AttendSession(grpc::CallbackServerContext* context,
                                                        const v1::AttendSessionRequest* request,
                                                        v1::AttendSessionResponse* response) {
  return new AttendSessionCall(this, context, request, response);
}

grpc::ServerUnaryReactor* SessionService::CloseSession(grpc::CallbackServerContext* context,
                                                       const v1::CloseSessionRequest* request,
                                                       v1::CloseSessionResponse* response) {
  const Clock::time_point received = Clock::now();
  absl::Status s;
  if (absl::StatusOr<int64_t> freed = store_->Close(request->session_id()); !freed.ok()) {
    s = freed.status();
  } else {
    response->set_freed_bytes(*freed);
  }
  return Answer(context, attention_, "CloseSession", "", s, received, 0);
}

absl::Status SessionService::PrepareAttend(const v1::AttendSessionRequest& r,
                                           std::unique_ptr<Job>* job,
                                           std::vector<int64_t>* lengths) {
  if (absl::Status s = CheckRequestId(r.request_id()); !s.ok()) return s;
  std::vector<std::string> ids(r.sequence_ids().begin(), r.sequence_ids().end());
  if (r.cu_seqlens_q_size() != static_cast<int>(ids.size()) + 1) {
    return Invalid(absl::StrCat("cu_seqlens_q must hold B+1 = ", ids.size() + 1, " entries (B = ",
                                ids.size(), " sequence_ids); got ", r.cu_seqlens_q_size()));
  }
  if (r.q().has_shm()) return absl::UnimplementedError("q.shm: AttendSession takes q as data");
  std::unique_ptr<TranslatedRequest> translated;
  absl::StatusOr<std::vector<int64_t>> l = store_->Attend(
      r.session_id(), ids, r.append(), [&](const ResidentView& view) -> absl::Status {
        const v1::DType dtype = ToProtoDType(view.dtype);
        if (r.q().dtype() != dtype) {
          return Invalid(absl::StrCat("q.dtype must be the session's dtype (",
                                      v1::DType_Name(dtype), "); got ",
                                      static_cast<int>(r.q().dtype())));
        }
        if (r.q().shape_size() == 3 && r.q().shape(2) != view.head_dim) {
          return Invalid(absl::StrCat("q.shape[2] (D = ", r.q().shape(2),
                                      ") must be the session's head_dim (", view.head_dim, ")"));
        }
        int64_t total_k = 0;
        for (int64_t len : view.lengths) total_k += len;
        if (total_k > std::numeric_limits<int32_t>::max()) {
          return Invalid(absl::StrCat("sequence_ids: the named sequences hold ", total_k,
                                      " resident tokens, past the 2^31 - 1 of one attention call"));
        }
        const int64_t row_bytes =
            int64_t{view.num_heads_k} * view.head_dim * static_cast<int64_t>(DTypeSize(view.dtype));
        // Refuse before gathering what the validation pass would refuse for its size.
        if (limits_.memory_budget_bytes > 0 &&
            2 * total_k * row_bytes > limits_.memory_budget_bytes) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "sequence_ids: the resident K/V of the named sequences (", 2 * total_k * row_bytes,
              " bytes) is past the per-call memory budget (", limits_.memory_budget_bytes,
              " bytes, --memory-budget-bytes); this first step gathers it per call"));
        }
        auto parsed = std::make_shared<ParsedRequest>();
        parsed->meta = MetaOf(r);
        // The key side of sequence b is its resident sequence: cu_seqlens_k from the lengths.
        int64_t offset = 0;
        parsed->meta.add_cu_seqlens_k(0);
        for (int64_t len : view.lengths) {
          offset += len;
          parsed->meta.add_cu_seqlens_k(static_cast<int32_t>(offset));
        }
        const size_t kv_bytes = static_cast<size_t>(total_k * row_bytes);
        std::shared_ptr<char[]> kv(new char[2 * kv_bytes + 1]);
        view.gather(kv.get(), kv.get() + kv_bytes);
        // q is read in place from the request, which outlives the job (the call finishes after it).
        ViewTensor(r.q().dtype(), {r.q().shape().begin(), r.q().shape().end()}, r.q().data().data(),
                   r.q().data().size(), &parsed->q);
        ViewTensor(dtype, {total_k, view.num_heads_k, view.head_dim}, kv.get(), kv_bytes,
                   &parsed->k);
        ViewTensor(dtype, {total_k, view.num_heads_k, view.head_dim}, kv.get() + kv_bytes, kv_bytes,
                   &parsed->v);
        parsed->wire_bytes = static_cast<int64_t>(r.ByteSizeLong());
        parsed->keepalive = std::shared_ptr<const void>(kv, kv.get());
        absl::StatusOr<std::unique_ptr<TranslatedRequest>> t =
            Translate(std::move(parsed), limits_, nullptr);
        if (!t.ok()) return t.status();
        translated = std::move(*t);
        return absl::OkStatus();
      });
  if (!l.ok()) return l.status();
  *lengths = std::move(*l);
  *job = std::make_unique<Job>();
  (*job)->request_id = r.request_id();
  (*job)->request = std::move(translated);
  return absl::OkStatus();
}

}  // namespace hbsa::server
