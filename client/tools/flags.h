// flags.h: the small command-line parser shared by `hbsa` and `hbsa-bench`.
//
// Accepts "--name value", "--name=value" and, for flags declared boolean, a bare "--name"
// (or "--name=true|false"); "-h" means "--help" where "help" is declared. Every flag must be
// declared: an unknown or repeated flag, or a missing value, is an INVALID_ARGUMENT naming it,
// so a typo never silently does nothing.
#ifndef HBSA_CLIENT_TOOLS_FLAGS_H_
#define HBSA_CLIENT_TOOLS_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace hbsa::tools {

class Flags {
 public:
  // Parses argv[first, argc). `value_flags` take a value, `bool_flags` do not.
  static absl::StatusOr<Flags> Parse(int argc, char** argv, int first,
                                     const std::set<std::string>& value_flags,
                                     const std::set<std::string>& bool_flags);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& def = "") const;
  bool GetBool(const std::string& name) const;
  // Typed getters: the default when absent, INVALID_ARGUMENT naming the flag when malformed.
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t def) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double def) const;
  absl::StatusOr<std::optional<double>> GetOptionalDouble(const std::string& name) const;
  // Comma-separated integers ("1,2,4,8").
  absl::StatusOr<std::vector<int64_t>> GetIntList(const std::string& name,
                                                  std::vector<int64_t> def) const;

 private:
  std::map<std::string, std::string> values_;
};

// The server address of a client command: --target when given, else the environment variable
// HBSA_TARGET (the one the Python package reads); "" when neither is set.
std::string TargetFlagOrEnv(const Flags& f);

}  // namespace hbsa::tools

#endif  // HBSA_CLIENT_TOOLS_FLAGS_H_
