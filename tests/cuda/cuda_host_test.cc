// cuda_host_test.cc: the host-only parts of the CUDA backend, run in CI without a GPU (no `gpu`
// label): tile heuristics (pure functions) and the request layout of hbsa/cuda.h (PlanRequest
// and PackInputs touch no device).
#include <cstring>
#include <numeric>
#include <vector>

#include "../../kernels/cuda/heuristics.h"
#include "gtest/gtest.h"
#include "hbsa/cuda.h"

namespace hbsa::cuda_internal {
namespace {

TEST(CudaHeuristics, CompiledHeadDimCoversEveryValidD) {
  EXPECT_EQ(CompiledHeadDim(1), 64);
  EXPECT_EQ(CompiledHeadDim(64), 64);
  EXPECT_EQ(CompiledHeadDim(65), 128);
  EXPECT_EQ(CompiledHeadDim(128), 128);
  EXPECT_EQ(CompiledHeadDim(129), 256);
  EXPECT_EQ(CompiledHeadDim(256), 256);
  EXPECT_EQ(CompiledHeadDim(257), 0);
  EXPECT_EQ(CompiledHeadDim(0), 0);
}

TEST(CudaHeuristics, TileShapes) {
  auto eq = [](TileShape t, int m, int n) { return t.block_m == m && t.block_n == n; };
  EXPECT_TRUE(eq(ChooseTile(DType::kBFloat16, 128, 128), 128, 64));
  EXPECT_TRUE(eq(ChooseTile(DType::kFloat16, 64, 256), 128, 64));
  EXPECT_TRUE(eq(ChooseTile(DType::kBFloat16, 128, 64), 64, 64));
  EXPECT_TRUE(eq(ChooseTile(DType::kBFloat16, 96, 7), 64, 64));
  EXPECT_TRUE(eq(ChooseTile(DType::kBFloat16, 256, 128), 64, 64));
  EXPECT_TRUE(eq(ChooseTile(DType::kFloat32, 128, 128), 32, 32));
}

TEST(CudaHeuristics, HopperPathOnlyOnSm90aForHalfPrecisionUpTo128) {
  EXPECT_TRUE(UseHopperPath(9, true, DType::kBFloat16, 128, false));
  EXPECT_TRUE(UseHopperPath(9, true, DType::kFloat16, 64, false));
  EXPECT_TRUE(UseHopperPath(9, true, DType::kFloat16, 33, false));  // padded to 64
  EXPECT_FALSE(UseHopperPath(9, true, DType::kBFloat16, 129, false));  // D = 256 tile: mma.sync
  EXPECT_FALSE(UseHopperPath(9, true, DType::kFloat32, 128, false));
  EXPECT_FALSE(UseHopperPath(8, true, DType::kBFloat16, 128, false));
  EXPECT_FALSE(UseHopperPath(10, true, DType::kBFloat16, 128, false));
  EXPECT_FALSE(UseHopperPath(9, false, DType::kBFloat16, 128, false));  // no sm_90a image
  EXPECT_FALSE(UseHopperPath(9, true, DType::kBFloat16, 128, true));    // HBSA_CUDA_NO_WGMMA=1
}

TEST(CudaRequestLayout, AlignedPiecesAndPackedInputs) {
  const std::vector<int32_t> cu_q = {0, 100, 100, 300}, cu_k = {0, 50, 120, 120};
  const int32_t hq = 4, hk = 2, d = 40, sq = 7, sk = 33;
  const int64_t total_q = 300, total_k = 120;
  std::vector<uint16_t> q(total_q * hq * d), k(total_k * hk * d), v(k.size());
  std::iota(q.begin(), q.end(), 1);
  std::iota(k.begin(), k.end(), 7);
  std::iota(v.begin(), v.end(), 11);
  const int64_t nq = 15 + 0 + 29, nk = 2 + 3 + 0;
  std::vector<uint8_t> mask(hk * nq * nk, 1);
  std::vector<uint16_t> out(q.size());
  std::vector<float> lse(total_q * hq);
  AttentionArgs a;
  a.dtype = DType::kBFloat16;
  a.total_q = total_q;
  a.total_k = total_k;
  a.num_heads_q = hq;
  a.num_heads_k = hk;
  a.head_dim = d;
  a.batch = 3;
  a.cu_seqlens_q = {cu_q.data(), cu_q.size() * 4};
  a.cu_seqlens_k = {cu_k.data(), cu_k.size() * 4};
  a.q_block_size = sq;
  a.k_block_size = sk;
  a.dense_mask.shape[0] = hk;
  a.dense_mask.shape[1] = nq;
  a.dense_mask.shape[2] = nk;
  a.dense_mask.data = {mask.data(), mask.size()};
  a.q = {q.data(), q.size() * 2};
  a.k = {k.data(), k.size() * 2};
  a.v = {v.data(), v.size() * 2};
  a.out = {out.data(), out.size() * 2};
  a.lse = {lse.data(), lse.size() * 4};
  ASSERT_TRUE(Validate(a).ok()) << Validate(a);

  absl::StatusOr<cuda::RequestLayout> layout = cuda::PlanRequest(a);
  ASSERT_TRUE(layout.ok()) << layout.status();
  for (size_t off : layout->offsets) EXPECT_EQ(off % 256, 0u);
  EXPECT_EQ(layout->out_offset % 256, 0u);
  EXPECT_EQ(layout->lse_offset % 256, 0u);
  EXPECT_GE(layout->out_offset, layout->input_bytes);
  EXPECT_GE(layout->lse_offset, layout->out_offset + out.size() * 2);
  EXPECT_EQ(layout->output_bytes, layout->lse_offset - layout->out_offset + lse.size() * 4);
  EXPECT_GE(layout->total_bytes, layout->out_offset + layout->output_bytes);

  std::vector<uint8_t> staging(layout->input_bytes, 0xab);
  cuda::PackInputs(a, *layout, staging.data());
  // q is the first piece, k and v follow at their offsets (q: 0, k: offsets[1], v: offsets[2]).
  EXPECT_EQ(std::memcmp(staging.data(), q.data(), q.size() * 2), 0);
  EXPECT_EQ(std::memcmp(staging.data() + layout->offsets[1], k.data(), k.size() * 2), 0);
  EXPECT_EQ(std::memcmp(staging.data() + layout->offsets[2], v.data(), v.size() * 2), 0);
}

TEST(CudaRequestLayout, EveryHeadDimUpTo256IsPlanned) {
  const std::vector<int32_t> cu = {0, 3};
  std::vector<uint8_t> mask(1, 1);
  for (DType t : {DType::kFloat16, DType::kBFloat16, DType::kFloat32}) {
    for (int32_t d : {1, 17, 64, 100, 128, 200, 256}) {
      std::vector<uint8_t> buf(3 * d * DTypeSize(t), 1);
      AttentionArgs a;
      a.dtype = t;
      a.total_q = a.total_k = 3;
      a.num_heads_q = a.num_heads_k = 1;
      a.head_dim = d;
      a.batch = 1;
      a.cu_seqlens_q = a.cu_seqlens_k = {cu.data(), 8};
      a.q_block_size = a.k_block_size = 4;
      a.dense_mask.shape[0] = a.dense_mask.shape[1] = a.dense_mask.shape[2] = 1;
      a.dense_mask.data = {mask.data(), 1};
      a.q = a.k = a.v = {buf.data(), buf.size()};
      EXPECT_TRUE(cuda::PlanRequest(a).ok()) << DTypeName(t) << " d=" << d;
    }
  }
}

}  // namespace
}  // namespace hbsa::cuda_internal
