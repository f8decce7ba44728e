// layout_test.cc: the block layout and mask rule of hbsa/layout.h and the visit-list compiler of
// hbsa/plan.h. The SEMANTICS.md worked example, the causal rule, and every coverage function
// (CausalCoverage, BlockPairCoverage, TileCoverage, CompileVisitList) against a brute force over
// ElementAllowed, the one per-element rule, on random layouts and masks.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/layout.h"
#include "hbsa/plan.h"
#include "test_util.h"

namespace hbsa {
namespace {

TEST(LayoutTest, SemanticsWorkedExample) {
  // cu_seqlens_k = [0, 32, 61, 100, 134, 157], Sk = 16: key lengths 32, 29, 39, 34, 23 give
  // 2 + 2 + 3 + 3 + 2 = 12 key blocks; block 7 is the first of sequence 3, key rows 100..115.
  const std::vector<int32_t> cu_k = {0, 32, 61, 100, 134, 157};
  const std::vector<int32_t> cu_q = {0, 32, 64, 96, 128, 160};
  EXPECT_EQ(CountBlocks(5, cu_k.data(), 16), 12);
  BlockLayoutStorage storage(5, cu_q.data(), cu_k.data(), 32, 16);
  const BlockLayout& l = storage.view();
  EXPECT_EQ(l.num_k_blocks, 12);
  EXPECT_EQ(l.num_q_blocks, 5);
  EXPECT_EQ(storage.k_block_start(), (std::vector<int32_t>{0, 2, 4, 7, 10, 12}));
  EXPECT_EQ(l.KLen(3), 34);
  EXPECT_TRUE(l.KBlockInSeq(3, 7));
  EXPECT_FALSE(l.KBlockInSeq(2, 7));
  EXPECT_EQ(l.cu_seqlens_k[3] + l.KBlockFirstRow(3, 7), 100);
  EXPECT_EQ(l.cu_seqlens_k[3] + l.KBlockEndRow(3, 7) - 1, 115);
  EXPECT_EQ(l.KBlockOf(3, 0), 7);
  EXPECT_EQ(l.KBlockOf(3, 15), 7);
  EXPECT_EQ(l.KBlockOf(3, 16), 8);
  // Short last blocks: sequence 1 (29 keys) ends with a 13-row block, sequence 4 with 7 rows.
  EXPECT_EQ(l.KBlockEndRow(1, 3) - l.KBlockFirstRow(1, 3), 13);
  EXPECT_EQ(l.KBlockEndRow(4, 11) - l.KBlockFirstRow(4, 11), 7);
}

TEST(LayoutTest, QueryBlocksNeverCrossSequencesAndSkipEmptyOnes) {
  const std::vector<int32_t> cu_q = {0, 10, 10, 33};  // lengths 10, 0, 23
  const std::vector<int32_t> cu_k = {0, 0, 5, 5};     // lengths 0, 5, 0
  BlockLayoutStorage storage(3, cu_q.data(), cu_k.data(), 7, 4);
  const BlockLayout& l = storage.view();
  EXPECT_EQ(l.num_q_blocks, 2 + 0 + 4);
  EXPECT_EQ(l.num_k_blocks, 0 + 2 + 0);
  EXPECT_EQ(storage.q_block_seq(), (std::vector<int32_t>{0, 0, 2, 2, 2, 2}));
  EXPECT_EQ(l.QBlockFirstRow(1), 7);
  EXPECT_EQ(l.QBlockEndRow(1), 10);  // short: 3 rows, stops at the sequence end
  EXPECT_EQ(l.QBlockFirstRow(2), 0);
  EXPECT_EQ(l.QBlockEndRow(5), 23);
  EXPECT_EQ(l.QBlockOf(2, 22), 5);
}

TEST(LayoutTest, CausalRuleIsBottomRightAligned) {
  // SEMANTICS.md: with Lq = 32, Lk = 23 the first 9 queries see no key at all.
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(CausalKeyLimit(true, i, 32, 23), 0) << i;
  EXPECT_EQ(CausalKeyLimit(true, 9, 32, 23), 1);
  EXPECT_EQ(CausalKeyLimit(true, 31, 32, 23), 23);
  EXPECT_TRUE(CausalAllows(31, 22, 32, 23));
  EXPECT_FALSE(CausalAllows(30, 22, 32, 23));
  // Lq < Lk: the first query already sees Lk - Lq + 1 keys.
  EXPECT_EQ(CausalKeyLimit(true, 0, 4, 10), 7);
  EXPECT_EQ(CausalKeyLimit(false, 0, 4, 10), 10);
  for (int64_t i = 0; i < 32; ++i) {
    for (int64_t j = 0; j < 23; ++j) {
      EXPECT_EQ(CausalAllows(i, j, 32, 23), j < CausalKeyLimit(true, i, 32, 23));
    }
  }
}

TEST(LayoutTest, CausalCoverage) {
  // Lq = Lk = 64: rows [0,16) x keys [16,32) are all above the diagonal.
  EXPECT_EQ(CausalCoverage(true, 0, 16, 16, 32, 64, 64), Coverage::kNone);
  EXPECT_EQ(CausalCoverage(true, 16, 32, 0, 16, 64, 64), Coverage::kFull);
  EXPECT_EQ(CausalCoverage(true, 16, 32, 16, 32, 64, 64), Coverage::kPartial);
  EXPECT_EQ(CausalCoverage(false, 0, 16, 16, 32, 64, 64), Coverage::kFull);
  // A single element on the diagonal is full.
  EXPECT_EQ(CausalCoverage(true, 5, 6, 5, 6, 64, 64), Coverage::kFull);
}

// Brute-force coverage of rows [i0,i1) x keys [j0,j1) of sequence b from ElementAllowed.
Coverage BruteCoverage(const BlockLayout& l, const MaskView& m, bool causal, int32_t hk, int32_t b,
                       int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  bool any = false, all = true;
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t j = j0; j < j1; ++j) {
      const bool ok = ElementAllowed(l, m, causal, hk, b, i, j);
      any = any || ok;
      all = all && ok;
    }
  }
  return !any ? Coverage::kNone : all ? Coverage::kFull : Coverage::kPartial;
}

