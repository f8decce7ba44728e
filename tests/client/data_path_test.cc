// tests/client/data_path_test.cc: the zero-copy data path end to end, against a real
// hbsa-server (CPU backend) on loopback.
//
//   AttendInto     every golden case, its tensors sent from the caller's buffers and its
//                  answer written into the caller's out/lse, checked against the golden output
//                  and bit-identical to the message path (Client::Attend).
//   SharedMemory   q/k/v and out/lse in a registered POSIX shared-memory object: the request
//                  carries references only and the server writes the answer there; refusals
//                  (unknown region, wrong size, past the end, overlapping output, unregistered)
//                  name the field and leave the server healthy.
//   Batching       concurrent small requests merged into shared launches (batch_size > 1 seen
//                  in responses and in hbsa_batch_size_requests), every answer still correct.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "hbsa/client.h"
#include "hbsa/golden.h"
#include "metrics_scrape.h"
#include "server_process.h"

namespace hbsa::client {
namespace {

std::vector<golden::Case> AllCases() {
  std::vector<golden::Case> cases;
  for (const std::string& dir : golden::ListCaseDirs(golden::DefaultGoldenRoot())) {
    auto c = golden::LoadCase(dir);
    EXPECT_TRUE(c.ok()) << c.status();
    if (c.ok()) cases.push_back(*std::move(c));
  }
  return cases;
}

TEST(AttendInto, EveryGoldenCaseMatchesAndEqualsTheMessagePath) {
  auto server = testing::ServerProcess::Start(HBSA_SERVER_BIN);
  ASSERT_TRUE(server.ok()) << server.status();
  Client c((*server)->target());
  const auto cases = AllCases();
  ASSERT_GE(cases.size(), 16u);
  for (const golden::Case& gc : cases) {
    for (MaskForm form : {MaskForm::kDense, MaskForm::kCompact}) {
      SCOPED_TRACE(gc.name + " " + std::string(MaskFormName(form)));
      std::vector<uint8_t> out;
      std::vector<float> lse;
      AttentionArgs args = gc.MakeArgs(&out, &lse);
      std::fill(out.begin(), out.end(), 0xff);                 // NaN patterns: unwritten fails
      std::fill(lse.begin(), lse.end(), std::nanf(""));
      RequestOptions ro;
      ro.mask_form = form;
      ro.return_lse = true;
      ro.request_id = gc.name;
      absl::StatusOr<AttendResult> r = c.AttendInto(args, ro);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->request_id, gc.name);
      EXPECT_TRUE(r->out.empty());  // the answer went into the caller's buffer
      EXPECT_GT(r->server_timings.total_seconds(), 0);
      EXPECT_GE(r->server_timings.parse_seconds(), 0);
      EXPECT_EQ(r->server_timings.batch_size(), 1);
      const golden::Comparison cmp = golden::Compare(gc, gc.dtype, out.data(), lse.data());
      EXPECT_TRUE(cmp.pass()) << cmp.first_failure;
      // The message path gives the same bytes.
      absl::StatusOr<AttendResult> m = c.Attend(args, ro);
      ASSERT_TRUE(m.ok()) << m.status();
      ASSERT_EQ(m->out.size(), out.size());
      EXPECT_EQ(std::memcmp(m->out.data(), out.data(), out.size()), 0);
      ASSERT_EQ(m->lse.size(), lse.size());
      for (size_t i = 0; i < lse.size(); ++i) {
        EXPECT_TRUE(m->lse[i] == lse[i] || (std::isinf(m->lse[i]) && std::isinf(lse[i]))) << i;
      }
    }
  }
}

// A POSIX shared-memory object mapped read-write, unlinked at scope end.
struct Shm {
  std::string key;
  char* base = nullptr;
  size_t bytes = 0;
  Shm(const std::string& k, size_t n) : key(k), bytes(n) {
    shm_unlink(key.c_str());
    const int fd = shm_open(key.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(n)), 0);
    base = static_cast<char*>(mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    close(fd);
  }
  ~Shm() {
    munmap(base, bytes);
    shm_unlink(key.c_str());
  }
};

size_t Up(size_t x) { return (x + 4095) / 4096 * 4096; }

TEST(SharedMemory, TensorsAndAnswersThroughARegisteredRegion) {
  auto server = testing::ServerProcess::Start(HBSA_SERVER_BIN);
  ASSERT_TRUE(server.ok()) << server.status();
  Client c((*server)->target());
  const std::vector<golden::Case> cases = AllCases();
  const golden::Case& gc = cases.front();
  std::vector<uint8_t> out;
  std::vector<float> lse;
  AttentionArgs args = gc.MakeArgs(&out, &lse);
  const size_t qo = 0, ko = Up(args.q.bytes), vo = ko + Up(args.k.bytes), oo = vo + Up(args.v.bytes),
               lo = oo + Up(args.out.bytes), total = lo + Up(args.lse.bytes);
  Shm shm("/hbsa_test_" + std::to_string(getpid()), total + 4096);
  std::memcpy(shm.base + qo, args.q.data, args.q.bytes);
  std::memcpy(shm.base + ko, args.k.data, args.k.bytes);
  std::memcpy(shm.base + vo, args.v.data, args.v.bytes);
  std::memset(shm.base + oo, 0xff, total - oo);
  ASSERT_TRUE(c.RegisterSharedMemory("region", shm.key, 0, static_cast<int64_t>(shm.bytes)).ok());
  EXPECT_EQ(c.RegisterSharedMemory("region", shm.key, 0, 16).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(c.RegisterSharedMemory("other", shm.key + "_missing", 0, 16).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.RegisterSharedMemory("other", shm.key, 0, 1 << 30).code(), absl::StatusCode::kInvalidArgument);
  AttentionArgs in_shm = args;
  in_shm.q.data = shm.base + qo;
  in_shm.k.data = shm.base + ko;
  in_shm.v.data = shm.base + vo;
  RequestOptions ro;
  ro.return_lse = true;
  ro.shm.q = ShmRef{"region", static_cast<int64_t>(qo)};
  ro.shm.k = ShmRef{"region", static_cast<int64_t>(ko)};
  ro.shm.v = ShmRef{"region", static_cast<int64_t>(vo)};
  ro.shm.out = ShmRef{"region", static_cast<int64_t>(oo)};
  ro.shm.lse = ShmRef{"region", static_cast<int64_t>(lo)};
  absl::StatusOr<AttendResult> r = c.AttendInto(in_shm, ro);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->request_bytes, 4096);  // references, not tensors
  const golden::Comparison cmp = golden::Compare(gc, gc.dtype, shm.base + oo,
                                                 reinterpret_cast<const float*>(shm.base + lo));
  EXPECT_TRUE(cmp.pass()) << gc.name << ": " << cmp.first_failure;
  EXPECT_TRUE(cmp.lse_checked);

  // Refusals name the field; the server stays healthy.
  auto refused = [&](RequestOptions bad, const std::string& want) {
    absl::StatusOr<AttendResult> x = c.AttendInto(in_shm, bad);
    ASSERT_FALSE(x.ok());
    EXPECT_EQ(x.status().code(), absl::StatusCode::kInvalidArgument) << x.status();
    EXPECT_NE(x.status().message().find(want), std::string::npos) << x.status();
  };
  RequestOptions bad = ro;
  bad.shm.k->region = "nope";
  refused(bad, "k.shm.region \"nope\" is not registered");
  bad = ro;
  bad.shm.v->offset = static_cast<int64_t>(shm.bytes) - 8;
  refused(bad, "v.shm: offset + byte_size");
  bad = ro;
  bad.shm.out->offset = static_cast<int64_t>(ko) + 2;
  refused(bad, "out_shm [");
  ASSERT_TRUE(c.UnregisterSharedMemory("region").ok());
  EXPECT_EQ(c.UnregisterSharedMemory("region").code(), absl::StatusCode::kNotFound);
  refused(ro, "q.shm.region \"region\" is not registered");
  // Still serving bytes requests.
  std::fill(out.begin(), out.end(), 0xff);
  RequestOptions plain;
  plain.return_lse = true;
  r = c.AttendInto(args, plain);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(golden::Compare(gc, gc.dtype, out.data(), lse.data()).pass());
}

TEST(Batching, ConcurrentSmallRequestsShareLaunchesAndStayCorrect) {
  // A long batching delay so that requests arriving together are merged.
  auto server = testing::ServerProcess::Start(
      HBSA_SERVER_BIN, {"--batch-max-delay-us", "200000", "--batch-max-tokens", "100000"});
  ASSERT_TRUE(server.ok()) << server.status();
  Client c((*server)->target());
  const auto cases = AllCases();
  constexpr int kThreads = 12;
  std::vector<int> batch_sizes(kThreads, 0);
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Two different cases alternate: requests of different shapes merge only when compatible.
      const golden::Case& gc = cases[static_cast<size_t>(t % 2) % cases.size()];
      std::vector<uint8_t> out;
      std::vector<float> lse;
      AttentionArgs args = gc.MakeArgs(&out, &lse);
      RequestOptions ro;
      ro.return_lse = true;
      absl::StatusOr<AttendResult> r = c.AttendInto(args, ro);
      if (!r.ok()) {
        failures[static_cast<size_t>(t)] = std::string(r.status().message());
        return;
      }
      batch_sizes[static_cast<size_t>(t)] = r->server_timings.batch_size();
      const golden::Comparison cmp = golden::Compare(gc, gc.dtype, out.data(), lse.data());
      if (!cmp.pass()) failures[static_cast<size_t>(t)] = gc.name + ": " + cmp.first_failure;
    });
  }
  for (auto& th : threads) th.join();
  int merged = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(failures[static_cast<size_t>(t)].empty()) << failures[static_cast<size_t>(t)];
    if (batch_sizes[static_cast<size_t>(t)] > 1) ++merged;
  }
  EXPECT_GE(merged, 2) << "no request shared a launch";
  absl::StatusOr<std::string> metrics = tools::HttpGet((*server)->metrics_url(), std::chrono::milliseconds(5000));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const auto samples = tools::ParsePrometheusText(*metrics);
  EXPECT_EQ(tools::SumSamples(samples, "hbsa_batch_size_requests_count", {}), kThreads);
  EXPECT_GT(tools::SumSamples(samples, "hbsa_batch_size_requests_sum", {}), kThreads);
}

}  // namespace
}  // namespace hbsa::client
