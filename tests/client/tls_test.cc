// tls_test.cc: the C++ client's TLS, mutual TLS and bearer-token options (ChannelOptions::tls,
// LoadTlsFiles, bearer_token) against a real hbsa-server on loopback started with --tls-* and
// --auth-token-file. Certificates come from tests/common/make_test_certs.sh (openssl CLI).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "hbsa/client.h"
#include "hbsa/golden.h"
#include "server_process.h"

#ifndef HBSA_TEST_CERTS_SCRIPT
#error "HBSA_TEST_CERTS_SCRIPT must name tests/common/make_test_certs.sh"
#endif

namespace hbsa::client {
namespace {

class TlsClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/hbsa-client-certs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(std::system((std::string("bash ") + HBSA_TEST_CERTS_SCRIPT + " " + dir_).c_str()), 0);
    std::ofstream(Path("token")) << "client-test-token\n";
    absl::StatusOr<TlsOptions> tls = LoadTlsFiles(Path("ca.pem"), Path("client.pem"), Path("client.key"));
    ASSERT_TRUE(tls.ok()) << tls.status();
    ChannelOptions connect;
    connect.tls = *tls;
    auto s = testing::ServerProcess::Start(
        HBSA_SERVER_BIN,
        {"--tls-cert-file", Path("server.pem"), "--tls-key-file", Path("server.key"),
         "--tls-client-ca-file", Path("ca.pem"), "--auth-token-file", Path("token")},
        connect);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() {
    delete server_;
    std::system(("rm -rf " + dir_).c_str());
  }
  static std::string Path(const std::string& f) { return dir_ + "/" + f; }

  // Options trusting `ca`, presenting `client` ("" = no certificate), with `token`.
  static ChannelOptions Options(const std::string& ca, const std::string& client,
                                const std::string& token) {
    absl::StatusOr<TlsOptions> tls = LoadTlsFiles(
        Path(ca + ".pem"), client.empty() ? "" : Path(client + ".pem"),
        client.empty() ? "" : Path(client + ".key"));
    EXPECT_TRUE(tls.ok()) << tls.status();
    ChannelOptions o;
    o.tls = tls.ok() ? *tls : TlsOptions{};
    o.bearer_token = token;
    o.local_subchannel_pool = true;
    return o;
  }

  static absl::StatusOr<AttendResult> AttendCase(const Client& c) {
    auto gc = golden::LoadCase(golden::ListCaseDirs(golden::DefaultGoldenRoot()).front());
    EXPECT_TRUE(gc.ok()) << gc.status();
    std::vector<uint8_t> out;
    AttentionArgs args = gc->MakeArgs(&out, nullptr);
    RequestOptions ro;
    ro.return_lse = true;
    CallOptions call;
    call.timeout = std::chrono::milliseconds(10000);
    call.retry.max_attempts = 1;
    absl::StatusOr<AttendResult> r = c.Attend(args, ro, call);
    if (r.ok()) {
      const golden::Comparison cmp = golden::Compare(*gc, r->dtype, r->out.data(), r->lse.data());
      EXPECT_TRUE(cmp.pass()) << cmp.first_failure;
    }
    return r;
  }

  static std::string dir_;
  static testing::ServerProcess* server_;
};
std::string TlsClientTest::dir_;
testing::ServerProcess* TlsClientTest::server_ = nullptr;

TEST_F(TlsClientTest, MutualTlsWithTokenComputes) {
  Client c(server_->target(), Options("ca", "client", "client-test-token"));
  absl::StatusOr<AttendResult> r = AttendCase(c);
  ASSERT_TRUE(r.ok()) << r.status();
  // The asynchronous path carries the token too.
  auto gc = golden::LoadCase(golden::ListCaseDirs(golden::DefaultGoldenRoot()).front());
  std::vector<uint8_t> out;
  auto req = std::make_shared<v1::AttendRequest>(*BuildRequest(gc->MakeArgs(&out, nullptr), {}));
  EXPECT_TRUE(c.AttendFuture(req).get().ok());
  EXPECT_TRUE(c.GetCapabilities().ok());
}

TEST_F(TlsClientTest, WithoutTokenUnauthenticatedButHealthAnswers) {
  Client c(server_->target(), Options("ca", "client", ""));
  absl::StatusOr<AttendResult> r = AttendCase(c);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  EXPECT_EQ(*c.CheckHealth(""), ServingStatus::kServing);
  Client wrong(server_->target(), Options("ca", "client", "client-test-token-x"));
  EXPECT_EQ(AttendCase(wrong).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(TlsClientTest, WithoutClientCertificateOrTrustTheHandshakeFails) {
  Client no_cert(server_->target(), Options("ca", "", "client-test-token"));
  EXPECT_EQ(AttendCase(no_cert).status().code(), absl::StatusCode::kUnavailable);
  Client other_ca(server_->target(), Options("other-ca", "client", "client-test-token"));
  EXPECT_EQ(AttendCase(other_ca).status().code(), absl::StatusCode::kUnavailable);
  Client other_cert(server_->target(), Options("ca", "other-client", "client-test-token"));
  EXPECT_EQ(AttendCase(other_cert).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsClientTest, TokenOnAPlaintextChannelIsNeverSent) {
  auto plain = testing::ServerProcess::Start(HBSA_SERVER_BIN);  // a plaintext server
  ASSERT_TRUE(plain.ok()) << plain.status();
  ChannelOptions o;
  o.bearer_token = "client-test-token";
  Client c((*plain)->target(), o);
  absl::StatusOr<AttendResult> r = AttendCase(c);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  EXPECT_NE(r.status().message().find("security level"), std::string::npos) << r.status();
}

TEST_F(TlsClientTest, FileErrorsNameTheFile) {
  EXPECT_NE(LoadTlsFiles(Path("missing.pem"), "", "").status().message().find("missing.pem"),
            std::string::npos);
  EXPECT_FALSE(LoadTlsFiles(Path("ca.pem"), Path("client.pem"), "").ok());
  EXPECT_NE(LoadTlsFiles(Path("token"), "", "").status().message().find("no PEM block"),
            std::string::npos);
  absl::StatusOr<std::string> t = LoadTokenFile(Path("token"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "client-test-token");
  EXPECT_FALSE(LoadTokenFile(Path("nope")).ok());
}

}  // namespace
}  // namespace hbsa::client
