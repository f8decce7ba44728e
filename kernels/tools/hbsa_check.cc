// hbsa_check.cc: `hbsa-check`, runs one backend on case folders in the golden format
// (tests/golden/README.md) and judges each with golden::Compare, the same comparison the
// golden tests use, under the SEMANTICS.md tolerances.
//
//   hbsa-check [--backend reference|cpu|cuda] [--threads N] [--no-lse] [CASE_DIR...]
//
// Without CASE_DIR it checks every case of the default folder: $HBSA_GOLDEN_DIR, else the
// repository's tests/golden/cases (the path this build was configured with).
//
// Prints one line per case: name, dtype, max |out error|, max |lse error|, PASS or FAIL (with the
// first failing element). Exit status: 0 when every case passes, 1 when any fails or cannot be
// loaded or run, 2 on a usage error. Outputs are pre-filled with NaN, so an element the backend
// does not write fails.
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "hbsa/attention.h"
#include "hbsa/golden.h"

namespace {

constexpr char kUsage[] =
    "usage: hbsa-check [--backend reference|cpu|cuda] [--threads N] [--no-lse] [CASE_DIR...]\n"
    "       hbsa-check --version | --help\n"
    "\n"
    "Runs the chosen backend (default cpu) on each case folder in the golden format (q.npy,\n"
    "k.npy, v.npy, block_mask.npy, out.npy, lse.npy, case.json) and compares the output and the\n"
    "LSE with the expected files under the tolerances of SEMANTICS.md. Without CASE_DIR: every\n"
    "case under $HBSA_GOLDEN_DIR, else under the repository's tests/golden/cases.\n"
    "\n"
    "  --backend B   reference (float64 oracle), cpu (fast CPU backend) or cuda\n"
    "  --threads N   worker threads for the cpu backend (0 = one per hardware thread; default 0)\n"
    "  --no-lse      do not ask for or check the LSE\n"
    "  --help, -h    this text\n"
    "  --version     print the version and exit\n"
    "\n"
    "Exit status: 0 all cases pass; 1 a case fails or cannot be loaded or run; 2 usage error.\n";

// Fills a dtype output buffer with NaN (0x7fc0 pairs are NaN as fp16, bf16 and, four bytes at a
// time, fp32).
void FillNaN(std::vector<uint8_t>* out) {
  for (size_t e = 0; e + 1 < out->size(); e += 2) {
    (*out)[e] = 0xc0;
    (*out)[e + 1] = 0x7f;
  }
}

// Returns true when the case passes.
bool CheckCase(const std::string& dir, hbsa::Backend backend, const hbsa::RunOptions& options,
               bool with_lse) {
  absl::StatusOr<hbsa::golden::Case> c = hbsa::golden::LoadCase(dir);
  if (!c.ok()) {
    std::printf("%-28s LOAD ERROR %s\n", dir.c_str(), std::string(c.status().message()).c_str());
    return false;
  }
  if (c->out.data.empty()) {
    std::printf("%-28s FAIL (no out.npy to compare with)\n", c->name.c_str());
    return false;
  }
  std::vector<uint8_t> out;
  std::vector<float> lse;
  hbsa::AttentionArgs args = c->MakeArgs(&out, with_lse ? &lse : nullptr);
  FillNaN(&out);
  std::fill(lse.begin(), lse.end(), std::numeric_limits<float>::quiet_NaN());
  if (absl::Status s = hbsa::Run(backend, args, options); !s.ok()) {
    std::printf("%-28s RUN ERROR %s\n", c->name.c_str(), s.ToString().c_str());
    return false;
  }
  const hbsa::golden::Comparison r =
      hbsa::golden::Compare(*c, c->dtype, out.data(), with_lse ? lse.data() : nullptr);
  const bool lse_missing = with_lse && !r.lse_checked;
  const bool pass = r.pass() && !lse_missing;
  char lse_err[32] = "-";
  if (r.lse_checked) std::snprintf(lse_err, sizeof(lse_err), "%.3g", r.max_abs_err_lse);
  std::printf("%-28s %-4s  max|out err| %-10.3g max|lse err| %-10s %s", c->name.c_str(),
              std::string(hbsa::DTypeName(c->dtype)).c_str(), r.max_abs_err_out, lse_err,
              pass ? "PASS" : "FAIL");
  if (!r.pass()) {
    std::printf("  (%lld out, %lld lse failures; first: %s)", static_cast<long long>(r.out_failures),
                static_cast<long long>(r.lse_failures), r.first_failure.c_str());
  } else if (lse_missing) {
    std::printf("  (case has no lse.npy; use --no-lse to skip the LSE)");
  }
  std::printf("\n");
  return pass;
}

}  // namespace

int main(int argc, char** argv) {
  hbsa::Backend backend = hbsa::Backend::kCpu;
  hbsa::RunOptions options;
  bool with_lse = true;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("hbsa-check %s\n", HBSA_VERSION);
      return 0;
    }
    if (arg == "--backend" || arg == "--threads") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hbsa-check: %s needs a value\n%s", argv[i], kUsage);
        return 2;
      }
      const std::string_view value = argv[++i];
      if (arg == "--backend") {
        const std::optional<hbsa::Backend> b = hbsa::ParseBackend(value);
        if (!b) {
          std::fprintf(stderr, "hbsa-check: unknown backend '%s'\n", argv[i]);
          return 2;
        }
        backend = *b;
      } else if (!absl::SimpleAtoi(std::string(value), &options.num_threads) || options.num_threads < 0) {
        std::fprintf(stderr, "hbsa-check: --threads needs an integer >= 0, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "--no-lse") {
      with_lse = false;
    } else if (arg.size() > 1 && arg[0] == '-') {
      std::fprintf(stderr, "hbsa-check: unknown option '%s'\n%s", argv[i], kUsage);
      return 2;
    } else {
      dirs.emplace_back(arg);
    }
  }
  if (dirs.empty()) {
    const std::string root = hbsa::golden::DefaultGoldenRoot();
    dirs = hbsa::golden::ListCaseDirs(root);
    if (dirs.empty()) {
      std::fprintf(stderr, "hbsa-check: no case folder given and none under %s\n%s", root.c_str(),
                   kUsage);
      return 2;
    }
    std::printf("hbsa-check: %zu cases under %s\n", dirs.size(), root.c_str());
  }
  if (!hbsa::BackendCompiled(backend)) {
    std::fprintf(stderr, "hbsa-check: backend %s is not compiled into this build\n",
                 std::string(hbsa::BackendName(backend)).c_str());
    return 1;
  }
  int failed = 0;
  for (const std::string& dir : dirs) failed += CheckCase(dir, backend, options, with_lse) ? 0 : 1;
  std::printf("%d of %zu cases passed on backend %s\n", static_cast<int>(dirs.size()) - failed,
              dirs.size(), std::string(hbsa::BackendName(backend)).c_str());
  return failed == 0 ? 0 : 1;
}
