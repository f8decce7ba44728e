// connect.cc: connection flags -> ChannelOptions (see connect.h).
#include "connect.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace hbsa::tools {

const std::set<std::string>& ConnectValueFlags() {
  static const std::set<std::string> kFlags = {"tls-ca", "tls-cert", "tls-key", "tls-server-name",
                                               "token-file"};
  return kFlags;
}

const std::set<std::string>& ConnectBoolFlags() {
  static const std::set<std::string> kFlags = {"tls"};
  return kFlags;
}

std::set<std::string> With(std::set<std::string> set, const std::set<std::string>& extra) {
  set.insert(extra.begin(), extra.end());
  return set;
}

const char kConnectHelp[] = R"(Connection (the server's --tls-* and --auth-token-file flags):
  --tls                 TLS with the system's default CA roots
  --tls-ca FILE         TLS, trusting the CAs in FILE (PEM) for the server's certificate
  --tls-cert FILE       mutual TLS: client certificate chain (PEM), with --tls-key
  --tls-key FILE        its private key (PEM)
  --tls-server-name N   name to check in the server's certificate (default: the target's host)
  --token-file FILE     bearer token (first line of FILE; default: $HBSA_TOKEN); sent only over
                        TLS, so it needs one of the --tls flags
)";

absl::StatusOr<client::ChannelOptions> ConnectOptions(const Flags& f) {
  client::ChannelOptions o;
  const bool tls = f.GetBool("tls") || f.Has("tls-ca") || f.Has("tls-cert") || f.Has("tls-key") ||
                   f.Has("tls-server-name");
  if (tls) {
    absl::StatusOr<client::TlsOptions> t = client::LoadTlsFiles(
        f.Get("tls-ca"), f.Get("tls-cert"), f.Get("tls-key"), f.Get("tls-server-name"));
    if (!t.ok()) return t.status();
    o.tls = std::move(*t);
  }
  if (f.Has("token-file")) {
    absl::StatusOr<std::string> token = client::LoadTokenFile(f.Get("token-file"));
    if (!token.ok()) return token.status();
    o.bearer_token = std::move(*token);
  } else if (const char* env = std::getenv("HBSA_TOKEN"); env != nullptr) {
    o.bearer_token = std::string(absl::StripAsciiWhitespace(env));
  }
  if (!o.bearer_token.empty() && !tls) {
    return absl::InvalidArgumentError(
        "--token-file / HBSA_TOKEN needs TLS (--tls or --tls-ca): tokens are never sent in "
        "plaintext");
  }
  return o;
}

}  // namespace hbsa::tools
