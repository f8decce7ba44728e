// tests/client/session_client_test.cc: hbsa::client::Session and SessionRouter against real
// hbsa-server processes on loopback (CPU backend): open / append / attend / close, each attend
// equal bit for bit to Client::Attend of the whole K/V; the destructor closing the session
// (NOT_FOUND "closed" afterwards); moves; the router's consistent hashing (every key on the
// replica it names, both replicas used, only a removed replica's keys move), tested with two
// servers.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "hbsa/client.h"
#include "hbsa/session.h"
#include "server_process.h"

namespace hbsa::testing {
namespace {

using client::SequenceRows;
using client::Session;
using client::SessionAttendArgs;

constexpr int kHq = 4, kHk = 2, kD = 8;

std::vector<float> Random(std::mt19937* rng, size_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& f : x) f = u(*rng);
  return x;
}

client::SessionOptions Shape() {
  return {.dtype = DType::kFloat32, .num_heads_k = kHk, .head_dim = kD};
}

ConstBuffer View(const std::vector<float>& x) { return {x.data(), x.size() * sizeof(float)}; }

// One decode step on sequence "s" of `session` with one new row appended in the call, checked
// against the stateless Attend of k/v (which receive the new row).
void StepAndCheck(Session* session, client::Client* stateless, std::mt19937* rng,
                  std::vector<float>* k, std::vector<float>* v) {
  std::vector<float> nk = Random(rng, kHk * kD), nv = Random(rng, kHk * kD);
  std::vector<float> q = Random(rng, kHq * kD);
  k->insert(k->end(), nk.begin(), nk.end());
  v->insert(v->end(), nv.begin(), nv.end());
  const int32_t length = static_cast<int32_t>(k->size() / (kHk * kD));
  const int64_t nkb = (length + 3) / 4;  // Sk = 4
  std::vector<uint8_t> mask(static_cast<size_t>(kHk * nkb));
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i % 3 != 1) || (i % nkb == size_t(nkb - 1));
  SequenceRows add{{"s"}, View(nk), View(nv), {0, 1}};
  SessionAttendArgs a;
  a.sequence_ids = {"s"};
  a.q = View(q);
  a.num_heads_q = kHq;
  a.cu_seqlens_q = {0, 1};
  a.append = &add;
  a.q_block_size = 1;
  a.k_block_size = 4;
  a.causal = true;
  a.return_lse = true;
  a.dense_mask.shape[0] = kHk;
  a.dense_mask.shape[1] = 1;
  a.dense_mask.shape[2] = nkb;
  a.dense_mask.data = {mask.data(), mask.size()};
  absl::StatusOr<client::SessionAttendResult> got = session->Attend(a);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->sequence_lengths, std::vector<int64_t>({length}));

  const int32_t cu_q[2] = {0, 1}, cu_k[2] = {0, length};
  AttentionArgs full;
  full.dtype = DType::kFloat32;
  full.total_q = 1;
  full.total_k = length;
  full.num_heads_q = kHq;
  full.num_heads_k = kHk;
  full.head_dim = kD;
  full.batch = 1;
  full.cu_seqlens_q = {cu_q, 8};
  full.cu_seqlens_k = {cu_k, 8};
  full.q_block_size = 1;
  full.k_block_size = 4;
  full.causal = true;
  full.dense_mask = a.dense_mask;
  full.q = View(q);
  full.k = View(*k);
  full.v = View(*v);
  absl::StatusOr<client::AttendResult> want = stateless->Attend(full, {.return_lse = true});
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(got->result.out, want->out);
  EXPECT_EQ(got->result.lse, want->lse);
  EXPECT_EQ(got->result.out_shape, std::vector<int64_t>({1, kHq, kD}));
}

// An empty Append naming `id` on `channel`: OK where the session lives, NOT_FOUND elsewhere.
grpc::StatusCode DecodeCode(const std::shared_ptr<grpc::Channel>& channel, const std::string& id,
                            std::string* message) {
  auto stub = v1::Sessions::NewStub(channel);
  v1::AppendRequest r;
  r.set_session_id(id);
  v1::AppendResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Append(&ctx, r, &resp);
  *message = s.error_message();
  return s.error_code();
}

