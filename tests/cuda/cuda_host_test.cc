// cuda_host_test.cc: the host-only parts of the CUDA backend, run in CI without a GPU (no `gpu`
// label): the kernel choice and tile heuristics (pure functions of device traits and request
// shape) and the request layout of hbsa/cuda.h (PlanRequestFor and PackInputs touch no device).
// cuda_plan_host_test.cc, linked into the same binary, runs the wgmma planner on the CPU.
#include <cstring>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/cuda.h"
#include "heuristics.h"
#include "request_internal.h"

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

constexpr DeviceTraits kH100{9, true};      // Hopper with the sm_90a image
constexpr DeviceTraits kAmpere{8, false};    // no wgmma
constexpr DeviceTraits kNoImage{9, false};   // Hopper, image missing (e.g. built without 90a)
constexpr DeviceTraits kNoDevice{0, false};

bool Eq(TileShape t, int m, int q_rows, int heads) {
  return t.block_m == m && t.block_n == 64 && t.q_rows == q_rows && t.heads == heads;
}

TEST(CudaHeuristics, MmaSyncTiles) {
  EXPECT_TRUE(Eq(MmaSyncTile(128, 128), 128, 128, 1));
  EXPECT_TRUE(Eq(MmaSyncTile(64, 256), 128, 128, 1));
  EXPECT_TRUE(Eq(MmaSyncTile(128, 64), 64, 64, 1));
  EXPECT_TRUE(Eq(MmaSyncTile(96, 7), 64, 64, 1));
  EXPECT_TRUE(Eq(MmaSyncTile(256, 128), 64, 64, 1));
  const TileShape s = SimtTile();
  EXPECT_EQ(s.block_m, 32);
  EXPECT_EQ(s.block_n, 32);
}

TEST(CudaHeuristics, WgmmaTilesPackGqaHeadsIntoOneMaskRow) {
  // 128-row tiles only when every row shares one mask row (Sq % q_rows == 0).
  EXPECT_TRUE(Eq(WgmmaTile(128, 1), 128, 128, 1));
  EXPECT_TRUE(Eq(WgmmaTile(256, 4), 128, 128, 1));
  EXPECT_TRUE(Eq(WgmmaTile(64, 1), 64, 64, 1));
  EXPECT_TRUE(Eq(WgmmaTile(64, 2), 128, 64, 2));
  EXPECT_TRUE(Eq(WgmmaTile(192, 4), 128, 64, 2));
  EXPECT_TRUE(Eq(WgmmaTile(32, 4), 128, 32, 4));
  EXPECT_TRUE(Eq(WgmmaTile(32, 2), 64, 32, 2));
  EXPECT_TRUE(Eq(WgmmaTile(32, 1), 64, 64, 1));   // two query blocks, per-warp mask bits
  EXPECT_TRUE(Eq(WgmmaTile(16, 8), 128, 16, 8));
  EXPECT_TRUE(Eq(WgmmaTile(16, 4), 64, 16, 4));
  EXPECT_TRUE(Eq(WgmmaTile(16, 2), 64, 32, 2));
  EXPECT_TRUE(Eq(WgmmaTile(16, 1), 64, 64, 1));
  EXPECT_TRUE(Eq(WgmmaTile(48, 4), 64, 16, 4));
  EXPECT_TRUE(Eq(WgmmaTile(7, 8), 64, 64, 1));    // not a multiple of 16: element checks
  EXPECT_TRUE(Eq(WgmmaTile(100, 1), 64, 64, 1));
}

RequestShape Shape(DType t, int d, int sq, int group) { return RequestShape{t, d, sq, group}; }

