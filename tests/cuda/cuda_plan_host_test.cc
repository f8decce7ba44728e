// cuda_plan_host_test.cc: the wgmma kernel's planning and masking code on the CPU, no GPU needed.
// device/chunk_mask.h holds host+device functions; here they run on a host copy of the request
// buffer (PackInputs, ParamsFor): the planner's classification (ChunkWord per 16-key chunk and
// row group, in PlanChunksKernel's order), the tile-row mapping of GQA-packed tiles
// (TargetOfRow) and the per-thread allowed bits of every stage (StageAllowedBits) for every
// thread of every CTA. The test asserts, for every (query row, head) of every sequence, that the
// keys its thread quads see across the stages are exactly {j : ElementAllowed(...)}, each once,
// and that every query row of every head is owned by exactly one tile row. This is the
// correctness of the key gathering and the sub-tile masks, independent of the device.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "device/chunk_mask.h"
#include "gtest/gtest.h"
#include "hbsa/attention.h"
#include "hbsa/plan.h"
#include "request_internal.h"

namespace hbsa::cuda_internal {
namespace {

struct Problem {
  std::vector<int32_t> cu_q{0}, cu_k{0};
  int32_t hq = 1, hk = 1, d = 64, sq = 16, sk = 16;
  bool causal = false, compact = false;
  std::vector<uint8_t> mask;  // [hk, nq, nk]
  std::vector<int64_t> offsets;
  std::vector<int32_t> cols;
  std::vector<uint16_t> q, kv, out;
  AttentionArgs args;
  std::string name;
};

void Build(Problem* pr, const std::vector<int32_t>& lq, const std::vector<int32_t>& lk,
           double density, std::mt19937_64* rng) {
  for (size_t b = 0; b < lq.size(); ++b) {
    pr->cu_q.push_back(pr->cu_q.back() + lq[b]);
    pr->cu_k.push_back(pr->cu_k.back() + lk[b]);
  }
  const int32_t batch = static_cast<int32_t>(lq.size());
  const int64_t nq = CountBlocks(batch, pr->cu_q.data(), pr->sq);
  const int64_t nk = CountBlocks(batch, pr->cu_k.data(), pr->sk);
  std::bernoulli_distribution bit(density);
  pr->mask.resize(size_t(pr->hk * nq * nk));
  for (auto& m : pr->mask) m = bit(*rng) ? 1 : 0;
  const int64_t total_q = pr->cu_q.back(), total_k = pr->cu_k.back();
  pr->q.assign(size_t(total_q * pr->hq * pr->d), 0x3c00);
  pr->kv.assign(size_t(total_k * pr->hk * pr->d), 0x3c00);
  pr->out.assign(pr->q.size(), 0);
  AttentionArgs& a = pr->args;
  a.dtype = DType::kFloat16;
  a.total_q = total_q;
  a.total_k = total_k;
  a.num_heads_q = pr->hq;
  a.num_heads_k = pr->hk;
  a.head_dim = pr->d;
  a.batch = batch;
  a.cu_seqlens_q = {pr->cu_q.data(), pr->cu_q.size() * 4};
  a.cu_seqlens_k = {pr->cu_k.data(), pr->cu_k.size() * 4};
  a.q_block_size = pr->sq;
  a.k_block_size = pr->sk;
  a.causal = pr->causal;
  a.q = {pr->q.data(), pr->q.size() * 2};
  a.k = a.v = {pr->kv.data(), pr->kv.size() * 2};
  a.out = {pr->out.data(), pr->out.size() * 2};
  if (pr->compact) {
    pr->offsets.assign(1, 0);
    for (int64_t r = 0; r < pr->hk * nq; ++r) {
      for (int64_t j = 0; j < nk; ++j) {
        if (pr->mask[size_t(r * nk + j)]) pr->cols.push_back(static_cast<int32_t>(j));
      }
      pr->offsets.push_back(static_cast<int64_t>(pr->cols.size()));
    }
    a.mask_format = MaskFormat::kCompact;
    a.compact_mask.row_offsets = {pr->offsets.data(), pr->offsets.size() * 8};
    a.compact_mask.col_indices = {pr->cols.data(), pr->cols.size() * 4};
  } else {
    a.dense_mask.shape[0] = pr->hk;
    a.dense_mask.shape[1] = nq;
    a.dense_mask.shape[2] = nk;
    a.dense_mask.data = {pr->mask.data(), pr->mask.size()};
  }
  pr->name = absl::StrCat("blocks=", pr->sq, "x", pr->sk, " hq=", pr->hq, " hk=", pr->hk,
                          pr->causal ? " causal" : "", pr->compact ? " compact" : "",
                          " density=", density);
}

// Plans `pr` for the wgmma kernel on a Hopper-like device and checks the key sets (see top).
// Returns the number of stages (entries) planned, for the caller's sanity checks.
int64_t CheckPlan(const Problem& pr) {
  const AttentionArgs& a = pr.args;
  EXPECT_TRUE(Validate(a).ok()) << pr.name << ": " << Validate(a);
  absl::StatusOr<cuda::RequestLayout> layout =
      PlanRequestFor(a, DeviceTraits{9, true}, CudaKernel::kWgmmaTma);
  EXPECT_TRUE(layout.ok()) << pr.name << ": " << layout.status();
  if (!layout.ok()) return 0;
  EXPECT_EQ(layout->kernel, CudaKernel::kWgmmaTma);
  std::vector<uint8_t> buf(layout->total_bytes + 16);
  cuda::PackInputs(a, *layout, buf.data());
  const KernelParams p = ParamsFor(a, *layout, buf.data());
  EXPECT_EQ(p.tile.block_m, p.tile.q_rows * p.tile.heads);
  EXPECT_EQ(p.group % p.tile.heads, 0) << pr.name;

  // Per (global query row, head): the keys seen, and how many tile rows own it.
  const int64_t rows = a.total_q * a.num_heads_q;
  std::vector<std::vector<int64_t>> seen(static_cast<size_t>(rows));
  std::vector<int> owned(static_cast<size_t>(rows), 0);
  auto row_id = [&](int32_t b, int64_t i, int32_t h) {
    return size_t((pr.cu_q[b] + i) * a.num_heads_q + h);
  };
  int64_t stages = 0;
  for (int32_t t = 0; t < p.num_q_tiles; ++t) {
    const TileRows tr = TileRowsOf(p, t);
    for (int32_t hg = 0; hg < p.num_heads_q / p.tile.heads; ++hg) {
      const int32_t h0 = hg * p.tile.heads, hk = h0 / p.group;
      // The planner of row (hk, t): chunks ascending, live words only, padded to 4.
      const RowGroups groups = RowGroupsOf(p, tr);
      const int64_t num_chunks = CeilDiv(TileKeyEnd(p, tr), kChunkKeys);
      std::vector<uint32_t> words;
      for (int64_t c = 0; c < num_chunks; ++c) {
        const uint32_t w = ChunkWord(p, tr, hk, groups, c);
        if (w != 0) words.push_back(w);
      }
      while (words.size() % kTileChunks != 0) words.push_back(0u);
      const int64_t entries = static_cast<int64_t>(words.size()) / kTileChunks;
      EXPECT_LE(entries, CeilDiv(tr.lk, 64)) << pr.name << ": more stages than visit slots";
      stages += entries;
      for (int wg = 0; wg < p.tile.block_m / 64; ++wg) {
        for (int warp = 0; warp < 4; ++warp) {
          for (int lane = 0; lane < 32; ++lane) {
            int64_t qrow[2], limit[2];
            int32_t head[2];
            for (int r = 0; r < 2; ++r) {
              const int tile_row = wg * 64 + warp * 16 + (lane >> 2) + 8 * r;
              const RowTarget tgt = TargetOfRow(p.tile, tr, h0, tile_row);
              qrow[r] = tgt.qrow;
              head[r] = tgt.head;
              limit[r] = RowKeyLimit(p.causal, qrow[r], tr.lq, tr.lk);
              EXPECT_EQ(head[r] / p.group, hk) << pr.name;
              if ((lane & 3) == 0 && tgt.qrow < tr.lq) ++owned[row_id(tr.b, tgt.qrow, tgt.head)];
            }
            for (int64_t e = 0; e < entries; ++e) {
              const uint32_t w[kTileChunks] = {words[4 * e], words[4 * e + 1], words[4 * e + 2],
                                               words[4 * e + 3]};
              const uint32_t allowed =
                  StageAllowedBits(p, tr, hk, w, warp, lane, qrow, limit);
              for (int bit = 0; bit < 32; ++bit) {
                if (((allowed >> bit) & 1u) == 0) continue;
                const int nt = bit >> 2, r = (bit >> 1) & 1, c = nt >> 1;
                const int col = 8 * nt + 2 * (lane & 3) + (bit & 1) - 16 * c;
                EXPECT_NE(ChunkRowGroups(w[c]), 0u) << pr.name << ": allowed bit in padding";
                // Rows past the sequence end are computed (on zero queries) but never stored.
                if (qrow[r] >= tr.lq) continue;
                const int64_t j = int64_t{ChunkIndex(w[c])} * kChunkKeys + col;
                seen[row_id(tr.b, qrow[r], head[r])].push_back(j);
              }
            }
          }
        }
      }
    }
  }
  // Every row of every head owned once; its keys are exactly the allowed ones, each once.
  BlockLayoutStorage storage(a);
  const BlockLayout& L = storage.view();
  const MaskView mask = MakeMaskView(a, L);
  int64_t bad = 0;
  for (int32_t b = 0; b < a.batch; ++b) {
    for (int64_t i = 0; i < L.QLen(b); ++i) {
      for (int32_t hk = 0; hk < a.num_heads_k; ++hk) {
        std::vector<int64_t> expect;  // the same for every head of KV head hk
        for (int64_t j = 0; j < L.KLen(b); ++j) {
          if (ElementAllowed(L, mask, a.causal, hk, b, i, j)) expect.push_back(j);
        }
        for (int32_t h = hk * p.group; h < (hk + 1) * p.group; ++h) {
          const size_t id = row_id(b, i, h);
          if (owned[id] != 1 && bad++ < 3) {
            ADD_FAILURE() << pr.name << ": seq " << b << " row " << i << " head " << h
                          << " owned by " << owned[id] << " tile rows";
          }
          std::vector<int64_t>& got = seen[id];
          std::sort(got.begin(), got.end());
          if (got != expect && bad++ < 3) {
            ADD_FAILURE() << pr.name << ": seq " << b << " row " << i << " head " << h << ": "
                          << got.size() << " keys seen, " << expect.size() << " allowed";
          }
        }
      }
    }
  }
  EXPECT_EQ(bad, 0) << pr.name;
  return stages;
}

TEST(WgmmaPlanOnHost, GatheredKeysAreExactlyTheAllowedOnes) {
  struct Blocks {
    int sq, sk;
  };
  const Blocks blocks[] = {{16, 16}, {32, 32},  {128, 16}, {16, 128}, {32, 128},
                           {48, 16}, {64, 64},  {128, 128}, {64, 128}, {128, 64},
                           {7, 33},  {100, 3},  {5, 16},   {16, 5},   {1, 1}};
  std::mt19937_64 rng(20261201);
  int n = 0;
  for (const Blocks& bl : blocks) {
    for (int group : {1, 2, 4, 8}) {
      for (bool causal : {false, true}) {
        Problem pr;
        pr.sq = bl.sq;
        pr.sk = bl.sk;
        pr.hk = group == 8 ? 1 : 2;
        pr.hq = pr.hk * group;
        pr.causal = causal;
        pr.compact = n % 3 == 1;
        const double density = n % 4 == 0 ? 0.1 : 0.45;
        // Ragged lengths, an empty sequence, Lq != Lk (causal rows with no key), a tail chunk.
        const bool tiny = bl.sq == 1 || bl.sk <= 5;
        const std::vector<int32_t> lq = tiny ? std::vector<int32_t>{37, 0, 30}
                                             : std::vector<int32_t>{150, 0, 77, 140};
        const std::vector<int32_t> lk = tiny ? std::vector<int32_t>{50, 9, 41}
                                             : std::vector<int32_t>{150, 40, 203, 97};
        Build(&pr, lq, lk, density, &rng);
        EXPECT_GT(CheckPlan(pr), 0) << pr.name;
        ++n;
      }
    }
  }
}

// Small key blocks are gathered: at 90 % sparsity with 16 x 16 blocks and packed GQA heads a
// tile computes far fewer stages than the dense key range would need.
TEST(WgmmaPlanOnHost, SmallKeyBlocksAreGathered) {
  std::mt19937_64 rng(7);
  Problem pr;
  pr.sq = pr.sk = 16;
  pr.hk = 1;
  pr.hq = 4;  // 16 query rows x 4 heads per tile: one mask row
  Build(&pr, {1024}, {1024}, 0.1, &rng);
  const int64_t stages = CheckPlan(pr);
  const int64_t dense_stages = (1024 / 16) * (1024 / 64);  // 64 tiles x 16 key stages
  EXPECT_LT(stages, dense_stages / 5) << stages << " stages";
}

}  // namespace
}  // namespace hbsa::cuda_internal
