// tests/server/security_test.cc: TLS, mutual TLS, certificate rotation, the bearer token,
// reflection and the health-only port of hbsa-server, on loopback with a real server process and
// real gRPC clients (plain grpc++ credentials here, independent of the hbsa client library,
// whose TLS options tests/client tests). Certificates are made for the test by
// tests/common/make_test_certs.sh (openssl CLI) in a fresh temporary folder.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "server_harness.h"

#ifndef HBSA_TEST_CERTS_SCRIPT
#error "HBSA_TEST_CERTS_SCRIPT must name tests/common/make_test_certs.sh"
#endif

namespace hbsa::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/hbsa-certs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    const std::string cmd = std::string("bash ") + HBSA_TEST_CERTS_SCRIPT + " " + dir_;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() { std::system(("rm -rf " + dir_).c_str()); }

  static std::string Path(const std::string& name) { return dir_ + "/" + name; }

  // TLS channel credentials trusting `ca` ("ca" or "other-ca"), with an optional client
  // certificate ("client" or "other-client") and bearer token.
  static std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& ca,
                                                       const std::string& client = "",
                                                       const std::string& token = "") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile(Path(ca + ".pem"));
    if (!client.empty()) {
      o.pem_cert_chain = ReadFile(Path(client + ".pem"));
      o.pem_private_key = ReadFile(Path(client + ".key"));
    }
    std::shared_ptr<grpc::ChannelCredentials> c = grpc::SslCredentials(o);
    if (!token.empty()) c = grpc::CompositeChannelCredentials(c, grpc::AccessTokenCredentials(token));
    return c;
  }

  static std::vector<std::string> TlsArgs() {
    return {"--tls-cert-file", Path("server.pem"), "--tls-key-file", Path("server.key")};
  }

  // Attend with a small golden case on `channel`; the call status.
  static grpc::Status Attend(const std::shared_ptr<grpc::Channel>& channel) {
    const golden::Case& c = GoldenCase("single_token_decode");
    v1::AttendRequest req = MakeRequest(c, MaskForm::kDense, true, "sec");
    v1::AttendResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
    const grpc::Status s = v1::Attention::NewStub(channel)->Attend(&ctx, req, &resp);
    if (s.ok()) {
      const golden::Comparison cmp = CompareResponse(c, resp);
      EXPECT_TRUE(cmp.pass()) << cmp.first_failure;
    }
    return s;
  }

  static std::shared_ptr<grpc::Channel> Channel(const ServerProcess& server,
                                                std::shared_ptr<grpc::ChannelCredentials> creds) {
    // A channel of its own, so no connection (or its backoff) is shared between attempts.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(server.target(), creds, args);
  }

  static std::string dir_;
};

std::string SecurityTest::dir_;

TEST_F(SecurityTest, TlsServesTrustingClientsAndRefusesPlaintextAndOtherCas) {
  auto server = ServerProcess::Start(TlsArgs(), true, Tls("ca"));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(Attend(Channel(*server, Tls("ca"))).ok());
  // A client that does not trust the server's CA: handshake refused.
  const grpc::Status other = Attend(Channel(*server, Tls("other-ca")));
  EXPECT_EQ(other.error_code(), grpc::StatusCode::UNAVAILABLE) << other.error_message();
  // A plaintext client cannot talk to the TLS port.
  const grpc::Status plain = Attend(Channel(*server, grpc::InsecureChannelCredentials()));
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();
  EXPECT_NE(server->Log().find("TLS"), std::string::npos) << server->Log();
}

TEST_F(SecurityTest, MutualTlsNeedsAClientCertificateFromTheClientCa) {
  std::vector<std::string> args = TlsArgs();
  args.insert(args.end(), {"--tls-client-ca-file", Path("ca.pem")});
  auto server = ServerProcess::Start(args, true, Tls("ca", "client"));
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(Attend(Channel(*server, Tls("ca", "client"))).ok());
  const grpc::Status no_cert = Attend(Channel(*server, Tls("ca")));
  EXPECT_EQ(no_cert.error_code(), grpc::StatusCode::UNAVAILABLE) << no_cert.error_message();
  const grpc::Status wrong = Attend(Channel(*server, Tls("ca", "other-client")));
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAVAILABLE) << wrong.error_message();
}

