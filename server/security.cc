// server/security.cc: TLS credentials and the bearer-token check (see security.h).
#include "security.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace hbsa::server {
namespace {

constexpr absl::string_view kHealthPrefix = "/grpc.health.v1.Health/";
constexpr absl::string_view kBearer = "Bearer ";

absl::StatusOr<std::string> ReadFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read \"", path, "\""));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status CheckPem(absl::string_view flag, const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(flag, path);
  if (!text.ok()) return text.status();
  if (!absl::StrContains(*text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": \"", path, "\" holds no PEM block (-----BEGIN ...)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile("auth-token-file", path);
  if (!text.ok()) return text.status();
  const std::string line = text->substr(0, text->find('\n'));
  std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-token-file: \"", path, "\" has an empty first line"));
  }
  return token;
}

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Length is not secret (it is fixed per deployment); the contents are compared without
  // an early exit.
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

absl::StatusOr<std::shared_ptr<TokenAuth>> TokenAuth::FromConfig(const ServerConfig& config) {
  if (!config.auth_token.empty()) {
    return std::shared_ptr<TokenAuth>(new TokenAuth("", config.auth_token));
  }
  if (config.auth_token_file.empty()) return std::shared_ptr<TokenAuth>();
  absl::StatusOr<std::string> token = ReadToken(config.auth_token_file);
  if (!token.ok()) return token.status();
  return std::shared_ptr<TokenAuth>(new TokenAuth(config.auth_token_file, std::move(*token)));
}

absl::Status TokenAuth::Reload() {
  if (file_.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> token = ReadToken(file_);
  if (!token.ok()) return token.status();
  std::lock_guard<std::mutex> lock(mu_);
  token_ = std::move(*token);
  return absl::OkStatus();
}

grpc::Status TokenAuth::Process(const InputMetadata& md, grpc::AuthContext*,
                                OutputMetadata* consumed, OutputMetadata*) {
  auto path = md.find(":path");
  if (path != md.end() &&
      absl::StartsWith(absl::string_view(path->second.data(), path->second.size()), kHealthPrefix)) {
    return grpc::Status::OK;
  }
  std::string want;
  {
    std::lock_guard<std::mutex> lock(mu_);
    want = token_;
  }
  for (auto [it, end] = md.equal_range("authorization"); it != end; ++it) {
    const absl::string_view v(it->second.data(), it->second.size());
    if (absl::StartsWith(v, kBearer) && ConstantTimeEquals(v.substr(kBearer.size()), want)) {
      consumed->insert({"authorization", std::string(v)});  // handlers never see the token
      return grpc::Status::OK;
    }
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "authorization: a valid \"Bearer <token>\" is required");
}

absl::Status CheckTlsFiles(const ServerConfig& c) {
  if (c.tls_cert_file.empty()) return absl::OkStatus();
  if (auto s = CheckPem("tls-cert-file", c.tls_cert_file); !s.ok()) return s;
  if (auto s = CheckPem("tls-key-file", c.tls_key_file); !s.ok()) return s;
  if (!c.tls_client_ca_file.empty()) {
    if (auto s = CheckPem("tls-client-ca-file", c.tls_client_ca_file); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerConfig& c, std::shared_ptr<TokenAuth> auth) {
  if (c.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  if (absl::Status s = CheckTlsFiles(c); !s.ok()) return s;
  using grpc::experimental::FileWatcherCertificateProvider;
  auto provider = std::make_shared<FileWatcherCertificateProvider>(
      c.tls_key_file, c.tls_cert_file, c.tls_client_ca_file,
      static_cast<unsigned int>(c.tls_reload_seconds));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!c.tls_client_ca_file.empty()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::experimental::TlsServerCredentials(options);
  if (creds == nullptr) return absl::InternalError("TLS server credentials could not be created");
  if (auth != nullptr) creds->SetAuthMetadataProcessor(std::move(auth));
  return creds;
}

}  // namespace hbsa::server
