// golden_cuda_test.cc: every golden case through hbsa::Run(kCuda) on every kernel that can run it
// on this device (the kAuto choice first, then the portable fallback: CudaKernelsFor), with and
// without LSE, dense and compact masks, compared by golden::Compare (SEMANTICS.md tolerances).
// Prints one line per (case, kernel) with the measured max errors (saved from scripts/gpu/ runs
// into docs/evidence/).
#include <cstdio>

#include "cuda_test_util.h"
#include "gtest/gtest.h"
#include "hbsa/golden.h"

namespace hbsa::testing {
namespace {

TEST(GoldenCuda, EveryCasePassesOnEveryKernel) {
  const std::vector<std::string> dirs = golden::ListCaseDirs(golden::DefaultGoldenRoot());
  ASSERT_FALSE(dirs.empty()) << "no golden cases under " << golden::DefaultGoldenRoot();
  for (const std::string& dir : dirs) {
    absl::StatusOr<golden::Case> c = golden::LoadCase(dir);
    ASSERT_TRUE(c.ok()) << c.status();
    const std::vector<CudaKernel> kernels = CudaKernelsFor(*c);
    ASSERT_FALSE(kernels.empty()) << c->name << ": no kernel can run it";
    for (CudaKernel kernel : kernels) {
      const std::string kname(CudaKernelName(kernel));
      for (bool compact : {false, true}) {
        for (bool with_lse : {true, false}) {
          CudaResult r = RunCudaOn(*c, with_lse, compact, kernel);
          ASSERT_TRUE(r.status.ok()) << c->name << " " << kname << ": " << r.status;
          const golden::Comparison cmp =
              golden::Compare(*c, c->dtype, r.out.data(), with_lse ? r.lse.data() : nullptr);
          EXPECT_TRUE(cmp.pass()) << c->name << " " << kname << (compact ? " compact" : " dense")
                                  << ": " << cmp.first_failure;
          if (with_lse) EXPECT_TRUE(cmp.lse_checked) << c->name;
          if (with_lse && !compact) {
            std::printf("GOLDEN %-28s %s d=%d kernel=%-9s max_err_out=%.3g max_err_lse=%.3g %s\n",
                        c->name.c_str(), std::string(DTypeName(c->dtype)).c_str(), c->d,
                        kname.c_str(), cmp.max_abs_err_out, cmp.max_abs_err_lse,
                        cmp.pass() ? "PASS" : "FAIL");
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace hbsa::testing