TEST(SessionClient, OpenAppendAttendCloseAndRaii) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(HBSA_SERVER_BIN);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = client::MakeChannel((*server)->target(), {});
  client::Client stateless(channel);
  std::mt19937 rng(9);
  std::string id;
  {
    absl::StatusOr<Session> s = Session::Open(channel, Shape());
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->id();
    std::vector<float> k = Random(&rng, 10 * kHk * kD), v = Random(&rng, 10 * kHk * kD);
    absl::StatusOr<std::vector<int64_t>> l = s->Append({{"s"}, View(k), View(v), {0, 10}});
    ASSERT_TRUE(l.ok()) << l.status();
    EXPECT_EQ(*l, std::vector<int64_t>({10}));
    for (int step = 0; step < 5; ++step) StepAndCheck(&*s, &stateless, &rng, &k, &v);
    // A client-side size check names the field.
    absl::StatusOr<std::vector<int64_t>> bad = s->Append({{"s"}, {k.data(), 12}, View(v), {0, 1}});
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(bad.status().message()).find("rows.k must hold"), std::string::npos);
    // Moving keeps one owner.
    Session moved = std::move(*s);
    EXPECT_FALSE(s->open());
    EXPECT_TRUE(moved.open());
    EXPECT_EQ(moved.id(), id);
  }  // ~Session closed it
  std::string message;
  EXPECT_EQ(DecodeCode(channel, id, &message), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(message.find("is gone: it was closed"), std::string::npos) << message;
}

TEST(SessionRouter, ConsistentHashingOverTwoServers) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> a = ServerProcess::Start(HBSA_SERVER_BIN);
  absl::StatusOr<std::unique_ptr<ServerProcess>> b = ServerProcess::Start(HBSA_SERVER_BIN);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::vector<std::string> addresses = {(*a)->target(), (*b)->target()};
  client::SessionRouter router(addresses);
  std::map<std::string, std::shared_ptr<grpc::Channel>> direct = {
      {addresses[0], client::MakeChannel(addresses[0], {})},
      {addresses[1], client::MakeChannel(addresses[1], {})}};
  std::map<std::string, int> per_address;
  std::mt19937 rng(2);
  for (int i = 0; i < 24; ++i) {
    const std::string key = "conversation-" + std::to_string(i);
    const std::string& home = router.AddressFor(key);
    EXPECT_EQ(router.AddressFor(key), home);  // stable
    absl::StatusOr<Session> s = router.Open(key, Shape());
    ASSERT_TRUE(s.ok()) << s.status();
    std::vector<float> k = Random(&rng, 3 * kHk * kD), v = Random(&rng, 3 * kHk * kD);
    ASSERT_TRUE(s->Append({{"s"}, View(k), View(v), {0, 3}}).ok());
    // The session lives where the router says: the other server does not know it.
    const std::string& other = home == addresses[0] ? addresses[1] : addresses[0];
    std::string message;
    EXPECT_EQ(DecodeCode(direct[other], s->id(), &message), grpc::StatusCode::NOT_FOUND);
    EXPECT_NE(message.find("opened by another server process"), std::string::npos) << message;
    EXPECT_EQ(DecodeCode(direct[home], s->id(), &message), grpc::StatusCode::OK)
        << "the home server knows the session (an empty append): " << message;
    ++per_address[home];
  }
  EXPECT_GT(per_address[addresses[0]], 0);
  EXPECT_GT(per_address[addresses[1]], 0);
}

TEST(SessionRouter, OnlyTheKeysOfARemovedAddressMove) {
  const std::vector<std::string> three = {"10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"};
  client::SessionRouter all(three);
  client::SessionRouter two({three[0], three[2]});
  int moved = 0, on_removed = 0;
  std::map<std::string, int> counts;
  for (int i = 0; i < 3000; ++i) {
    const std::string key = "k" + std::to_string(i);
    const std::string& before = all.AddressFor(key);
    ++counts[before];
    if (before == three[1]) {
      ++on_removed;
      continue;
    }
    moved += two.AddressFor(key) != before;
  }
  EXPECT_EQ(moved, 0);  // keys on the remaining addresses stay
  for (const std::string& a : three) {
    EXPECT_GT(counts[a], 600) << a;  // roughly even (1000 each)
    EXPECT_LT(counts[a], 1400) << a;
  }
  EXPECT_EQ(on_removed, counts[three[1]]);
  // The hash is FNV-1a 64 then fmix64 (the Python client computes the same).
  EXPECT_EQ(client::RouteHash(""), 17280346270528514342ull);
  EXPECT_EQ(client::RouteHash("a"), 0x82a2a958a9bece5bull);
}

}  // namespace
}  // namespace hbsa::testing