TEST_F(SecurityTest, RenewedCertificateIsUsedWithoutRestartAndSighupKeepsServing) {
  // The server's files live in a folder of their own, replaced by rename as an operator would.
  const std::string live = Path("live");
  mkdir(live.c_str(), 0700);
  WriteFile(live + "/tls.crt", ReadFile(Path("server.pem")));
  WriteFile(live + "/tls.key", ReadFile(Path("server.key")));
  auto server = ServerProcess::Start({"--tls-cert-file", live + "/tls.crt", "--tls-key-file",
                                      live + "/tls.key", "--tls-reload-seconds", "1"},
                                     true, Tls("ca"));
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(Attend(Channel(*server, Tls("ca"))).ok());

  WriteFile(live + "/tls.key.new", ReadFile(Path("other-server.key")));
  WriteFile(live + "/tls.crt.new", ReadFile(Path("other-server.pem")));
  ASSERT_EQ(std::rename((live + "/tls.key.new").c_str(), (live + "/tls.key").c_str()), 0);
  ASSERT_EQ(std::rename((live + "/tls.crt.new").c_str(), (live + "/tls.crt").c_str()), 0);
  // Within a few refresh periods new connections see the certificate of the other CA.
  bool renewed = false;
  for (int i = 0; i < 50 && !renewed; ++i) {
    std::this_thread::sleep_for(milliseconds(200));
    renewed = Attend(Channel(*server, Tls("other-ca"))).ok();
  }
  EXPECT_TRUE(renewed) << server->Log();
  EXPECT_EQ(Attend(Channel(*server, Tls("ca"))).error_code(), grpc::StatusCode::UNAVAILABLE);

  // SIGHUP does not stop the server (its default action would), it checks the files.
  ASSERT_EQ(kill(server->pid(), SIGHUP), 0);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(server->Wait(milliseconds(10)).has_value()) << server->Log();
  EXPECT_TRUE(Attend(Channel(*server, Tls("other-ca"))).ok());
  EXPECT_NE(server->Log().find("SIGHUP: TLS files readable"), std::string::npos) << server->Log();
}

