// tests/kernels/should_stop_test.cc: RunOptions::should_stop, the hook that lets the server
// stop a CPU request whose client cancelled or whose deadline passed.
//
// The CPU and reference backends ask it between work items: a call whose hook says stop at
// once returns CANCELLED after at most one item per thread; one whose hook never says stop
// computes the same answer as without a hook; one that says stop midway returns CANCELLED
// having asked a number of times between 1 and the item count.
#include <atomic>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/attention.h"
#include "test_util.h"

namespace hbsa {
namespace {

using testing::MakeProblem;
using testing::Problem;
using testing::ProblemSpec;

Problem Big() {
  ProblemSpec s;
  s.hq = 4;
  s.hk = 2;
  s.d = 32;
  s.sq = 16;
  s.sk = 16;
  s.lq = {256, 100};
  s.lk = {256, 90};
  s.density = 1.0;
  std::mt19937_64 rng(5);
  return MakeProblem(s, rng);
}

TEST(ShouldStop, StopAtOnceReturnsCancelledOnBothCpuBackends) {
  const Problem p = Big();
  for (Backend b : {Backend::kCpu, Backend::kReference}) {
    SCOPED_TRACE(BackendName(b));
    std::vector<uint8_t> out;
    std::vector<float> lse;
    RunOptions o;
    o.num_threads = 2;
    std::atomic<int> asked{0};
    o.should_stop = [&] {
      asked.fetch_add(1);
      return true;
    };
    const absl::Status s = hbsa::Run(b, p.Args(&out, &lse), o);
    EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
    EXPECT_GE(asked.load(), 1);
    EXPECT_LE(asked.load(), 2);  // one item per thread at most, then the rest are skipped
  }
}

TEST(ShouldStop, NeverStopGivesTheSameAnswerAsNoHook) {
  const Problem p = Big();
  std::vector<uint8_t> out_plain, out_hook;
  std::vector<float> lse_plain, lse_hook;
  RunOptions plain;
  plain.num_threads = 2;
  ASSERT_TRUE(hbsa::Run(Backend::kCpu, p.Args(&out_plain, &lse_plain), plain).ok());
  RunOptions hook = plain;
  std::atomic<int64_t> asked{0};
  hook.should_stop = [&] {
    asked.fetch_add(1);
    return false;
  };
  ASSERT_TRUE(hbsa::Run(Backend::kCpu, p.Args(&out_hook, &lse_hook), hook).ok());
  EXPECT_GT(asked.load(), 10);  // asked per tile, not once
  EXPECT_EQ(out_plain, out_hook);
  EXPECT_EQ(lse_plain, lse_hook);
}

TEST(ShouldStop, StopMidwayReturnsCancelled) {
  const Problem p = Big();
  std::vector<uint8_t> out;
  std::vector<float> lse;
  RunOptions o;
  o.num_threads = 1;
  std::atomic<int> asked{0};
  o.should_stop = [&] { return asked.fetch_add(1) >= 5; };
  const absl::Status s = hbsa::Run(Backend::kCpu, p.Args(&out, &lse), o);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_EQ(asked.load(), 6);  // one thread: five items ran, the sixth question said stop
}

}  // namespace
}  // namespace hbsa
