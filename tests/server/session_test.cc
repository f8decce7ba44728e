// tests/server/session_test.cc: hbsa.v1.Sessions end to end on loopback (a real hbsa-server
// child process, CPU backend, the generated stubs).
//
// Every step of a chunked prefill and of a decode run is checked twice: against the stateless
// Attend of the same queries with the whole K/V sent (bit for bit: the same executor computes
// the same packed call) and against the float64 reference computed here (hbsa::Run on
// kReference, SEMANTICS.md's fp32 bar). The model is GQA (Hq = 4, Hk = 2), with different
// query and key block sizes, a block-sparse compact mask over resident positions and the
// bottom-right causal rule, on two sequences with pages of 4 tokens, so every sequence spans
// many pages. Then the failure paths: budget refusal (nothing appended), TTL eviction, close,
// server restart, each NOT_FOUND with its reason; and the session metrics.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <cstring>
#include <future>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "hbsa/attention.h"
#include "hbsa/v1/session.grpc.pb.h"
#include "server_harness.h"

namespace hbsa::testing {
namespace {

constexpr int kHq = 4, kHk = 2, kD = 16, kSq = 2, kSk = 3;
constexpr int kRow = kHk * kD;  // floats per K (or V) row
// fp32: one token's K + V is 2 * 2 * 16 * 4 = 256 bytes, so 1024-byte pages hold 4 tokens.
const std::vector<std::string> kServerArgs = {"--session-page-bytes", "1024"};

std::vector<float> Random(std::mt19937* rng, size_t n) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& f : x) f = u(*rng);
  return x;
}

v1::Tensor Tensor(const std::vector<float>& data, int64_t rows, int heads) {
  v1::Tensor t;
  t.set_dtype(v1::DTYPE_FLOAT32);
  t.add_shape(rows);
  t.add_shape(heads);
  t.add_shape(kD);
  t.set_data(std::string(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)));
  return t;
}

// The test's block mask over resident positions: query block iq of sequence b may see key
// block jk for KV head hk when (hk + iq + 2 * jk + b) % 3 != 0; the last key block is always
// on, so no decode query is empty.
bool MaskBit(int hk, int b, int64_t iq, int64_t jk, int64_t nk_b) {
  return jk == nk_b - 1 || (hk + iq + 2 * jk + b) % 3 != 0;
}

// The compact mask for query lengths lq and key lengths lk.
void FillCompactMask(const std::vector<int64_t>& lq, const std::vector<int64_t>& lk,
                     v1::CompactBlockMask* m, std::vector<int64_t>* row_offsets,
                     std::vector<int32_t>* col_indices) {
  std::vector<int64_t> kbase = {0};
  for (int64_t l : lk) kbase.push_back(kbase.back() + (l + kSk - 1) / kSk);
  row_offsets->assign(1, 0);
  col_indices->clear();
  for (int hk = 0; hk < kHk; ++hk) {
    for (size_t b = 0; b < lq.size(); ++b) {
      const int64_t nq = (lq[b] + kSq - 1) / kSq, nk = (lk[b] + kSk - 1) / kSk;
      for (int64_t iq = 0; iq < nq; ++iq) {
        for (int64_t jk = 0; jk < nk; ++jk) {
          if (MaskBit(hk, static_cast<int>(b), iq, jk, nk))
            col_indices->push_back(static_cast<int32_t>(kbase[b] + jk));
        }
        row_offsets->push_back(static_cast<int64_t>(col_indices->size()));
      }
    }
  }
  for (int64_t x : *row_offsets) m->add_row_offsets(x);
  for (int32_t x : *col_indices) m->add_col_indices(x);
}

// A client-side copy of everything resident, and the checks of one step.
class Model {
 public:
  Model(v1::Sessions::Stub* sessions, v1::Attention::Stub* attention, std::string session)
      : sessions_(sessions), attention_(attention), session_(std::move(session)), rng_(7) {}