TEST_F(SecurityTest, BearerTokenGuardsEveryMethodButHealthAndIsReloadedOnSighup) {
  const std::string token_file = Path("token");
  WriteFile(token_file, "s3cret-token-1\n");
  std::vector<std::string> args = TlsArgs();
  args.insert(args.end(), {"--auth-token-file", token_file});
  auto server = ServerProcess::Start(args, true, Tls("ca"));  // health needs no token
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CheckHealth(Channel(*server, Tls("ca")), ""), Health::kServing);

  const grpc::Status none = Attend(Channel(*server, Tls("ca")));
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED) << none.error_message();
  const grpc::Status wrong = Attend(Channel(*server, Tls("ca", "", "s3cret-token-2")));
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED) << wrong.error_message();
  const grpc::Status prefix = Attend(Channel(*server, Tls("ca", "", "s3cret-token-")));
  EXPECT_EQ(prefix.error_code(), grpc::StatusCode::UNAUTHENTICATED) << prefix.error_message();
  EXPECT_TRUE(Attend(Channel(*server, Tls("ca", "", "s3cret-token-1"))).ok());
  {
    v1::Capabilities caps;
    grpc::ClientContext ctx;
    const grpc::Status s = v1::Attention::NewStub(Channel(*server, Tls("ca")))
                               ->GetCapabilities(&ctx, v1::GetCapabilitiesRequest(), &caps);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  }

  WriteFile(token_file, "s3cret-token-2\n");
  ASSERT_EQ(kill(server->pid(), SIGHUP), 0);
  bool rotated = false;
  for (int i = 0; i < 50 && !rotated; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    rotated = Attend(Channel(*server, Tls("ca", "", "s3cret-token-2"))).ok();
  }
  EXPECT_TRUE(rotated) << server->Log();
  EXPECT_EQ(Attend(Channel(*server, Tls("ca", "", "s3cret-token-1"))).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// grpc.reflection.v1alpha ServerReflectionInfo with one list_services request; the status and
// the raw response.
struct ReflectionResult {
  grpc::Status status;
  std::string response;
};

ReflectionResult ListServices(const std::shared_ptr<grpc::Channel>& channel) {
  class Call final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Call(const std::shared_ptr<grpc::Channel>& channel) : stub_(channel) {
      const std::string wire("\x3a\x00", 2);  // ServerReflectionRequest { list_services: "" }
      grpc::Slice slice(wire);
      request_ = grpc::ByteBuffer(&slice, 1);
      ctx_.set_deadline(std::chrono::system_clock::now() + seconds(10));
      stub_.PrepareBidiStreamingCall(
          &ctx_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
          grpc::StubOptions(), this);
      StartWrite(&request_);
      StartRead(&response_);
      StartCall();
    }
    void OnWriteDone(bool) override { StartWritesDone(); }
    void OnReadDone(bool ok) override {
      if (!ok) return;
      std::vector<grpc::Slice> slices;
      response_.Dump(&slices);
      for (const auto& s : slices) result_.response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    void OnDone(const grpc::Status& s) override {
      result_.status = s;
      done_.set_value(result_);
    }
    ReflectionResult Wait() { return done_.get_future().get(); }

   private:
    grpc::GenericStub stub_;
    grpc::ClientContext ctx_;
    grpc::ByteBuffer request_, response_;
    ReflectionResult result_;
    std::promise<ReflectionResult> done_;
  };
  Call call(channel);
  return call.Wait();
}

TEST_F(SecurityTest, ReflectionIsOffByDefaultAndBehindTheTokenWhenOn) {
  {
    auto server = ServerProcess::Start({});
    ASSERT_NE(server, nullptr);
    const ReflectionResult r = ListServices(server->channel());
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << r.status.error_message();
  }
  {
    auto server = ServerProcess::Start({"--reflection", "on"});
    ASSERT_NE(server, nullptr);
    const ReflectionResult r = ListServices(server->channel());
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_NE(r.response.find("hbsa.v1.Attention"), std::string::npos);
  }
  {
    const std::string token_file = Path("token-reflection");
    WriteFile(token_file, "reflect-token\n");
    std::vector<std::string> args = TlsArgs();
    args.insert(args.end(), {"--reflection", "on", "--auth-token-file", token_file});
    auto server = ServerProcess::Start(args, true, Tls("ca"));
    ASSERT_NE(server, nullptr);
    EXPECT_EQ(ListServices(Channel(*server, Tls("ca"))).status.error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(ListServices(Channel(*server, Tls("ca", "", "reflect-token"))).status.ok());
  }
}

TEST_F(SecurityTest, HealthOnlyPortIsPlaintextAndServesNothingElse) {
  const int health_port = FreePort();
  const std::string health = "127.0.0.1:" + std::to_string(health_port);
  std::vector<std::string> args = TlsArgs();
  args.insert(args.end(), {"--health-listen", health});
  auto server = ServerProcess::Start(args, true, Tls("ca"));
  ASSERT_NE(server, nullptr);
  auto plain = grpc::CreateChannel(health, grpc::InsecureChannelCredentials());
  EXPECT_EQ(CheckHealth(plain, ""), Health::kServing);
  EXPECT_EQ(CheckHealth(plain, "hbsa.v1.Attention"), Health::kServing);
  const grpc::Status s = Attend(plain);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  EXPECT_EQ(ListServices(plain).status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // Draining turns it NOT_SERVING with the main port.
  kill(server->pid(), SIGTERM);
  bool not_serving = false;
  for (int i = 0; i < 100 && !not_serving; ++i) {
    const Health h = CheckHealth(plain, "");
    not_serving = h == Health::kNotServing || h == Health::kUnavailable;
    if (!not_serving) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(not_serving);
  EXPECT_EQ(server->Wait(seconds(20)), 0);
}

TEST_F(SecurityTest, BadSecuritySettingsStopTheStartNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {{"--tls-cert-file", Path("nope.pem"), "--tls-key-file", Path("server.key")}, "--tls-cert-file"},
      {{"--tls-cert-file", Path("server.pem"), "--tls-key-file", Path("ca.srl-missing")}, "--tls-key-file"},
      {{"--tls-cert-file", Path("server.pem")}, "--tls-key-file"},
      {{"--tls-cert-file", Path("server.pem"), "--tls-key-file", Path("server.key"),
        "--tls-client-ca-file", Path("token-none")}, "--tls-client-ca-file"},
      {{"--auth-token-file", Path("token")}, "needs TLS"},
      {{"--tls-cert-file", Path("server.pem"), "--tls-key-file", Path("server.key"),
        "--auth-token-file", Path("no-token-file")}, "--auth-token-file"},
  };
  for (const Case& c : cases) {
    auto server = ServerProcess::Start(c.args, /*wait_serving=*/false);
    ASSERT_NE(server, nullptr);
    EXPECT_EQ(server->Wait(seconds(20)), 2) << c.needle << "\n" << server->Log();
    EXPECT_NE(server->Log().find(c.needle), std::string::npos) << server->Log();
  }
}

}  // namespace
}  // namespace hbsa::testing
