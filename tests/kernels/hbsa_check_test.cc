// hbsa_check_test.cc: the hbsa-check command as a user runs it (its path comes from CMake as
// HBSA_CHECK_BINARY): exit 0 on an intact copy of a golden case, non-zero once the expected
// out.npy or lse.npy of that copy is changed beyond tolerance, 2 on usage errors.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/golden.h"

namespace hbsa {
namespace {

namespace fs = std::filesystem;

int RunCheck(const std::string& args) {
  const std::string cmd = std::string(HBSA_CHECK_BINARY) + " " + args + " > /dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class HbsaCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::vector<std::string> cases = golden::ListCaseDirs(golden::DefaultGoldenRoot());
    ASSERT_FALSE(cases.empty()) << "no golden cases under " << golden::DefaultGoldenRoot();
    source_ = cases.front();
    dir_ = fs::temp_directory_path() /
           ("hbsa_check_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy(source_, dir_ / "case", fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Adds `delta` to element `index` of the float32 array `file` in the copied case.
  void Perturb(const std::string& file, int64_t index, float delta) {
    const std::string path = (dir_ / "case" / file).string();
    absl::StatusOr<golden::NpyArray> a = golden::LoadNpy(path);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ(a->descr, "<f4");
    ASSERT_LT(index, a->NumElements());
    float* data = reinterpret_cast<float*>(a->data.data());
    data[index] += delta;
    ASSERT_TRUE(golden::SaveNpy(path, a->descr, a->shape, a->data.data(), a->data.size()).ok());
  }
  std::string CaseDir() const { return (dir_ / "case").string(); }

  std::string source_;
  fs::path dir_;
};

TEST_F(HbsaCheckTest, IntactCopyPasses) {
  EXPECT_EQ(RunCheck("--backend cpu " + CaseDir()), 0);
  EXPECT_EQ(RunCheck("--backend reference " + CaseDir()), 0);
}

TEST_F(HbsaCheckTest, CorruptedOutputFails) {
  Perturb("out.npy", 5, 0.5f);
  EXPECT_EQ(RunCheck("--backend cpu " + CaseDir()), 1);
  // One failing case among passing ones still fails the run.
  EXPECT_EQ(RunCheck("--backend cpu " + source_ + " " + CaseDir()), 1);
}

TEST_F(HbsaCheckTest, CorruptedLseFails) {
  // Row 0 may be an empty row (-inf stays -inf), so change a finite entry: the largest index.
  absl::StatusOr<golden::NpyArray> lse = golden::LoadNpy((dir_ / "case" / "lse.npy").string());
  ASSERT_TRUE(lse.ok());
  Perturb("lse.npy", lse->NumElements() - 1, 0.01f);
  EXPECT_EQ(RunCheck("--backend cpu " + CaseDir()), 1);
  EXPECT_EQ(RunCheck("--backend cpu --no-lse " + CaseDir()), 0);
}

TEST_F(HbsaCheckTest, UsageErrors) {
  EXPECT_EQ(RunCheck("--help"), 0);
  EXPECT_EQ(RunCheck("-h"), 0);
  EXPECT_EQ(RunCheck("--version"), 0);
  // No folder: the default root's cases; a root without cases is a usage error.
  EXPECT_EQ(RunCheck("--backend reference"), 0);
  const std::string root = golden::DefaultGoldenRoot();
  ASSERT_EQ(::setenv("HBSA_GOLDEN_DIR", (dir_ / "missing").c_str(), 1), 0);
  EXPECT_EQ(RunCheck(""), 2);
  ASSERT_EQ(::setenv("HBSA_GOLDEN_DIR", root.c_str(), 1), 0);
  EXPECT_EQ(RunCheck("--backend gpu " + CaseDir()), 2);
  EXPECT_EQ(RunCheck("--threads -1 " + CaseDir()), 2);
  EXPECT_EQ(RunCheck("--backend cpu " + (dir_ / "missing").string()), 1);
}

}  // namespace
}  // namespace hbsa
