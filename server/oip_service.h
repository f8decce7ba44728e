// server/oip_service.h: the RPC edge of the Open Inference Protocol v2,
// inference.GRPCInferenceService, served on the same port as hbsa.v1.Attention.
//
// A thin `final` class like AttentionService (service.h), and a front end of it: ModelInfer
// maps the request onto hbsa.v1's internal request (oip_request.h) and admits it through
// AttentionService::Admit, so validation, scheduling, executors, metrics (method label
// "ModelInfer", "ModelStreamInfer") and the status mapping are the ones hbsa.v1 uses. ModelInfer is
// a raw method: the request is parsed into a message the call owns (its raw_input_contents are
// referenced in place by the job), and the response is framed around the executor's output memory.
// Handlers never block: the executor thread completing the job finishes the call.
//
// ModelStreamInfer (Triton's extension) is the same stream as hbsa.v1's AttendStream
// (stream_call.h): one response per request, in completion order, error_message for a failed one
// while the stream goes on, at most --stream-max-inflight requests in flight per stream.
//
// ServerLive / ServerReady / ModelReady read ServingState (serving_state.h), which main.cc keeps
// in step with grpc.health.v1.
#ifndef HBSA_SERVER_OIP_SERVICE_H_
#define HBSA_SERVER_OIP_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "inference/v2/open_inference.grpc.pb.h"
#include "service.h"
#include "serving_state.h"

namespace hbsa::server {

namespace oip = inference;
using OipServiceBase = oip::GRPCInferenceService::WithCallbackMethod_ServerLive<
    oip::GRPCInferenceService::WithCallbackMethod_ServerReady<
        oip::GRPCInferenceService::WithCallbackMethod_ModelReady<
            oip::GRPCInferenceService::WithCallbackMethod_ServerMetadata<
                oip::GRPCInferenceService::WithCallbackMethod_ModelMetadata<
                    oip::GRPCInferenceService::WithRawCallbackMethod_ModelInfer<
                        oip::GRPCInferenceService::WithRawCallbackMethod_ModelStreamInfer<
                            oip::GRPCInferenceService::WithCallbackMethod_ModelConfig<
                                oip::GRPCInferenceService::Service>>>>>>>>;

class OipService final : public OipServiceBase {
 public:
  // `attention` and `state` outlive the service.
  OipService(AttentionService* attention, const ServingState* state, std::string version);

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const oip::ServerLiveRequest* request,
                                       oip::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const oip::ServerReadyRequest* request,
                                        oip::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const oip::ModelReadyRequest* request,
                                       oip::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const oip::ServerMetadataRequest* request,
                                           oip::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const oip::ModelMetadataRequest* request,
                                          oip::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const oip::ModelConfigRequest* request,
                                        oip::ModelConfigResponse* response) override;

 private:
  AttentionService* const attention_;
  const ServingState* const state_;
  const std::string version_;
};

}  // namespace hbsa::server

#endif  // HBSA_SERVER_OIP_SERVICE_H_