struct RandomLayout {
  testing::Problem problem;
  std::vector<uint8_t> out;
  std::unique_ptr<BlockLayoutStorage> storage;
  testing::CompactMask csr;
  MaskView dense, compact;
};

RandomLayout MakeRandomLayout(std::mt19937_64& rng) {
  auto uni = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  testing::ProblemSpec s;
  s.hk = uni(1, 2);
  s.hq = s.hk;
  s.d = 1;
  s.sq = uni(1, 20);
  s.sk = uni(1, 20);
  s.causal = uni(0, 1) == 1;
  for (int b = uni(1, 3); b > 0; --b) {
    s.lq.push_back(uni(0, 45));
    s.lk.push_back(uni(0, 45));
  }
  s.density = 0.6;
  s.empty_mask_row_prob = 0.1;
  RandomLayout r;
  r.problem = testing::MakeProblem(s, rng);
  r.storage = std::make_unique<BlockLayoutStorage>(static_cast<int32_t>(s.lq.size()),
                                                   r.problem.cu_q.data(), r.problem.cu_k.data(),
                                                   s.sq, s.sk);
  r.csr = testing::ToCompact(r.problem.mask, s.hk * r.problem.nq, r.problem.nk);
  // Both views through MakeMaskView, as hbsa::Run builds them.
  AttentionArgs args = r.problem.Args(&r.out, nullptr);
  r.dense = MakeMaskView(args, r.storage->view());
  args.mask_format = MaskFormat::kCompact;
  args.compact_mask.row_offsets = {r.csr.row_offsets.data(), r.csr.row_offsets.size() * 8};
  args.compact_mask.col_indices = {r.csr.col_indices.data(), r.csr.col_indices.size() * 4};
  r.compact = MakeMaskView(args, r.storage->view());
  return r;
}

TEST(LayoutTest, MaskViewFormsAgree) {
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 50; ++trial) {
    const RandomLayout r = MakeRandomLayout(rng);
    for (int32_t hk = 0; hk < r.problem.spec.hk; ++hk) {
      for (int32_t i = 0; i < r.dense.num_q_blocks; ++i) {
        for (int32_t j = 0; j < r.dense.num_k_blocks; ++j) {
          ASSERT_EQ(r.dense.Get(hk, i, j), r.compact.Get(hk, i, j));
        }
      }
    }
  }
}

