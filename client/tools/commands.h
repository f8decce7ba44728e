// commands.h: the subcommands of the `hbsa` tool (hbsa_main.cc dispatches to them).
// Each returns the process exit code: 0 success, 1 a negative answer (NOT_SERVING, --check
// mismatch), 2 usage error, 3 the call failed (RPC or I/O error).
#ifndef HBSA_CLIENT_TOOLS_COMMANDS_H_
#define HBSA_CLIENT_TOOLS_COMMANDS_H_

namespace hbsa::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitNegative = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitFailed = 3;

// `hbsa attend ...`; argv[0] is "attend".
int RunAttend(int argc, char** argv);

}  // namespace hbsa::tools

#endif  // HBSA_CLIENT_TOOLS_COMMANDS_H_