TEST(CudaKernelChoice, AutoPrefersWgmmaOnHopperForHalfPrecisionUpTo128) {
  auto chosen = [](const DeviceTraits& dev, const RequestShape& s) {
    absl::StatusOr<KernelPlan> p = ChooseKernel(dev, s, CudaKernel::kAuto);
    return p.ok() ? p->kernel : CudaKernel::kAuto;
  };
  EXPECT_EQ(chosen(kH100, Shape(DType::kBFloat16, 128, 128, 1)), CudaKernel::kWgmmaTma);
  EXPECT_EQ(chosen(kH100, Shape(DType::kFloat16, 64, 16, 4)), CudaKernel::kWgmmaTma);
  EXPECT_EQ(chosen(kH100, Shape(DType::kFloat16, 40, 7, 1)), CudaKernel::kWgmmaTma);  // padded
  EXPECT_EQ(chosen(kH100, Shape(DType::kFloat16, 33, 64, 1)), CudaKernel::kMmaSync);  // D % 8
  EXPECT_EQ(chosen(kH100, Shape(DType::kBFloat16, 129, 64, 1)), CudaKernel::kMmaSync);
  EXPECT_EQ(chosen(kH100, Shape(DType::kBFloat16, 256, 64, 1)), CudaKernel::kMmaSync);
  EXPECT_EQ(chosen(kH100, Shape(DType::kFloat32, 128, 64, 1)), CudaKernel::kSimtFp32);
  EXPECT_EQ(chosen(kAmpere, Shape(DType::kBFloat16, 128, 128, 1)), CudaKernel::kMmaSync);
  EXPECT_EQ(chosen(kNoImage, Shape(DType::kBFloat16, 128, 128, 1)), CudaKernel::kMmaSync);
  EXPECT_FALSE(
      ChooseKernel(kNoDevice, Shape(DType::kBFloat16, 128, 128, 1), CudaKernel::kAuto).ok());
  EXPECT_FALSE(ChooseKernel(kH100, Shape(DType::kBFloat16, 300, 64, 1), CudaKernel::kAuto).ok());
}

TEST(CudaKernelChoice, ExplicitKernelRunsOrIsRefusedWithTheReason) {
  absl::StatusOr<KernelPlan> p =
      ChooseKernel(kH100, Shape(DType::kBFloat16, 128, 128, 1), CudaKernel::kMmaSync);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kernel, CudaKernel::kMmaSync);
  EXPECT_TRUE(Eq(p->tile, 128, 128, 1));
  p = ChooseKernel(kAmpere, Shape(DType::kBFloat16, 128, 128, 1), CudaKernel::kWgmmaTma);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(p.status().message().find("wgmma_tma"), std::string::npos) << p.status();
  EXPECT_NE(p.status().message().find("compute capability"), std::string::npos) << p.status();
  p = ChooseKernel(kH100, Shape(DType::kFloat16, 33, 64, 1), CudaKernel::kWgmmaTma);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("multiple of 8"), std::string::npos) << p.status();
  p = ChooseKernel(kH100, Shape(DType::kFloat32, 64, 64, 1), CudaKernel::kMmaSync);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnimplemented);
  p = ChooseKernel(kH100, Shape(DType::kBFloat16, 64, 64, 1), CudaKernel::kSimtFp32);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(CudaKernelChoice, NamesRoundTrip) {
  for (CudaKernel k : {CudaKernel::kAuto, CudaKernel::kWgmmaTma, CudaKernel::kMmaSync,
                       CudaKernel::kSimtFp32}) {
    EXPECT_EQ(ParseCudaKernel(CudaKernelName(k)), k);
  }
  EXPECT_FALSE(ParseCudaKernel("simple").has_value());
}

TEST(CudaKernelChoice, InstanceListFeedsChoiceAndFastHeadDims) {
  EXPECT_TRUE(InstanceCompiled(CudaKernel::kMmaSync, DType::kBFloat16, 256, 64));
  EXPECT_FALSE(InstanceCompiled(CudaKernel::kMmaSync, DType::kBFloat16, 256, 128));
  EXPECT_TRUE(InstanceCompiled(CudaKernel::kWgmmaTma, DType::kFloat16, 128, 128));
  EXPECT_FALSE(InstanceCompiled(CudaKernel::kWgmmaTma, DType::kFloat16, 256, 64));
  EXPECT_EQ(cuda::FastHeadDims(), (std::vector<int32_t>{64, 128}));
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

  absl::StatusOr<cuda::RequestLayout> layout = PlanRequestFor(a, kH100, CudaKernel::kAuto);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->kernel, CudaKernel::kWgmmaTma);  // bf16, D = 40 (padded to 64)
  EXPECT_EQ(layout->tile_rows, 64);                  // 7-row blocks: 64 x 1 head, element checks
  EXPECT_EQ(layout->tile_heads, 1);

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
      absl::StatusOr<cuda::RequestLayout> layout = PlanRequestFor(a, kH100, CudaKernel::kAuto);
      ASSERT_TRUE(layout.ok()) << DTypeName(t) << " d=" << d << ": " << layout.status();
      const CudaKernel expect = t == DType::kFloat32                     ? CudaKernel::kSimtFp32
                                : d % 8 == 0 && d <= 128 ? CudaKernel::kWgmmaTma
                                                         : CudaKernel::kMmaSync;
      EXPECT_EQ(layout->kernel, expect) << DTypeName(t) << " d=" << d;
    }
  }
}

}  // namespace
}  // namespace hbsa::cuda_internal