  // One call: for each sequence, `kv[b]` new K/V rows (sent in the call's append, or by a
  // separate Append first when `separate_append`) and `q[b]` new queries attending to the whole
  // resident sequence. Checks the result against the stateless Attend and the reference.
  void Step(const std::vector<std::string>& ids, const std::vector<int>& q,
            const std::vector<int>& kv, bool causal, bool separate_append) {
    v1::SessionRows rows;
    std::vector<float> ks, vs;
    rows.add_cu_seqlens(0);
    for (size_t b = 0; b < ids.size(); ++b) {
      std::vector<float> k = Random(&rng_, static_cast<size_t>(kv[b]) * kRow);
      std::vector<float> v = Random(&rng_, static_cast<size_t>(kv[b]) * kRow);
      ks.insert(ks.end(), k.begin(), k.end());
      vs.insert(vs.end(), v.begin(), v.end());
      k_[ids[b]].insert(k_[ids[b]].end(), k.begin(), k.end());
      v_[ids[b]].insert(v_[ids[b]].end(), v.begin(), v.end());
      rows.add_sequence_ids(ids[b]);
      rows.add_cu_seqlens(rows.cu_seqlens(static_cast<int>(b)) + kv[b]);
    }
    const int64_t new_rows = rows.cu_seqlens(static_cast<int>(ids.size()));
    *rows.mutable_k() = Tensor(ks, new_rows, kHk);
    *rows.mutable_v() = Tensor(vs, new_rows, kHk);

    if (separate_append) {
      grpc::ClientContext ctx;
      v1::AppendRequest ar;
      ar.set_session_id(session_);
      *ar.mutable_rows() = rows;
      v1::AppendResponse resp;
      const grpc::Status s = sessions_->Append(&ctx, ar, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
      for (size_t b = 0; b < ids.size(); ++b) {
        EXPECT_EQ(resp.sequence_lengths(static_cast<int>(b)),
                  static_cast<int64_t>(k_[ids[b]].size() / kRow));
      }
    }

    std::vector<int64_t> lq, lk;
    std::vector<int32_t> cu_q = {0}, cu_k = {0};
    std::vector<float> qs, kfull, vfull;
    for (size_t b = 0; b < ids.size(); ++b) {
      lq.push_back(q[b]);
      lk.push_back(static_cast<int64_t>(k_[ids[b]].size() / kRow));
      cu_q.push_back(cu_q.back() + q[b]);
      cu_k.push_back(cu_k.back() + static_cast<int32_t>(lk.back()));
      kfull.insert(kfull.end(), k_[ids[b]].begin(), k_[ids[b]].end());
      vfull.insert(vfull.end(), v_[ids[b]].begin(), v_[ids[b]].end());
    }
    qs = Random(&rng_, static_cast<size_t>(cu_q.back()) * kHq * kD);

    v1::AttendSessionRequest sr;
    sr.set_session_id(session_);
    sr.set_request_id("step");
    for (const std::string& id : ids) sr.add_sequence_ids(id);
    *sr.mutable_q() = Tensor(qs, cu_q.back(), kHq);
    for (int32_t x : cu_q) sr.add_cu_seqlens_q(x);
    if (!separate_append) *sr.mutable_append() = rows;
    sr.set_q_block_size(kSq);
    sr.set_k_block_size(kSk);
    sr.set_causal(causal);
    sr.set_return_lse(true);
    std::vector<int64_t> row_offsets;
    std::vector<int32_t> col_indices;
    FillCompactMask(lq, lk, sr.mutable_compact_mask(), &row_offsets, &col_indices);

    v1::AttendSessionResponse session_resp;
    {
      grpc::ClientContext ctx;
      const grpc::Status s = sessions_->AttendSession(&ctx, sr, &session_resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    ASSERT_EQ(session_resp.sequence_lengths_size(), static_cast<int>(ids.size()));
    for (size_t b = 0; b < ids.size(); ++b)
      EXPECT_EQ(session_resp.sequence_lengths(static_cast<int>(b)), lk[b]);

    // The same call, stateless: the whole K/V travels.
    v1::AttendRequest ar;
    ar.set_request_id("full");
    *ar.mutable_q() = sr.q();
    *ar.mutable_k() = Tensor(kfull, cu_k.back(), kHk);
    *ar.mutable_v() = Tensor(vfull, cu_k.back(), kHk);
    for (int32_t x : cu_q) ar.add_cu_seqlens_q(x);
    for (int32_t x : cu_k) ar.add_cu_seqlens_k(x);
    ar.set_q_block_size(kSq);
    ar.set_k_block_size(kSk);
    ar.set_causal(causal);
    ar.set_return_lse(true);
    *ar.mutable_compact_mask() = sr.compact_mask();
    v1::AttendResponse full;
    {
      grpc::ClientContext ctx;
      const grpc::Status s = attention_->Attend(&ctx, ar, &full);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    const v1::AttendResponse& got = session_resp.attention();
    ASSERT_EQ(got.out().data().size(), full.out().data().size());
    EXPECT_EQ(got.out().data(), full.out().data())
        << "session output differs from the stateless Attend";
    EXPECT_EQ(got.lse().data(), full.lse().data());
    EXPECT_EQ(got.backend(), "cpu");

    // The float64 reference.
    AttentionArgs a;
    a.dtype = DType::kFloat32;
    a.total_q = cu_q.back();
    a.total_k = cu_k.back();
    a.num_heads_q = kHq;
    a.num_heads_k = kHk;
    a.head_dim = kD;
    a.batch = static_cast<int32_t>(ids.size());
    a.cu_seqlens_q = {cu_q.data(), cu_q.size() * 4};
    a.cu_seqlens_k = {cu_k.data(), cu_k.size() * 4};
    a.q_block_size = kSq;
    a.k_block_size = kSk;
    a.causal = causal;
    a.mask_format = MaskFormat::kCompact;
    a.compact_mask.row_offsets = {row_offsets.data(), row_offsets.size() * 8};
    a.compact_mask.col_indices = {col_indices.data(), col_indices.size() * 4};
    a.q = {qs.data(), qs.size() * 4};
    a.k = {kfull.data(), kfull.size() * 4};
    a.v = {vfull.data(), vfull.size() * 4};
    std::vector<float> out(qs.size(), std::nanf("")),
        lse(static_cast<size_t>(a.total_q) * kHq, std::nanf(""));
    a.out = {out.data(), out.size() * 4};
    a.lse = {lse.data(), lse.size() * 4};
    ASSERT_TRUE(Run(Backend::kReference, a).ok());
    ASSERT_EQ(got.out().data().size(), out.size() * 4);
    const float* o = reinterpret_cast<const float*>(got.out().data().data());
    const float* l = reinterpret_cast<const float*>(got.lse().data().data());
    for (size_t i = 0; i < out.size(); ++i) {
      const double err = std::abs(o[i] - out[i]);
      max_err_ = std::max(max_err_, err);
      ASSERT_LE(err, 1e-4 + 1e-4 * std::abs(out[i])) << "out element " << i;
    }
    int empty_rows = 0;
    for (size_t i = 0; i < lse.size(); ++i) {
      if (std::isinf(lse[i])) {
        ASSERT_TRUE(std::isinf(l[i]) && l[i] < 0) << "lse element " << i;
        ++empty_rows;
        continue;
      }
      ASSERT_LE(std::abs(l[i] - lse[i]), 1e-5) << "lse element " << i;
    }
    ++steps_;
    nonempty_ += static_cast<int>(lse.size()) - empty_rows;
  }

  int64_t length(const std::string& id) const {
    return static_cast<int64_t>(k_.at(id).size() / kRow);
  }
  int steps() const { return steps_; }
  int nonempty() const { return nonempty_; }
  double max_err() const { return max_err_; }

 private:
  v1::Sessions::Stub* sessions_;
  v1::Attention::Stub* attention_;
  std::string session_;
  std::mt19937 rng_;
  std::map<std::string, std::vector<float>> k_, v_;
  int steps_ = 0, nonempty_ = 0;
  double max_err_ = 0;
};

v1::OpenSessionResponse Open(v1::Sessions::Stub* stub, int64_t capacity = 0, double ttl = 0,
                             grpc::Status* status = nullptr) {
  v1::OpenSessionRequest r;
  r.set_dtype(v1::DTYPE_FLOAT32);
  r.set_num_heads_k(kHk);
  r.set_head_dim(kD);
  r.set_capacity_tokens(capacity);
  r.set_ttl_seconds(ttl);
  v1::OpenSessionResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->OpenSession(&ctx, r, &resp);
  if (status != nullptr)
    *status = s;
  else
    EXPECT_TRUE(s.ok()) << s.error_message();
  return resp;
}

grpc::Status AppendRows(v1::Sessions::Stub* stub, const std::string& session,
                        const std::string& seq, int n) {
  std::mt19937 rng(3);
  v1::AppendRequest r;
  r.set_session_id(session);
  r.mutable_rows()->add_sequence_ids(seq);
  r.mutable_rows()->add_cu_seqlens(0);
  r.mutable_rows()->add_cu_seqlens(n);
  *r.mutable_rows()->mutable_k() = Tensor(Random(&rng, static_cast<size_t>(n) * kRow), n, kHk);
  *r.mutable_rows()->mutable_v() = Tensor(Random(&rng, static_cast<size_t>(n) * kRow), n, kHk);
  v1::AppendResponse resp;
  grpc::ClientContext ctx;
  return stub->Append(&ctx, r, &resp);
}

// A one-query decode step on `seq` without new rows: its status.
grpc::Status Decode(v1::Sessions::Stub* stub, const std::string& session, const std::string& seq) {
  std::mt19937 rng(5);
  v1::AttendSessionRequest r;
  r.set_session_id(session);
  r.add_sequence_ids(seq);
  *r.mutable_q() = Tensor(Random(&rng, kHq * kD), 1, kHq);
  r.add_cu_seqlens_q(0);
  r.add_cu_seqlens_q(1);
  r.set_q_block_size(kSq);
  r.set_k_block_size(kSk);
  r.mutable_dense_mask();  // empty: refused when the sequence exists (shape), fine for NOT_FOUND
                           // checks
  v1::AttendSessionResponse resp;
  grpc::ClientContext ctx;
  return stub->AttendSession(&ctx, r, &resp);
}

TEST(Sessions, ChunkedPrefillThenDecodeMatchStatelessAttendAndReference) {
  auto server = ServerProcess::Start(kServerArgs);
  ASSERT_NE(server, nullptr);
  auto sessions = v1::Sessions::NewStub(server->channel());
  auto attention = server->stub();
  const v1::OpenSessionResponse opened = Open(sessions.get());
  ASSERT_FALSE(opened.session_id().empty());
  EXPECT_EQ(opened.page_tokens(), 4);
  EXPECT_EQ(opened.device(), -1);
  Model m(sessions.get(), attention.get(), opened.session_id());
  // Chunked prefill, causal: each chunk's queries are its own new tokens; the first chunk of s0
  // comes by a separate Append, the others inside AttendSession.
  m.Step({"s0"}, {5}, {5}, true, /*separate_append=*/true);
  m.Step({"s0", "s1"}, {7, 6}, {7, 6}, true, false);
  m.Step({"s1", "s0"}, {6, 4}, {6, 4}, true, false);
  m.Step({"s0", "s1"}, {3, 3}, {3, 3}, true, true);
  // Decode: one query and one new K/V row per sequence per step, both sequences in one call.
  for (int step = 0; step < 8; ++step) m.Step({"s0", "s1"}, {1, 1}, {1, 1}, true, step % 3 == 0);
  // A multi-query step that is not causal, and one sequence alone without new rows.
  m.Step({"s1"}, {3}, {0}, false, false);
  m.Step({"s0"}, {2}, {0}, true, false);
  EXPECT_EQ(m.length("s0"), 27);
  EXPECT_EQ(m.length("s1"), 23);
  EXPECT_GT(m.nonempty(), 200);  // the checks compared real rows, not empty ones
  std::printf("sessions: %d steps, max |out - reference| = %.3g\n", m.steps(), m.max_err());

  // Metrics: the session is open, its pages are counted, every step was timed.
  const std::string text = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(MetricValue(text, "hbsa_sessions_open{device=\"cpu\"}").value_or(-1), 1);
  // s0: 27 rows = 7 pages, s1: 23 rows = 6 pages, 1024 bytes each.
  EXPECT_EQ(MetricValue(text, "hbsa_session_pages_used{device=\"cpu\"}").value_or(-1), 13);
  EXPECT_EQ(MetricValue(text, "hbsa_session_resident_bytes{device=\"cpu\"}").value_or(-1),
            13 * 1024);
  EXPECT_EQ(MetricValue(text, "hbsa_session_step_duration_seconds_count").value_or(-1), m.steps());
  EXPECT_EQ(MetricValue(text, "hbsa_session_append_duration_seconds_count").value_or(-1), 2 + 3);
  EXPECT_EQ(
      MetricValue(text, "hbsa_requests_total{code=\"OK\",method=\"AttendSession\"}").value_or(-1),
      m.steps());
}

TEST(Sessions, CallChecksNameTheFieldAndAppendNothing) {
  auto server = ServerProcess::Start(kServerArgs);
  ASSERT_NE(server, nullptr);
  auto sessions = v1::Sessions::NewStub(server->channel());
  const std::string id = Open(sessions.get()).session_id();
  ASSERT_TRUE(AppendRows(sessions.get(), id, "s0", 9).ok());
  // A mask of the wrong shape: refused by the validation pass, and the call's rows not kept.
  std::mt19937 rng(1);
  v1::AttendSessionRequest r;
  r.set_session_id(id);
  r.add_sequence_ids("s0");
  *r.mutable_q() = Tensor(Random(&rng, kHq * kD), 1, kHq);
  r.add_cu_seqlens_q(0);
  r.add_cu_seqlens_q(1);
  r.mutable_append()->add_sequence_ids("s0");
  r.mutable_append()->add_cu_seqlens(0);
  r.mutable_append()->add_cu_seqlens(1);
  *r.mutable_append()->mutable_k() = Tensor(Random(&rng, kRow), 1, kHk);
  *r.mutable_append()->mutable_v() = Tensor(Random(&rng, kRow), 1, kHk);
  r.set_q_block_size(kSq);
  r.set_k_block_size(kSk);
  r.mutable_dense_mask()->add_shape(kHk);
  r.mutable_dense_mask()->add_shape(1);
  r.mutable_dense_mask()->add_shape(3);  // 10 resident keys after the append: Nk = 4
  r.mutable_dense_mask()->set_bits(std::string(1, '\xff'));
  v1::AttendSessionResponse resp;
  {
    grpc::ClientContext ctx;
    const grpc::Status s = sessions->AttendSession(&ctx, r, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("dense_mask.shape must be [Hk, Nq, Nk] = [2, 1, 4]"),
              std::string::npos)
        << s.error_message();
  }
  // The right shape now: s0 holds 9 + 1 rows, so the refused call appended nothing.
  r.mutable_dense_mask()->set_shape(2, 4);
  {
    grpc::ClientContext ctx;
    const grpc::Status s = sessions->AttendSession(&ctx, r, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.sequence_lengths(0), 10);
  }
  // q of the wrong dtype, rows of the wrong head count, an unknown sequence.
  r.clear_append();
  r.mutable_q()->set_dtype(v1::DTYPE_FLOAT16);
  {
    grpc::ClientContext ctx;
    const grpc::Status s = sessions->AttendSession(&ctx, r, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("q.dtype must be the session's dtype (DTYPE_FLOAT32)"),
              std::string::npos)
        << s.error_message();
  }
  {
    v1::AppendRequest ar;
    ar.set_session_id(id);
    ar.mutable_rows()->add_sequence_ids("s0");
    ar.mutable_rows()->add_cu_seqlens(0);
    ar.mutable_rows()->add_cu_seqlens(1);
    *ar.mutable_rows()->mutable_k() = Tensor(Random(&rng, kD), 1, 1);
    *ar.mutable_rows()->mutable_v() = Tensor(Random(&rng, kD), 1, 1);
    v1::AppendResponse aresp;
    grpc::ClientContext ctx;
    const grpc::Status s = sessions->Append(&ctx, ar, &aresp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("rows.k.shape must be [total, Hk, D] = [total, 2, 16]"),
              std::string::npos)
        << s.error_message();
  }
  const grpc::Status s = Decode(sessions.get(), id, "nope");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("sequence_ids[0] (\"nope\") is not in session"),
            std::string::npos)
      << s.error_message();
  EXPECT_EQ(CheckHealth(server->channel(), ""), Health::kServing);
}

TEST(Sessions, BudgetRefusalNamesTheNeedAndTheBudget) {
  // 4 pages of 4 tokens, no eviction.
  std::vector<std::string> args = kServerArgs;
  args.insert(args.end(), {"--session-memory-bytes", "4096", "--session-eviction", "none"});
  auto server = ServerProcess::Start(args);
  ASSERT_NE(server, nullptr);
  auto sessions = v1::Sessions::NewStub(server->channel());
  grpc::Status s;
  Open(sessions.get(), /*capacity=*/100, 0, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("capacity_tokens (100) needs 25 pages"), std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("4096 bytes, --session-memory-bytes"), std::string::npos)
      << s.error_message();
  const std::string a = Open(sessions.get()).session_id();
  const std::string b = Open(sessions.get()).session_id();
  ASSERT_TRUE(AppendRows(sessions.get(), a, "x", 12).ok());  // 3 pages
  s = AppendRows(sessions.get(), b, "y", 5);                 // needs 2, 1 free
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("needs 2 pages (2048 bytes, 4 tokens per page)"),
            std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("1 of 4 pages free"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("--session-eviction none"), std::string::npos)
      << s.error_message();
  // Nothing was appended to b: its sequence does not exist.
  EXPECT_EQ(Decode(sessions.get(), b, "y").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(AppendRows(sessions.get(), b, "y", 4).ok());  // exactly the free page
}

TEST(Sessions, TtlEvictionCloseAndLruAnswerNotFoundWithTheReason) {
  std::vector<std::string> args = kServerArgs;
  args.insert(args.end(), {"--session-memory-bytes", "4096"});  // 4 pages, LRU on
  auto server = ServerProcess::Start(args);
  ASSERT_NE(server, nullptr);
  auto sessions = v1::Sessions::NewStub(server->channel());
  const std::string brief = Open(sessions.get(), 0, /*ttl=*/0.3).session_id();
  ASSERT_TRUE(AppendRows(sessions.get(), brief, "x", 3).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  grpc::Status s = AppendRows(sessions.get(), brief, "x", 1);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("is gone: evicted after being idle past its TTL"),
            std::string::npos)
      << s.error_message();

  const std::string closed = Open(sessions.get()).session_id();
  ASSERT_TRUE(AppendRows(sessions.get(), closed, "x", 5).ok());
  {
    v1::CloseSessionRequest r;
    r.set_session_id(closed);
    v1::CloseSessionResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(sessions->CloseSession(&ctx, r, &resp).ok());
    EXPECT_EQ(resp.freed_bytes(), 2 * 1024);
  }
  s = Decode(sessions.get(), closed, "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("is gone: it was closed"), std::string::npos)
      << s.error_message();

  const std::string old = Open(sessions.get()).session_id();
  const std::string young = Open(sessions.get()).session_id();
  ASSERT_TRUE(AppendRows(sessions.get(), old, "x", 8).ok());
  ASSERT_TRUE(AppendRows(sessions.get(), young, "x", 8).ok());  // the pool is full
  ASSERT_TRUE(AppendRows(sessions.get(), young, "x", 1).ok());  // evicts `old`
  s = AppendRows(sessions.get(), old, "x", 1);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("least recently used"), std::string::npos) << s.error_message();

  const std::string text = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(MetricValue(text, "hbsa_session_evictions_total{cause=\"ttl\"}").value_or(-1), 1);
  EXPECT_EQ(MetricValue(text, "hbsa_session_evictions_total{cause=\"lru\"}").value_or(-1), 1);
  EXPECT_EQ(MetricValue(text, "hbsa_sessions_open{device=\"cpu\"}").value_or(-1), 1);
  EXPECT_EQ(MetricValue(text, "hbsa_session_pages_used{device=\"cpu\"}").value_or(-1), 3);
}

TEST(Sessions, DrainFinishesTheStepInFlightAndRefusesNewSessionCalls) {
  std::vector<std::string> args = kServerArgs;
  args.insert(args.end(), {"--test-executor-delay-ms", "800", "--cpu-threads", "1"});
  auto server = ServerProcess::Start(args);
  ASSERT_NE(server, nullptr);
  auto sessions = v1::Sessions::NewStub(server->channel());
  const std::string id = Open(sessions.get()).session_id();
  ASSERT_TRUE(AppendRows(sessions.get(), id, "x", 6).ok());
  std::mt19937 rng(4);
  v1::AttendSessionRequest r;
  r.set_session_id(id);
  r.add_sequence_ids("x");
  *r.mutable_q() = Tensor(Random(&rng, kHq * kD), 1, kHq);
  r.add_cu_seqlens_q(0);
  r.add_cu_seqlens_q(1);
  r.set_q_block_size(kSq);
  r.set_k_block_size(kSk);
  r.mutable_dense_mask()->add_shape(kHk);
  r.mutable_dense_mask()->add_shape(1);
  r.mutable_dense_mask()->add_shape(2);  // 6 keys, Sk = 3
  r.mutable_dense_mask()->set_bits(std::string(1, '\x0f'));
  v1::AttendSessionResponse resp;
  grpc::ClientContext ctx;
  std::promise<grpc::Status> done;
  sessions->async()->AttendSession(&ctx, &r, &resp, [&](grpc::Status s) { done.set_value(s); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the step is computing
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  grpc::Status s;
  Open(sessions.get(), 0, 0, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_NE(s.error_message().find("draining"), std::string::npos) << s.error_message();
  const grpc::Status step = done.get_future().get();
  EXPECT_TRUE(step.ok()) << step.error_message();
  EXPECT_EQ(resp.sequence_lengths(0), 6);
  EXPECT_EQ(resp.attention().out().data().size(), size_t{kHq * kD * 4});
  EXPECT_EQ(server->Wait(std::chrono::seconds(20)).value_or(-99), 0);
}

TEST(Sessions, ARestartedServerSaysTheSessionIsGone) {
  std::string id;
  {
    auto first = ServerProcess::Start(kServerArgs);
    ASSERT_NE(first, nullptr);
    auto sessions = v1::Sessions::NewStub(first->channel());
    id = Open(sessions.get()).session_id();
    ASSERT_TRUE(AppendRows(sessions.get(), id, "x", 6).ok());
    EXPECT_EQ(first->SignalAndWait(SIGTERM, std::chrono::seconds(20)).value_or(-99), 0);
  }
  auto second = ServerProcess::Start(kServerArgs);
  ASSERT_NE(second, nullptr);
  auto sessions = v1::Sessions::NewStub(second->channel());
  const grpc::Status s = Decode(sessions.get(), id, "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("opened by another server process"), std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("the server restarted"), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace hbsa::testing