TEST(LayoutTest, TileAndBlockCoverageMatchBruteForce) {
  std::mt19937_64 rng(2);
  int checked = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const RandomLayout r = MakeRandomLayout(rng);
    const BlockLayout& l = r.storage->view();
    const bool causal = r.problem.spec.causal;
    for (int32_t b = 0; b < l.batch; ++b) {
      const int64_t lq = l.QLen(b), lk = l.KLen(b);
      if (lq == 0 || lk == 0) continue;
      for (int32_t hk = 0; hk < r.problem.spec.hk; ++hk) {
        // Random rectangles (compute tiles unrelated to the mask blocks).
        for (int t = 0; t < 10; ++t) {
          int64_t i0 = std::uniform_int_distribution<int64_t>(0, lq - 1)(rng);
          int64_t i1 = std::uniform_int_distribution<int64_t>(i0 + 1, lq)(rng);
          int64_t j0 = std::uniform_int_distribution<int64_t>(0, lk - 1)(rng);
          int64_t j1 = std::uniform_int_distribution<int64_t>(j0 + 1, lk)(rng);
          for (const MaskView* m : {&r.dense, &r.compact}) {
            ASSERT_EQ(TileCoverage(l, *m, causal, hk, b, i0, i1, j0, j1),
                      BruteCoverage(l, *m, causal, hk, b, i0, i1, j0, j1))
                << "rows [" << i0 << "," << i1 << ") keys [" << j0 << "," << j1 << ")";
            ++checked;
          }
        }
        // Every block pair of the sequence.
        for (int32_t i = l.q_block_start[b]; i < l.q_block_start[b + 1]; ++i) {
          for (int32_t j = l.k_block_start[b]; j < l.k_block_start[b + 1]; ++j) {
            ASSERT_EQ(BlockPairCoverage(l, r.dense, causal, hk, b, i, j),
                      BruteCoverage(l, r.dense, causal, hk, b, l.QBlockFirstRow(i),
                                    l.QBlockEndRow(i), l.KBlockFirstRow(b, j), l.KBlockEndRow(b, j)));
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(LayoutTest, VisitListMatchesBruteForceInBothMaskForms) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 100; ++trial) {
    const RandomLayout r = MakeRandomLayout(rng);
    const BlockLayout& l = r.storage->view();
    const bool causal = r.problem.spec.causal;
    const int32_t hks = r.problem.spec.hk;
    const VisitList dense = CompileVisitList(l, r.dense, causal, hks);
    const VisitList compact = CompileVisitList(l, r.compact, causal, hks);
    ASSERT_EQ(dense.offsets, compact.offsets);
    ASSERT_EQ(dense.k_blocks, compact.k_blocks);
    ASSERT_EQ(dense.coverage, compact.coverage);
    ASSERT_EQ(dense.offsets.size(), static_cast<size_t>(hks) * l.num_q_blocks + 1);
    for (int32_t hk = 0; hk < hks; ++hk) {
      for (int32_t i = 0; i < l.num_q_blocks; ++i) {
        const int32_t b = l.q_block_seq[i];
        std::vector<int32_t> want_blocks;
        std::vector<Coverage> want_cov;
        for (int32_t j = l.k_block_start[b]; j < l.k_block_start[b + 1]; ++j) {
          const Coverage c = BruteCoverage(l, r.dense, causal, hk, b, l.QBlockFirstRow(i),
                                           l.QBlockEndRow(i), l.KBlockFirstRow(b, j),
                                           l.KBlockEndRow(b, j));
          if (c == Coverage::kNone) continue;
          want_blocks.push_back(j);
          want_cov.push_back(c);
        }
        const int64_t row = int64_t{hk} * l.num_q_blocks + i;
        const std::vector<int32_t> got_blocks(dense.k_blocks.begin() + dense.offsets[row],
                                              dense.k_blocks.begin() + dense.offsets[row + 1]);
        const std::vector<Coverage> got_cov(dense.coverage.begin() + dense.offsets[row],
                                            dense.coverage.begin() + dense.offsets[row + 1]);
        EXPECT_EQ(got_blocks, want_blocks) << "hk " << hk << " query block " << i;
        EXPECT_EQ(got_cov, want_cov) << "hk " << hk << " query block " << i;
      }
    }
    // The dense form of the list keeps exactly the visited blocks.
    const std::vector<uint8_t> back = VisitListToDense(dense, l.num_k_blocks);
    for (int64_t row = 0; row < int64_t{hks} * l.num_q_blocks; ++row) {
      int64_t on = 0;
      for (int32_t j = 0; j < l.num_k_blocks; ++j) on += back[row * l.num_k_blocks + j];
      EXPECT_EQ(on, dense.offsets[row + 1] - dense.offsets[row]);
    }
  }
}

}  // namespace
}  // namespace hbsa
