// hbsa_main.cc: the `hbsa` command-line client: health, info and attend (attend_cmd.cc).
#include <iostream>
#include <string>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_join.h"
#include "commands.h"
#include "connect.h"
#include "flags.h"
#include "hbsa/client.h"

namespace hbsa::tools {
namespace {

constexpr char kMainHelp[] = R"(hbsa: command-line client of the hbsa attention service.

Usage: hbsa COMMAND [FLAGS]   (hbsa COMMAND --help, or -h, for each)
       hbsa --version | --help

Commands:
  health   grpc.health.v1 Check: prints SERVING or NOT_SERVING; exit 0 only when SERVING
  info     the server's capabilities (backends, devices, head dims, dtypes, limits)
  attend   send one request (golden case folder or raw .npy inputs), check, save, time it

Every command takes --target TARGET; without it, the environment variable HBSA_TARGET is used
(the flag wins). TARGET forms: host:port, dns:///host:port (every address of a headless
Service, round robin), ipv4:10.0.0.1:50051,10.0.0.2:50051 (or a bare comma-separated list).
)";

constexpr char kHealthHelp[] = R"(hbsa health: ask a server whether it is serving (grpc.health.v1 Check).

Usage: hbsa health [--target HOST:PORT] [--service NAME] [--timeout-ms N] [connection flags]
  --target T       server address (default: $HBSA_TARGET; the flag wins)
  --service NAME   "" (default) = the server as a whole; "hbsa.v1.Attention" = the service
  --timeout-ms N   deadline (default 5000)
Prints SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN (or the RPC error).
Exit status: 0 SERVING, 1 anything else, 2 usage error, 3 the call failed.

Example:
  $ hbsa health --target localhost:50051
  SERVING
)";

constexpr char kInfoHelp[] = R"(hbsa info: print the server's capabilities (GetCapabilities).

Usage: hbsa info [--target HOST:PORT] [--json] [--timeout-ms N] [connection flags]
  --target T       server address (default: $HBSA_TARGET; the flag wins)
  --json           print the Capabilities message as JSON instead of text
  --timeout-ms N   deadline (default 10000)
Exit status: 0 ok, 2 usage error, 3 the call failed.
)";

client::CallOptions CallWithTimeout(int64_t ms) {
  client::CallOptions call;
  call.timeout = std::chrono::milliseconds(ms);
  call.retry.max_attempts = 1;  // a probe reports what it sees now
  return call;
}

int RunHealth(int argc, char** argv) {
  auto f = Flags::Parse(argc, argv, 1, With({"target", "service", "timeout-ms"}, ConnectValueFlags()),
                        With({"help"}, ConnectBoolFlags()));
  if (!f.ok()) {
    std::cerr << "hbsa health: " << f.status().message() << "\n";
    return kExitUsage;
  }
  if (f->GetBool("help")) {
    std::cout << kHealthHelp << kConnectHelp;
    return kExitOk;
  }
  auto ms = f->GetInt("timeout-ms", 5000);
  if (!ms.ok()) {
    std::cerr << "hbsa health: " << ms.status().message() << "\n";
    return kExitUsage;
  }
  const std::string target = TargetFlagOrEnv(*f);
  if (target.empty()) {
    std::cerr << "hbsa health: --target (or HBSA_TARGET) is required (see hbsa health --help)\n";
    return kExitUsage;
  }
  absl::StatusOr<client::ChannelOptions> connect = ConnectOptions(*f);
  if (!connect.ok()) {
    std::cerr << "hbsa health: " << connect.status().message() << "\n";
    return kExitUsage;
  }
  client::Client c(target, *connect);
  absl::StatusOr<client::ServingStatus> s = c.CheckHealth(f->Get("service"), CallWithTimeout(*ms));
  if (!s.ok()) {
    std::cerr << "hbsa health: " << absl::StatusCodeToString(s.status().code()) << ": "
              << s.status().message() << "\n";
    return kExitFailed;
  }
  std::cout << client::ServingStatusName(*s) << "\n";
  return *s == client::ServingStatus::kServing ? kExitOk : kExitNegative;
}

