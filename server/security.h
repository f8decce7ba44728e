// server/security.h: transport security and authentication of the gRPC port.
//
// - TLS: the server's certificate chain and key come from files watched by gRPC's
//   FileWatcherCertificateProvider, so a renewed certificate is used by new connections within
//   --tls-reload-seconds without a restart (write the new files, then rename them into place:
//   the provider reads key and certificate together). Mutual TLS adds a client CA file, watched
//   the same way; a client without a certificate, or with one the CA did not sign, fails the
//   handshake (the call sees UNAVAILABLE).
// - Token: TokenAuth is the AuthMetadataProcessor of the TLS credentials. Every call except
//   grpc.health.v1 (probes cannot send tokens, and health says nothing secret) must carry
//   "authorization: Bearer <token>", compared in constant time; others are refused
//   UNAUTHENTICATED before any handler runs. The token is the first line of a file (re-read by
//   Reload, on SIGHUP) or the HBSA_AUTH_TOKEN variable. It needs TLS (config.cc refuses a token
//   without it): processors run only on secure ports, and a plaintext token is no secret.
//
// Files are checked at start-up (readable, non-empty, PEM) so a typo fails the start with the
// flag named, instead of failing every handshake later.
#ifndef HBSA_SERVER_SECURITY_H_
#define HBSA_SERVER_SECURITY_H_

#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config.h"

namespace hbsa::server {

// True when a and b are equal; the time taken depends only on their lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

class TokenAuth final : public grpc::AuthMetadataProcessor {
 public:
  // nullptr when `config` sets no token. INVALID_ARGUMENT naming the flag when the token file
  // cannot be read or is empty.
  static absl::StatusOr<std::shared_ptr<TokenAuth>> FromConfig(const ServerConfig& config);

  // Re-reads the token file (no-op for a token from the environment). On error the old token
  // stays in force.
  absl::Status Reload();

  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  TokenAuth(std::string file, std::string token) : file_(std::move(file)), token_(std::move(token)) {}

  const std::string file_;  // empty when the token came from HBSA_AUTH_TOKEN
  mutable std::mutex mu_;
  std::string token_;
};

// The credentials of the gRPC port: insecure without TLS files; TLS (mutual TLS with a client
// CA) otherwise, with `auth` (may be null) as the metadata processor. INVALID_ARGUMENT naming
// the flag for an unreadable or non-PEM file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerConfig& config, std::shared_ptr<TokenAuth> auth);

// Checks the TLS files again (SIGHUP): OK, or the first problem (named by flag).
absl::Status CheckTlsFiles(const ServerConfig& config);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_SECURITY_H_
