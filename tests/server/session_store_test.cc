// tests/server/session_store_test.cc: the page pool and the session store without a server:
// allocation and free (all or nothing), reuse of scattered free pages (no external
// fragmentation), page tables that read back exactly what was appended, reservations,
// admission refusals that change nothing, TTL and LRU eviction on a test clock, and the
// NOT_FOUND messages of gone sessions.
#include "session_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "page_pool.h"

namespace hbsa::server {
namespace {

using std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

TEST(PagePool, AllocatesAllOrNothingAndFrees) {
  PagePool pool(10 * 256 + 100, 256);  // the remainder is not a page
  EXPECT_EQ(pool.total_pages(), 10);
  EXPECT_EQ(pool.free_pages(), 10);
  std::vector<int32_t> a;
  ASSERT_TRUE(pool.Allocate(7, &a));
  EXPECT_EQ(a.size(), 7u);
  EXPECT_EQ(pool.free_pages(), 3);
  std::vector<int32_t> b;
  EXPECT_FALSE(pool.Allocate(4, &b));  // only 3 free: refused, nothing taken
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(pool.free_pages(), 3);
  ASSERT_TRUE(pool.Allocate(3, &b));
  EXPECT_EQ(pool.free_pages(), 0);
  std::set<int32_t> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 10u);  // distinct pages
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 9);
  pool.Free(a);
  EXPECT_EQ(pool.free_pages(), 7);
  EXPECT_EQ(pool.used_pages(), 3);
}

TEST(PagePool, ScatteredFreePagesServeAnyRequest) {
  PagePool pool(16 * 64, 64);
  std::vector<int32_t> pages;
  ASSERT_TRUE(pool.Allocate(16, &pages));
  for (int32_t p : pages) std::memset(pool.data(p), p, 64);
  // Free every other page: the free pages are scattered over the slab.
  std::vector<int32_t> odd, even;
  for (int32_t p : pages) (p % 2 ? odd : even).push_back(p);
  pool.Free(odd);
  std::vector<int32_t> again;
  ASSERT_TRUE(pool.Allocate(8, &again));  // 8 non-adjacent pages serve a request for 8
  EXPECT_EQ(std::set<int32_t>(again.begin(), again.end()),
            std::set<int32_t>(odd.begin(), odd.end()));
  for (int32_t p : even) EXPECT_EQ(pool.data(p)[63], static_cast<char>(p));  // untouched
}

// fp32, Hk = 2, D = 4: one token's K (or V) is 32 bytes; 256-byte pages hold 4 tokens.
v1::OpenSessionRequest Shape(int64_t capacity = 0, double ttl = 0) {
  v1::OpenSessionRequest r;
  r.set_dtype(v1::DTYPE_FLOAT32);
  r.set_num_heads_k(2);
  r.set_head_dim(4);
  r.set_capacity_tokens(capacity);
  r.set_ttl_seconds(ttl);
  return r;
}
constexpr int kRowFloats = 2 * 4;

// Rows whose K element e of row r (of sequence s) is 1000 * s + 10 * r + e (V is its negative).
v1::SessionRows Rows(const std::vector<std::string>& ids, const std::vector<int>& counts,
                     const std::vector<int>& first_rows) {
  v1::SessionRows rows;
  std::vector<float> k, v;
  rows.add_cu_seqlens(0);
  for (size_t i = 0; i < ids.size(); ++i) {
    rows.add_sequence_ids(ids[i]);
    for (int r = 0; r < counts[i]; ++r) {
      for (int e = 0; e < kRowFloats; ++e) {
        const float x = 1000.0f * (ids[i][0] - 'a') + 10.0f * (first_rows[i] + r) + e;
        k.push_back(x);
        v.push_back(-x);
      }
    }
    rows.add_cu_seqlens(rows.cu_seqlens(static_cast<int>(i)) + counts[i]);
  }
  for (auto [t, data] : {std::pair{rows.mutable_k(), &k}, std::pair{rows.mutable_v(), &v}}) {
    t->set_dtype(v1::DTYPE_FLOAT32);
    t->add_shape(static_cast<int64_t>(data->size() / kRowFloats));
    t->add_shape(2);
    t->add_shape(4);
    t->set_data(
        std::string(reinterpret_cast<const char*>(data->data()), data->size() * sizeof(float)));
  }
  return rows;
}

struct FakeClock {
  TimePoint t = TimePoint() + std::chrono::hours(1);
  std::function<TimePoint()> fn() {
    return [this] { return t; };
  }
};

SessionStoreOptions Options(int pages, FakeClock* clock, bool lru = true) {
  SessionStoreOptions o;
  o.memory_bytes_per_device = int64_t{pages} * 256;
  o.page_bytes = 256;
  o.default_ttl_seconds = 10;
  o.evict_lru = lru;
  o.now = clock->fn();
  return o;
}