void PrintCapabilities(const v1::Capabilities& c) {
  std::cout << "server version:    " << c.server_version() << "\n"
            << "backend:           " << c.backend() << "\n"
            << "compiled backends: " << absl::StrJoin(c.compiled_backends(), ", ") << "\n";
  std::cout << "devices:           " << (c.devices().empty() ? "none (CPU backend)" : "") << "\n";
  for (const v1::Device& d : c.devices()) {
    std::cout << "  [" << d.index() << "] " << d.name() << ", " << d.total_memory_bytes() / (1 << 20)
              << " MiB, compute " << d.compute_capability() << ", " << d.streams() << " streams\n";
  }
  std::cout << "fast head dims:    " << absl::StrJoin(c.fast_head_dims(), ", ") << "\n";
  std::vector<std::string> dtypes;
  for (int d : c.dtypes()) dtypes.push_back(v1::DType_Name(static_cast<v1::DType>(d)));
  std::cout << "dtypes:            " << absl::StrJoin(dtypes, ", ") << "\n"
            << "mask formats:      " << absl::StrJoin(c.mask_formats(), ", ") << "\n";
  const v1::Limits& l = c.limits();
  std::cout << "limits:            max message " << l.max_message_bytes() << " bytes, queue "
            << l.max_queue_length() << ", memory budget " << l.memory_budget_bytes()
            << " bytes, head dim <= " << l.max_head_dim() << ", heads <= " << l.max_heads()
            << ", block size <= " << l.max_block_size() << "\n";
}

int RunInfo(int argc, char** argv) {
  auto f = Flags::Parse(argc, argv, 1, With({"target", "timeout-ms"}, ConnectValueFlags()),
                        With({"json", "help"}, ConnectBoolFlags()));
  if (!f.ok()) {
    std::cerr << "hbsa info: " << f.status().message() << "\n";
    return kExitUsage;
  }
  if (f->GetBool("help")) {
    std::cout << kInfoHelp << kConnectHelp;
    return kExitOk;
  }
  auto ms = f->GetInt("timeout-ms", 10000);
  if (!ms.ok()) {
    std::cerr << "hbsa info: " << ms.status().message() << "\n";
    return kExitUsage;
  }
  const std::string target = TargetFlagOrEnv(*f);
  if (target.empty()) {
    std::cerr << "hbsa info: --target (or HBSA_TARGET) is required (see hbsa info --help)\n";
    return kExitUsage;
  }
  absl::StatusOr<client::ChannelOptions> connect = ConnectOptions(*f);
  if (!connect.ok()) {
    std::cerr << "hbsa info: " << connect.status().message() << "\n";
    return kExitUsage;
  }
  client::Client c(target, *connect);
  absl::StatusOr<v1::Capabilities> caps = c.GetCapabilities(CallWithTimeout(*ms));
  if (!caps.ok()) {
    std::cerr << "hbsa info: " << absl::StatusCodeToString(caps.status().code()) << ": "
              << caps.status().message() << "\n";
    return kExitFailed;
  }
  if (f->GetBool("json")) {
    std::string json;
    google::protobuf::util::JsonPrintOptions opts;
    opts.add_whitespace = true;
    opts.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(*caps, &json, opts).ok()) {
      std::cerr << "hbsa info: cannot format JSON\n";
      return kExitFailed;
    }
    std::cout << json;
  } else {
    PrintCapabilities(*caps);
  }
  return kExitOk;
}

}  // namespace
}  // namespace hbsa::tools

int main(int argc, char** argv) {
  using namespace hbsa::tools;
  if (argc < 2) {
    std::cerr << kMainHelp;
    return kExitUsage;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kMainHelp;
    return kExitOk;
  }
  if (cmd == "--version") {
    std::cout << "hbsa " << HBSA_VERSION << "\n";
    return kExitOk;
  }
  if (cmd == "health") return RunHealth(argc - 1, argv + 1);
  if (cmd == "info") return RunInfo(argc - 1, argv + 1);
  if (cmd == "attend") return RunAttend(argc - 1, argv + 1);
  std::cerr << "hbsa: unknown command '" << cmd << "'\n\n" << kMainHelp;
  return kExitUsage;
}
