// flags.cc: see flags.h.
#include "flags.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hbsa::tools {

absl::StatusOr<Flags> Flags::Parse(int argc, char** argv, int first,
                                   const std::set<std::string>& value_flags,
                                   const std::set<std::string>& bool_flags) {
  Flags f;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" && bool_flags.count("help")) arg = "--help";
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (f.values_.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " given twice"));
    }
    if (bool_flags.count(name)) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes true or false"));
      }
      f.values_[name] = has_value ? value : "true";
    } else if (value_flags.count(name)) {
      if (!has_value) {
        if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        value = argv[++i];
      }
      f.values_[name] = value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
  }
  return f;
}

std::string Flags::Get(const std::string& name, const std::string& def) const {
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

bool Flags::GetBool(const std::string& name) const { return Get(name, "false") == "true"; }

absl::StatusOr<int64_t> Flags::GetInt(const std::string& name, int64_t def) const {
  if (!Has(name)) return def;
  int64_t v;
  if (!absl::SimpleAtoi(Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer; got '", Get(name), "'"));
  }
  return v;
}

absl::StatusOr<double> Flags::GetDouble(const std::string& name, double def) const {
  if (!Has(name)) return def;
  double v;
  if (!absl::SimpleAtod(Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be a number; got '", Get(name), "'"));
  }
  return v;
}

absl::StatusOr<std::optional<double>> Flags::GetOptionalDouble(const std::string& name) const {
  if (!Has(name)) return std::optional<double>();
  absl::StatusOr<double> v = GetDouble(name, 0);
  if (!v.ok()) return v.status();
  return std::optional<double>(*v);
}

absl::StatusOr<std::vector<int64_t>> Flags::GetIntList(const std::string& name,
                                                       std::vector<int64_t> def) const {
  if (!Has(name)) return def;
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(Get(name), ',', absl::SkipEmpty())) {
    int64_t v;
    if (!absl::SimpleAtoi(part, &v)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " must be a comma-separated list of integers; got '", Get(name), "'"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("--", name, " is empty"));
  return out;
}

std::string TargetFlagOrEnv(const Flags& f) {
  if (f.Has("target")) return f.Get("target");
  const char* env = std::getenv("HBSA_TARGET");
  return env != nullptr ? env : "";
}

}  // namespace hbsa::tools
