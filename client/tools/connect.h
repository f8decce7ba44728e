// connect.h: the connection flags every command of `hbsa` and `hbsa-bench` takes (TLS, mutual
// TLS, bearer token) and their translation into hbsa::client::ChannelOptions.
#ifndef HBSA_CLIENT_TOOLS_CONNECT_H_
#define HBSA_CLIENT_TOOLS_CONNECT_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "flags.h"
#include "hbsa/client.h"

namespace hbsa::tools {

// Flags taking a value, and boolean flags, to add to a command's Flags::Parse sets.
const std::set<std::string>& ConnectValueFlags();
const std::set<std::string>& ConnectBoolFlags();

// `set` plus the connection flags of `extra` (for Flags::Parse).
std::set<std::string> With(std::set<std::string> set, const std::set<std::string>& extra);

// The --help paragraph describing the connection flags.
extern const char kConnectHelp[];

// Channel options from the flags (files read here). INVALID_ARGUMENT naming the flag or file.
// The token comes from --token-file, else the HBSA_TOKEN environment variable.
absl::StatusOr<client::ChannelOptions> ConnectOptions(const Flags& flags);

}  // namespace hbsa::tools

#endif  // HBSA_CLIENT_TOOLS_CONNECT_H_
