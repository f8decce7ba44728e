// bench/service/echo.cc: the raw-bytes echo server and client (see echo.h).
#include "echo.h"

#include <cstring>
#include <future>
#include <mutex>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/str_cat.h"

namespace hbsa::bench {
namespace {

// One zero-filled buffer shared by every call of the process: request payloads (client) and
// answers (server) are slices of it, so neither side builds bytes per call.
const char* SharedBytes(size_t n) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<char[]>> keep;  // grown buffers stay alive for old slices
  static size_t size = 0;
  std::lock_guard<std::mutex> lock(mu);
  if (n > size) {
    keep.emplace_back(new char[n]());
    size = n;
  }
  return keep.back().get();
}

void NoRelease(void*) {}

grpc::Slice StaticSlice(size_t n) {
  return grpc::Slice(const_cast<char*>(SharedBytes(n)), n, NoRelease);
}

class EchoReactor final : public grpc::ServerGenericBidiReactor {
 public:
  EchoReactor() { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "echo: no request"));
      return;
    }
    std::vector<grpc::Slice> slices;
    uint64_t want = 0;
    size_t got = 0;
    if (request_.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        const size_t take = std::min<size_t>(8 - got, s.size());
        std::memcpy(reinterpret_cast<char*>(&want) + got, s.begin(), take);
        got += take;
        if (got == 8) break;
      }
    }
    if (got < 8) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "echo: request shorter than 8 bytes"));
      return;
    }
    grpc::Slice answer = StaticSlice(want);
    response_ = grpc::ByteBuffer(&answer, 1);
    StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer request_, response_;
};

class EchoService final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    if (ctx->method() != kEchoMethod) {
      class Unknown final : public grpc::ServerGenericBidiReactor {
       public:
        Unknown() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "echo: unknown method")); }
        void OnDone() override { delete this; }
      };
      return new Unknown;
    }
    return new EchoReactor;
  }
};

}  // namespace

int RunEchoServer(const std::string& listen, int64_t max_message_bytes) {
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(max_message_bytes));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "echo server: cannot listen on %s\n", listen.c_str());
    return 2;
  }
  server->Wait();
  return 0;
}

EchoClient::EchoClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)), stub_(std::make_unique<grpc::GenericStub>(channel_)) {}

absl::Status EchoClient::Call(int64_t request_bytes, int64_t response_bytes, std::string* sink) {
  const uint64_t want = static_cast<uint64_t>(response_bytes);
  grpc::Slice slices[2] = {grpc::Slice(&want, 8),
                           StaticSlice(static_cast<size_t>(std::max<int64_t>(request_bytes - 8, 0)))};
  grpc::ByteBuffer request(slices, 2);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  std::promise<grpc::Status> done;
  stub_->UnaryCall(&ctx, kEchoMethod, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status s = done.get_future().get();
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("echo: ", s.error_message()));
  std::vector<grpc::Slice> parts;
  if (!response.Dump(&parts).ok()) return absl::InternalError("echo: unreadable response");
  sink->resize(response.Length());
  size_t at = 0;
  for (const grpc::Slice& p : parts) {
    std::memcpy(sink->data() + at, p.begin(), p.size());
    at += p.size();
  }
  if (static_cast<int64_t>(at) != response_bytes) {
    return absl::InternalError(absl::StrCat("echo: got ", at, " bytes, asked for ", response_bytes));
  }
  return absl::OkStatus();
}

}  // namespace hbsa::bench
