// golden_cuda_test.cc: every golden case through hbsa::Run(kCuda), with and without LSE, dense
// and compact masks, compared by golden::Compare (SEMANTICS.md tolerances). Prints one line per
// case with the measured max errors (saved from scripts/gpu/ runs into docs/evidence/).
#include <cstdio>

#include "cuda_test_util.h"
#include "gtest/gtest.h"
#include "hbsa/golden.h"

namespace hbsa::testing {
namespace {

TEST(GoldenCuda, EveryCasePasses) {
  const std::vector<std::string> dirs = golden::ListCaseDirs(golden::DefaultGoldenRoot());
  ASSERT_FALSE(dirs.empty()) << "no golden cases under " << golden::DefaultGoldenRoot();
  for (const std::string& dir : dirs) {
    absl::StatusOr<golden::Case> c = golden::LoadCase(dir);
    ASSERT_TRUE(c.ok()) << c.status();
    for (bool compact : {false, true}) {
      for (bool with_lse : {true, false}) {
        CudaResult r = RunCudaOn(*c, with_lse, compact);
        ASSERT_TRUE(r.status.ok()) << c->name << ": " << r.status;
        const golden::Comparison cmp =
            golden::Compare(*c, c->dtype, r.out.data(), with_lse ? r.lse.data() : nullptr);
        EXPECT_TRUE(cmp.pass()) << c->name << (compact ? " compact" : " dense") << ": "
                                << cmp.first_failure;
        if (with_lse) EXPECT_TRUE(cmp.lse_checked) << c->name;
        if (with_lse && !compact) {
          std::printf("GOLDEN %-28s %s d=%d max_err_out=%.3g max_err_lse=%.3g %s\n",
                      c->name.c_str(), std::string(DTypeName(c->dtype)).c_str(), c->d,
                      cmp.max_abs_err_out, cmp.max_abs_err_lse, cmp.pass() ? "PASS" : "FAIL");
        }
      }
    }
  }
}

}  // namespace
}  // namespace hbsa::testing
