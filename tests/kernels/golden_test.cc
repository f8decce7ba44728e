// golden_test.cc: every golden case (tests/golden/cases, or $HBSA_GOLDEN_DIR) on the reference
// backend and on the fast CPU backend (each kernel set this CPU runs, 1 and 2 threads), judged
// by golden::Compare under the SEMANTICS.md tolerances, LSE included. Outputs are pre-filled
// with NaN; the max errors are printed per case.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/attention.h"
#include "hbsa/golden.h"
#include "kernels/cpu/cpu_kernels.h"
#include "test_util.h"

namespace hbsa {
namespace {

std::vector<std::string> CaseDirs() { return golden::ListCaseDirs(golden::DefaultGoldenRoot()); }

// The repository's set has 17 cases and ../shared/golden 16; that the repository's folder holds
// exactly the cases of tests/golden/specs.py is checked by golden.regenerate.
TEST(GoldenTest, AtLeastSixteenCasesArePresent) {
  EXPECT_GE(CaseDirs().size(), 16u) << "golden root: " << golden::DefaultGoldenRoot();
}

class GoldenCaseTest : public ::testing::TestWithParam<std::string> {
 protected:
  void Check(Backend backend, const std::string& isa, int threads) {
    absl::StatusOr<golden::Case> c = golden::LoadCase(GetParam());
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_FALSE(c->out.data.empty()) << "case has no out.npy";
    ASSERT_FALSE(c->lse.data.empty()) << "case has no lse.npy";
    std::vector<uint8_t> out;
    std::vector<float> lse;
    AttentionArgs args = c->MakeArgs(&out, &lse);
    // NaN everywhere: fp32 NaN bytes 0x7fc00000; as fp16/bf16 pairs 0x7fc0 is NaN for both.
    for (size_t e = 0; e + 1 < out.size(); e += 2) { out[e] = 0xc0; out[e + 1] = 0x7f; }
    std::fill(lse.begin(), lse.end(), std::numeric_limits<float>::quiet_NaN());
    ASSERT_TRUE(testing::RunWith(backend, args, isa, threads).ok());
    const golden::Comparison r = golden::Compare(*c, c->dtype, out.data(), lse.data());
    std::printf("  %-26s %-9s %-8s threads=%d  max|out err| %.3g  max|lse err| %.3g  %s\n",
                c->name.c_str(), std::string(BackendName(backend)).c_str(),
                isa.empty() ? "-" : isa.c_str(), threads, r.max_abs_err_out, r.max_abs_err_lse,
                r.pass() ? "PASS" : "FAIL");
    EXPECT_TRUE(r.lse_checked);
    EXPECT_TRUE(r.pass()) << r.out_failures << " out and " << r.lse_failures
                          << " lse failures; first: " << r.first_failure;
  }
};

TEST_P(GoldenCaseTest, Reference) { Check(Backend::kReference, "", 1); }

TEST_P(GoldenCaseTest, Cpu) {
  for (const std::string& isa : internal::SupportedCpuIsas()) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(isa + " threads " + std::to_string(threads));
      Check(Backend::kCpu, isa, threads);
    }
  }
}

std::string CaseName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param.substr(info.param.find_last_of('/') + 1);
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenCaseTest, ::testing::ValuesIn(CaseDirs()), CaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenCaseTest);

}  // namespace
}  // namespace hbsa
