// server/oip_service.cc: inference.GRPCInferenceService over hbsa.v1's pipeline (see the header).
#include "oip_service.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <memory>
#include <utility>

#include "oip_request.h"
#include "status_map.h"
#include "stream_call.h"

namespace hbsa::server {
namespace {

constexpr const char* kMethod = "ModelInfer";

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// The received bytes as a message the request owns, mapped onto the internal request.
absl::StatusOr<std::shared_ptr<ParsedRequest>> ParseInfer(const grpc::ByteBuffer& received,
                                                          OipCall* call) {
  auto message = std::make_shared<oip::ModelInferRequest>();
  grpc::ByteBuffer bytes(received);  // shares the slices
  grpc::ProtoBufferReader reader(&bytes);
  if (!message->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError("request is not a valid inference.ModelInferRequest");
  }
  absl::StatusOr<std::shared_ptr<ParsedRequest>> parsed = ToParsedRequest(message, call);
  if (parsed.ok()) (*parsed)->wire_bytes = static_cast<int64_t>(received.Length());
  return parsed;
}

// One ModelInfer call: admitted in the constructor, finished by whoever completes the job.
class InferCall final : public grpc::ServerUnaryReactor {
 public:
  InferCall(AttentionService* service, grpc::CallbackServerContext* context,
            const grpc::ByteBuffer* request, grpc::ByteBuffer* response)
      : service_(service), response_(response), flags_(std::make_shared<CallFlags>()) {
    const Clock::time_point received = Clock::now();
    absl::StatusOr<std::shared_ptr<ParsedRequest>> parsed = ParseInfer(*request, &call_);
    if (!parsed.ok()) {
      Fail(parsed.status(), received);
      return;
    }
    absl::Status s =
        service->Admit(kMethod, std::move(*parsed), flags_, DeadlineOf(*context), received,
                       [this](const absl::Status& st, Job& job) { Done(st, job); });
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
    const Clock::time_point t0 = Clock::now();
    *response_ = OipResponseOf(job, call_);
    service_->metrics()->ObserveStage(Stage::kResponse, job.device,
                                      std::chrono::duration<double>(Clock::now() - t0).count());
    service_->RecordOutcome(kMethod, call_.id, status, job.device, job.received,
                            static_cast<int64_t>(response_->Length()));
    Finish(grpc::Status::OK);
  }

  void Fail(const absl::Status& status, Clock::time_point received,
            const std::string& device = kNoDevice) {
    const absl::Status named = ToOipStatus(status);
    service_->RecordOutcome(kMethod, call_.id, named, device, received, 0);
    Finish(ToGrpcStatus(named));
  }

  AttentionService* const service_;
  grpc::ByteBuffer* const response_;
  std::shared_ptr<CallFlags> flags_;
  OipCall call_;
};

// ModelStreamInfer's requests and responses (stream_call.h): a failing request is answered with
// error_message (the unary call's message), the stream goes on.
struct ModelStreamCodec {
  struct Context {
    OipCall call;
  };
  static constexpr const char* kMethod = "ModelStreamInfer";
  static absl::StatusOr<std::shared_ptr<ParsedRequest>> Parse(const grpc::ByteBuffer& bytes,
                                                              Context* context) {
    return ParseInfer(bytes, &context->call);
  }
  static grpc::ByteBuffer Success(const Job& job, const Context& context) {
    return OipResponseOf(job, context.call, /*stream=*/true);
  }
  static grpc::ByteBuffer Failure(const absl::Status& status, const Context& context) {
    oip::ModelStreamInferResponse r;
    r.set_error_message(std::string(ToOipStatus(status).message()));
    r.mutable_infer_response()->set_model_name(kOipModelName);
    r.mutable_infer_response()->set_id(context.call.id);
    return SerializeSmall(r);
  }
  static std::string Id(const Context& context) { return context.call.id; }
};

}  // namespace

OipService::OipService(AttentionService* attention, const ServingState* state, std::string version)
    : attention_(attention), state_(state), version_(std::move(version)) {}

grpc::ServerUnaryReactor* OipService::ServerLive(grpc::CallbackServerContext* context,
                                                 const oip::ServerLiveRequest*,
                                                 oip::ServerLiveResponse* response) {
  response->set_live(state_->live());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ServerReady(grpc::CallbackServerContext* context,
                                                  const oip::ServerReadyRequest*,
                                                  oip::ServerReadyResponse* response) {
  response->set_ready(state_->ready());
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ModelReady(grpc::CallbackServerContext* context,
                                                 const oip::ModelReadyRequest* request,
                                                 oip::ModelReadyResponse* response) {
  absl::Status s = CheckModel(request->name(), request->version());
  if (s.ok()) response->set_ready(state_->ready());
  return Answer(context, s);
}

grpc::ServerUnaryReactor* OipService::ServerMetadata(grpc::CallbackServerContext* context,
                                                     const oip::ServerMetadataRequest*,
                                                     oip::ServerMetadataResponse* response) {
  response->set_name("hbsa-server");
  response->set_version(version_);
  response->add_extensions("model_configuration");
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OipService::ModelMetadata(grpc::CallbackServerContext* context,
                                                    const oip::ModelMetadataRequest* request,
                                                    oip::ModelMetadataResponse* response) {
  absl::Status s = CheckModel(request->name(), request->version());
  if (s.ok()) *response = OipModelMetadata();
  return Answer(context, s);
}

grpc::ServerUnaryReactor* OipService::ModelInfer(grpc::CallbackServerContext* context,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  return new InferCall(attention_, context, request, response);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* OipService::ModelStreamInfer(
    grpc::CallbackServerContext* context) {
  return new StreamCall<ModelStreamCodec>(attention_, context);
}

grpc::ServerUnaryReactor* OipService::ModelConfig(grpc::CallbackServerContext* context,
                                                  const oip::ModelConfigRequest* request,
                                                  oip::ModelConfigResponse* response) {
  absl::Status s = CheckModel(request->name(), request->version());
  if (s.ok()) *response = OipModelConfig();
  return Answer(context, s);
}

}  // namespace hbsa::server