// The packed K/V the store hands to AttendSession's prepare step.
std::vector<float> Gathered(SessionStore* store, const std::string& id,
                            const std::vector<std::string>& seqs, std::vector<int64_t>* lengths,
                            const v1::SessionRows& append = {}) {
  std::vector<float> k;
  absl::StatusOr<std::vector<int64_t>> l =
      store->Attend(id, seqs, append, [&](const ResidentView& view) {
        const int64_t total = std::accumulate(view.lengths.begin(), view.lengths.end(), int64_t{0});
        k.assign(2 * total * kRowFloats, 0.0f);
        view.gather(reinterpret_cast<char*>(k.data()),
                    reinterpret_cast<char*>(k.data() + total * kRowFloats));
        return absl::OkStatus();
      });
  EXPECT_TRUE(l.ok()) << l.status();
  if (l.ok()) *lengths = *l;
  return k;
}

TEST(SessionStore, PageTablesReadBackWhatWasAppended) {
  FakeClock clock;
  SessionStore store(Options(64, &clock), nullptr);
  absl::StatusOr<OpenedSession> s = store.Open(Shape());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->page_tokens, 4);
  EXPECT_EQ(s->page_bytes, 256);
  // Interleaved appends to two sequences, so their pages alternate in the slab.
  ASSERT_TRUE(store.Append(s->id, Rows({"a", "b"}, {3, 5}, {0, 0})).ok());
  ASSERT_TRUE(store.Append(s->id, Rows({"b"}, {6}, {5})).ok());
  absl::StatusOr<std::vector<int64_t>> l = store.Append(s->id, Rows({"a"}, {7}, {3}));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, std::vector<int64_t>({10}));
  EXPECT_EQ(store.free_pages(0), 64 - 3 - 3);  // a: 10 rows = 3 pages; b: 11 rows = 3 pages
  std::vector<int64_t> lengths;
  // Attend on [b, a] with 2 more rows appended to a in the same call.
  std::vector<float> kv = Gathered(&store, s->id, {"b", "a"}, &lengths, Rows({"a"}, {2}, {10}));
  EXPECT_EQ(lengths, std::vector<int64_t>({11, 12}));
  const int64_t total = 23;
  for (int64_t row = 0; row < total; ++row) {
    const bool is_b = row < 11;
    const int local = static_cast<int>(is_b ? row : row - 11);
    for (int e = 0; e < kRowFloats; ++e) {
      const float want = 1000.0f * (is_b ? 1 : 0) + 10.0f * local + e;
      ASSERT_EQ(kv[row * kRowFloats + e], want) << "K row " << row << " element " << e;
      ASSERT_EQ(kv[(total + row) * kRowFloats + e], -want) << "V row " << row;
    }
  }
  // The append was committed: a holds 12 rows now.
  std::vector<float> again = Gathered(&store, s->id, {"a"}, &lengths);
  EXPECT_EQ(lengths, std::vector<int64_t>({12}));
}

TEST(SessionStore, RefusalsChangeNothing) {
  FakeClock clock;
  SessionStore store(Options(4, &clock, /*lru=*/false), nullptr);
  absl::StatusOr<OpenedSession> s = store.Open(Shape());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(store.Append(s->id, Rows({"a"}, {12}, {0})).ok());  // 3 of 4 pages
  // 8 more rows need 2 pages; 1 is free: refused with the need and the budget.
  absl::StatusOr<std::vector<int64_t>> l = store.Append(s->id, Rows({"a"}, {8}, {12}));
  ASSERT_EQ(l.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string msg(l.status().message());
  EXPECT_NE(msg.find("needs 2 pages"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 of 4 pages free"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--session-memory-bytes"), std::string::npos) << msg;
  EXPECT_EQ(store.free_pages(0), 1);
  // A prepare step that fails (the call's validation) commits no append either.
  l = store.Attend(s->id, {"a"}, Rows({"a"}, {1}, {12}),
                   [](const ResidentView&) { return absl::InvalidArgumentError("q.shape: no"); });
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<int64_t> lengths;
  Gathered(&store, s->id, {"a"}, &lengths);
  EXPECT_EQ(lengths, std::vector<int64_t>({12}));
  // Rows that do not match the session's shape name the field.
  v1::SessionRows bad = Rows({"a"}, {1}, {0});
  bad.mutable_k()->set_shape(1, 3);
  l = store.Append(s->id, bad);
  ASSERT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(
      std::string(l.status().message()).find("rows.k.shape must be [total, Hk, D] = [total, 2, 4]"),
      std::string::npos)
      << l.status();
  // A sequence the session does not hold.
  l = store.Attend(s->id, {"zz"}, {}, [](const ResidentView&) { return absl::OkStatus(); });
  EXPECT_EQ(l.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(l.status().message()).find("sequence_ids[0] (\"zz\") is not in session"),
            std::string::npos);
}

TEST(SessionStore, CapacityReservesPagesAndBoundsTheSession) {
  FakeClock clock;
  SessionStore store(Options(8, &clock, /*lru=*/false), nullptr);
  absl::StatusOr<OpenedSession> s = store.Open(Shape(/*capacity=*/10));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->reserved_tokens, 12);  // 3 pages
  EXPECT_EQ(store.free_pages(0), 5);
  ASSERT_TRUE(store.Append(s->id, Rows({"a"}, {12}, {0})).ok());
  EXPECT_EQ(store.free_pages(0), 5);  // from the reservation
  absl::StatusOr<std::vector<int64_t>> l = store.Append(s->id, Rows({"a"}, {1}, {12}));
  ASSERT_EQ(l.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(l.status().message()).find("reserved pages left"), std::string::npos);
  // More than the pool: refused at open, before anything is taken.
  absl::StatusOr<OpenedSession> big = store.Open(Shape(/*capacity=*/100));
  ASSERT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(big.status().message()).find("capacity_tokens (100) needs 25 pages"),
            std::string::npos)
      << big.status();
  EXPECT_EQ(store.free_pages(0), 5);
  absl::StatusOr<int64_t> freed = store.Close(s->id);
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(*freed, 3 * 256);
  EXPECT_EQ(store.free_pages(0), 8);  // close frees at once
}

TEST(SessionStore, TtlEvictionAndGoneMessages) {
  FakeClock clock;
  SessionStore store(Options(16, &clock), nullptr);
  absl::StatusOr<OpenedSession> a = store.Open(Shape(0, /*ttl=*/2));
  absl::StatusOr<OpenedSession> b = store.Open(Shape(0, /*ttl=*/5));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ttl_seconds, 2);
  ASSERT_TRUE(store.Append(a->id, Rows({"a"}, {5}, {0})).ok());
  clock.t += milliseconds(1500);
  ASSERT_TRUE(store.Append(a->id, Rows({"a"}, {1}, {5})).ok());  // renews a
  clock.t += milliseconds(1500);
  ASSERT_TRUE(store.Append(a->id, Rows({"a"}, {1}, {6})).ok());  // 1.5 s idle < 2 s: alive
  clock.t += milliseconds(2500);                                 // a idle 2.5 s, b idle 5.5 s
  store.EvictExpired();
  EXPECT_EQ(store.open_sessions(), 0);
  EXPECT_EQ(store.free_pages(0), 16);
  absl::StatusOr<std::vector<int64_t>> l = store.Append(a->id, Rows({"a"}, {1}, {7}));
  ASSERT_EQ(l.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(
      std::string(l.status().message()).find("is gone: evicted after being idle past its TTL"),
      std::string::npos)
      << l.status();
  // Closed, another process's id, and an unknown id of this process.
  absl::StatusOr<OpenedSession> c = store.Open(Shape());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(store.Close(c->id).ok());
  EXPECT_NE(std::string(store.Close(c->id).status().message()).find("is gone: it was closed"),
            std::string::npos);
  absl::Status other = store.Append("0123456789abcdef-1", Rows({"a"}, {1}, {0})).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(other.message()).find("opened by another server process"),
            std::string::npos)
      << other;
  absl::Status unknown = store.Append(store.instance() + "-999", Rows({"a"}, {1}, {0})).status();
  EXPECT_NE(std::string(unknown.message()).find("is not known to this server"), std::string::npos)
      << unknown;
  EXPECT_EQ(store.Append("", Rows({"a"}, {1}, {0})).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Ids reach messages and logs: control bytes and spaces are refused, and not echoed.
  absl::Status forged = store.Append("x\nWARN forged", Rows({"a"}, {1}, {0})).status();
  EXPECT_EQ(forged.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(forged.message())
                .find("session_id must be printable ASCII without spaces; byte 1 is 0x0a"),
            std::string::npos)
      << forged;
  EXPECT_EQ(std::string(forged.message()).find("forged"), std::string::npos);
  absl::StatusOr<OpenedSession> d = store.Open(Shape());
  ASSERT_TRUE(d.ok());
  absl::Status spaced = store.Append(d->id, Rows({"a b"}, {1}, {0})).status();
  EXPECT_NE(std::string(spaced.message()).find("rows.sequence_ids[0] must be printable ASCII"),
            std::string::npos)
      << spaced;
}

TEST(SessionStore, LruEvictsTheLeastRecentlyUsedOtherSessions) {
  FakeClock clock;
  SessionStore store(Options(6, &clock), nullptr);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<OpenedSession> s = store.Open(Shape());
    ASSERT_TRUE(s.ok());
    ids.push_back(s->id);
    ASSERT_TRUE(store.Append(s->id, Rows({"a"}, {8}, {0})).ok());  // 2 pages each: pool full
    clock.t += milliseconds(10);
  }
  // Use session 0 again: session 1 is now the least recently used.
  std::vector<int64_t> lengths;
  Gathered(&store, ids[0], {"a"}, &lengths);
  clock.t += milliseconds(10);
  // Session 2 needs 2 more pages: session 1 is evicted, not 0.
  ASSERT_TRUE(store.Append(ids[2], Rows({"a"}, {8}, {8})).ok());
  EXPECT_EQ(store.open_sessions(), 2);
  absl::Status gone = store.Append(ids[1], Rows({"a"}, {1}, {8})).status();
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(gone.message()).find("least recently used"), std::string::npos) << gone;
  EXPECT_TRUE(store.Append(ids[0], Rows({"a"}, {0}, {8})).ok());
  // A need that even evicting every other session cannot meet evicts nothing.
  absl::Status huge = store.Append(ids[2], Rows({"a"}, {40}, {16})).status();
  EXPECT_EQ(huge.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(huge.message()).find("evicting every other session would free only 2"),
            std::string::npos)
      << huge;
  EXPECT_EQ(store.open_sessions(), 2);
}

// Threads stepping their own sessions while another opens, fills and closes sessions until the
// pool is full (its appends then refused: eviction off, so the steppers cannot be evicted):
// every gather reads exactly its own session's rows.
TEST(SessionStore, ConcurrentSessionsReadOnlyTheirOwnRows) {
  SessionStoreOptions o;
  o.memory_bytes_per_device = 64 * 256;
  o.page_bytes = 256;
  o.evict_lru = false;
  SessionStore store(o, nullptr);
  constexpr int kThreads = 4, kSteps = 40;
  std::vector<std::string> ids;
  for (int t = 0; t < kThreads; ++t) {
    absl::StatusOr<OpenedSession> s = store.Open(Shape(/*capacity=*/kSteps + 4));
    ASSERT_TRUE(s.ok());
    ids.push_back(s->id);
  }
  std::vector<std::thread> threads;
  std::vector<int> bad(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Sequence id "a".."d" so that Rows() encodes the thread in every element.
      const std::string seq(1, static_cast<char>('a' + t));
      for (int step = 0; step < kSteps; ++step) {
        std::vector<int64_t> lengths;
        std::vector<float> kv = Gathered(&store, ids[t], {seq}, &lengths, Rows({seq}, {1}, {step}));
        if (lengths != std::vector<int64_t>({step + 1})) ++bad[t];
        for (int r = 0; r <= step; ++r) {
          for (int e = 0; e < kRowFloats; ++e) {
            if (kv[r * kRowFloats + e] != 1000.0f * t + 10.0f * r + e) ++bad[t];
          }
        }
      }
    });
  }
  threads.emplace_back([&] {  // churn: sessions without reservation, filling the rest of the pool
    for (int i = 0; i < 60; ++i) {
      absl::StatusOr<OpenedSession> s = store.Open(Shape());
      if (!s.ok()) continue;
      store.Append(s->id, Rows({"z"}, {9}, {0})).IgnoreError();
      if (i % 2 == 0) store.Close(s->id).IgnoreError();
    }
  });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

TEST(SessionStore, OpenChecksNameTheField) {
  FakeClock clock;
  SessionStore store(Options(4, &clock), nullptr);
  v1::OpenSessionRequest r = Shape();
  r.set_dtype(v1::DTYPE_UNSPECIFIED);
  EXPECT_NE(std::string(store.Open(r).status().message()).find("dtype must be"), std::string::npos);
  r = Shape();
  r.set_num_heads_k(0);
  EXPECT_NE(std::string(store.Open(r).status().message()).find("num_heads_k must be in [1, "),
            std::string::npos);
  r = Shape();
  r.set_head_dim(64);  // 2 x 2 x 64 x 4 = 1024 bytes per token > a 256-byte page
  absl::Status s = store.Open(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("must fit one page (256 bytes, --session-page-bytes)"),
            std::string::npos)
      << s;
  r = Shape();
  r.set_capacity_tokens(-1);
  EXPECT_NE(std::string(store.Open(r).status().message()).find("capacity_tokens must be >= 0"),
            std::string::npos);
}

}  // namespace
}  // namespace hbsa::server
