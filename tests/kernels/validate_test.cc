// validate_test.cc: one test per rejection rule of SEMANTICS.md "Rejected inputs" as enforced by
// hbsa::Validate: each mutates one field of a valid call and expects INVALID_ARGUMENT with a
// message that names the field. Run must refuse the same inputs on every CPU backend without
// writing any output.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hbsa/attention.h"
#include "test_util.h"

namespace hbsa {
namespace {

// Two sequences (lq 20/9, lk 12/30), Sq = 8, Sk = 5 -> Nq = 3 + 2 = 5, Nk = 3 + 6 = 9.
class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::ProblemSpec s;
    s.dtype = DType::kFloat16;
    s.hq = 4;
    s.hk = 2;
    s.d = 16;
    s.sq = 8;
    s.sk = 5;
    s.lq = {20, 9};
    s.lk = {12, 30};
    std::mt19937_64 rng(1);
    problem_ = testing::MakeProblem(s, rng);
    args_ = problem_.Args(&out_, &lse_);
    ASSERT_EQ(problem_.nq, 5);
    ASSERT_EQ(problem_.nk, 9);
    csr_ = testing::ToCompact(problem_.mask, 2 * problem_.nq, problem_.nk);
  }

  void UseCompact() {
    args_.mask_format = MaskFormat::kCompact;
    args_.dense_mask = {};
    args_.compact_mask.row_offsets = {csr_.row_offsets.data(), csr_.row_offsets.size() * 8};
    args_.compact_mask.col_indices = {csr_.col_indices.data(), csr_.col_indices.size() * 4};
  }

  // Expects Validate and Run (reference and cpu) to refuse args_ naming `field`, output untouched.
  void ExpectRejected(const std::string& field) {
    const absl::Status s = Validate(args_);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(field), std::string_view::npos)
        << "message does not name " << field << ": " << s.message();
    const std::vector<uint8_t> before = out_;
    for (Backend b : {Backend::kReference, Backend::kCpu}) {
      const absl::Status r = hbsa::Run(b, args_);
      EXPECT_EQ(r.code(), absl::StatusCode::kInvalidArgument) << BackendName(b) << ": " << r;
      EXPECT_EQ(r.message(), s.message());
    }
    EXPECT_EQ(before, out_) << "a refused call wrote output";
  }

  testing::Problem problem_;
  testing::CompactMask csr_;
  std::vector<uint8_t> out_;
  std::vector<float> lse_;
  AttentionArgs args_;
  std::vector<int32_t> cu_;           // replacement cu_seqlens
  std::vector<uint8_t> bytes_;        // replacement buffers
};

TEST_F(ValidateTest, ValidCallsPass) {
  EXPECT_TRUE(Validate(args_).ok()) << Validate(args_);
  UseCompact();
  EXPECT_TRUE(Validate(args_).ok()) << Validate(args_);
  EXPECT_TRUE(hbsa::Run(Backend::kCpu, args_).ok());
}

// The backends read q/k/v/out/lse as typed arrays: a buffer that starts off its element size is
// refused (the server stages such tensors, found inside received messages, before they get here).
TEST_F(ValidateTest, MisalignedBuffersAreRefused) {
  bytes_.assign(args_.q.bytes + 1, 0);
  args_.q = {bytes_.data() + 1, args_.q.bytes};
  ExpectRejected("q must start at an address that is a multiple of its 2-byte element size");
}

TEST_F(ValidateTest, DType) {
  args_.dtype = static_cast<DType>(7);
  ExpectRejected("dtype");
}
TEST_F(ValidateTest, NumHeadsKZero) {
  args_.num_heads_k = 0;
  ExpectRejected("num_heads_k");
}
TEST_F(ValidateTest, NumHeadsKTooMany) {
  args_.num_heads_k = kMaxHeads + 1;
  ExpectRejected("num_heads_k");
}
TEST_F(ValidateTest, NumHeadsQZero) {
  args_.num_heads_q = 0;
  ExpectRejected("num_heads_q");
}
TEST_F(ValidateTest, NumHeadsQTooMany) {
  args_.num_heads_q = kMaxHeads + 2;
  ExpectRejected("num_heads_q");
}
TEST_F(ValidateTest, NumHeadsQNotMultipleOfK) {
  args_.num_heads_q = 3;
  ExpectRejected("num_heads_q");
}
TEST_F(ValidateTest, HeadDimZero) {
  args_.head_dim = 0;
  ExpectRejected("head_dim");
}
TEST_F(ValidateTest, HeadDimTooLarge) {
  args_.head_dim = kMaxHeadDim + 1;
  ExpectRejected("head_dim");
}
TEST_F(ValidateTest, QBlockSizeZero) {
  args_.q_block_size = 0;
  ExpectRejected("q_block_size");
}
TEST_F(ValidateTest, QBlockSizeNegative) {
  args_.q_block_size = -16;
  ExpectRejected("q_block_size");
}
TEST_F(ValidateTest, QBlockSizeTooLarge) {
  args_.q_block_size = kMaxBlockSize + 1;
  ExpectRejected("q_block_size");
}
TEST_F(ValidateTest, KBlockSizeZero) {
  args_.k_block_size = 0;
  ExpectRejected("k_block_size");
}
TEST_F(ValidateTest, KBlockSizeTooLarge) {
  args_.k_block_size = kMaxBlockSize + 1;
  ExpectRejected("k_block_size");
}
TEST_F(ValidateTest, SoftmaxScaleNaN) {
  args_.softmax_scale = std::numeric_limits<float>::quiet_NaN();
  ExpectRejected("softmax_scale");
}
TEST_F(ValidateTest, SoftmaxScaleInfinite) {
  args_.softmax_scale = -std::numeric_limits<float>::infinity();
  ExpectRejected("softmax_scale");
}
TEST_F(ValidateTest, BatchNegative) {
  args_.batch = -1;
  ExpectRejected("batch");
}
TEST_F(ValidateTest, TotalQNegative) {
  args_.total_q = -1;
  ExpectRejected("total_q");
}
TEST_F(ValidateTest, TotalKPastInt32) {
  args_.total_k = int64_t{1} << 31;
  ExpectRejected("total_k");
}
TEST_F(ValidateTest, CuSeqlensQMissing) {
  args_.cu_seqlens_q = {};
  ExpectRejected("cu_seqlens_q");
}
TEST_F(ValidateTest, CuSeqlensQWrongSize) {
  args_.cu_seqlens_q.bytes -= 4;
  ExpectRejected("cu_seqlens_q");
}
TEST_F(ValidateTest, CuSeqlensQNotStartingAtZero) {
  cu_ = {1, 20, 29};
  args_.cu_seqlens_q = {cu_.data(), 12};
  ExpectRejected("cu_seqlens_q");
}
TEST_F(ValidateTest, CuSeqlensQDecreasing) {
  cu_ = {0, 30, 29};
  args_.cu_seqlens_q = {cu_.data(), 12};
  ExpectRejected("cu_seqlens_q");
}
TEST_F(ValidateTest, CuSeqlensQLastNotTotal) {
  cu_ = {0, 20, 28};
  args_.cu_seqlens_q = {cu_.data(), 12};
  ExpectRejected("cu_seqlens_q");
}
TEST_F(ValidateTest, CuSeqlensKDecreasing) {
  cu_ = {0, 43, 42};
  args_.cu_seqlens_k = {cu_.data(), 12};
  ExpectRejected("cu_seqlens_k");
}
TEST_F(ValidateTest, CuSeqlensKLastNotTotal) {
  cu_ = {0, 12, 41};
  args_.cu_seqlens_k = {cu_.data(), 12};
  ExpectRejected("cu_seqlens_k");
}
TEST_F(ValidateTest, BatchMismatchBetweenQAndK) {
  // cu_seqlens_k describes three sequences while batch (and cu_seqlens_q) say two.
  cu_ = {0, 12, 30, 42};
  args_.cu_seqlens_k = {cu_.data(), 16};
  ExpectRejected("cu_seqlens_k");
}
TEST_F(ValidateTest, MaskShapeWrong) {
  args_.dense_mask.shape[2] = 8;
  ExpectRejected("block_mask shape");
}
TEST_F(ValidateTest, MaskShapeHeadsWrong) {
  args_.dense_mask.shape[0] = 1;
  ExpectRejected("block_mask shape");
}
TEST_F(ValidateTest, MaskBytesShort) {
  args_.dense_mask.data.bytes -= 1;
  ExpectRejected("block_mask");
}
TEST_F(ValidateTest, MaskMissing) {
  args_.dense_mask.data = {};
  ExpectRejected("block_mask");
}
TEST_F(ValidateTest, DenseMaskPastLimit) {
  // One KV head, 70000 one-row blocks on each side: 4.9e9 entries > 2^32. Nothing is allocated:
  // the limit is checked before any buffer.
  cu_ = {0, 70000};
  args_.batch = 1;
  args_.num_heads_q = args_.num_heads_k = 1;
  args_.total_q = args_.total_k = 70000;
  args_.cu_seqlens_q = args_.cu_seqlens_k = {cu_.data(), 8};
  args_.q_block_size = args_.k_block_size = 1;
  args_.dense_mask.shape[0] = 1;
  args_.dense_mask.shape[1] = args_.dense_mask.shape[2] = 70000;
  ExpectRejected("compact form");
  EXPECT_NE(Validate(args_).message().find("block_mask"), std::string_view::npos);
}
TEST_F(ValidateTest, MaskFormatUnknown) {
  args_.mask_format = static_cast<MaskFormat>(5);
  ExpectRejected("mask_format");
}
TEST_F(ValidateTest, CompactRowOffsetsMissing) {
  UseCompact();
  args_.compact_mask.row_offsets = {};
  ExpectRejected("compact_mask.row_offsets");
}
TEST_F(ValidateTest, CompactRowOffsetsWrongSize) {
  UseCompact();
  args_.compact_mask.row_offsets.bytes -= 8;
  ExpectRejected("compact_mask.row_offsets");
}
TEST_F(ValidateTest, CompactRowOffsetsNotStartingAtZero) {
  UseCompact();
  csr_.row_offsets[0] = 1;
  ExpectRejected("compact_mask.row_offsets");
}
TEST_F(ValidateTest, CompactRowOffsetsDecreasing) {
  UseCompact();
  ASSERT_GT(csr_.row_offsets[1], 0);
  csr_.row_offsets[2] = csr_.row_offsets[1] - 1;
  ExpectRejected("compact_mask.row_offsets");
}
// Issue 12 finding 1: a middle entry past nnz with a last entry equal to nnz. Validate used to
// stop checking at the first entry past nnz, so [0, 2^40, 1] passed (and the mask reader
// crashed), and a middle entry of 4 or 100 let the reader run past col_indices.
TEST_F(ValidateTest, CompactRowOffsetsMiddleEntryPastNnz) {
  const int64_t nnz = static_cast<int64_t>(csr_.col_indices.size());
  for (int64_t middle : {nnz + 1, nnz + 100, int64_t{1} << 40, std::numeric_limits<int64_t>::max()}) {
    SCOPED_TRACE(middle);
    testing::CompactMask saved = csr_;
    csr_.row_offsets[3] = middle;
    UseCompact();
    ExpectRejected("compact_mask.row_offsets entry 3");
    csr_ = saved;
  }
}
// The minimal form of the crashing request: one sequence of 2 query rows and 1 key row,
// blocks 1 x 1, Hq = Hk = 1, D = 1, row_offsets [0, big, 1], col_indices [0].
TEST(ValidateCompact, TwoRowMaskWithMiddleEntryPastNnzIsRefused) {
  const std::vector<int32_t> cu_q = {0, 2}, cu_k = {0, 1};
  std::vector<float> q(2, 1.0f), k(1, 1.0f), v(1, 1.0f), out(2, -7.0f);
  const std::vector<int32_t> cols = {0};
  for (int64_t middle : {int64_t{4}, int64_t{100}, int64_t{1} << 40}) {
    SCOPED_TRACE(middle);
    const std::vector<int64_t> rows = {0, middle, 1};
    AttentionArgs a;
    a.dtype = DType::kFloat32;
    a.total_q = 2;
    a.total_k = 1;
    a.num_heads_q = a.num_heads_k = a.head_dim = 1;
    a.batch = 1;
    a.cu_seqlens_q = {cu_q.data(), cu_q.size() * 4};
    a.cu_seqlens_k = {cu_k.data(), cu_k.size() * 4};
    a.q_block_size = a.k_block_size = 1;
    a.mask_format = MaskFormat::kCompact;
    a.compact_mask.row_offsets = {rows.data(), rows.size() * 8};
    a.compact_mask.col_indices = {cols.data(), cols.size() * 4};
    a.q = {q.data(), q.size() * 4};
    a.k = {k.data(), k.size() * 4};
    a.v = {v.data(), v.size() * 4};
    a.out = {out.data(), out.size() * 4};
    const absl::Status s = Validate(a);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("compact_mask.row_offsets entry 1"), std::string_view::npos) << s;
    for (Backend b : {Backend::kReference, Backend::kCpu}) {
      EXPECT_EQ(hbsa::Run(b, a).code(), absl::StatusCode::kInvalidArgument) << BackendName(b);
    }
    EXPECT_EQ(out, std::vector<float>(2, -7.0f));
  }
}
TEST_F(ValidateTest, CompactRowOffsetsLastNotNnz) {
  UseCompact();
  args_.compact_mask.col_indices.bytes -= 4;
  ExpectRejected("compact_mask.row_offsets");
}
TEST_F(ValidateTest, CompactColIndicesNotInt32) {
  UseCompact();
  args_.compact_mask.col_indices.bytes -= 1;
  ExpectRejected("compact_mask.col_indices");
}
TEST_F(ValidateTest, CompactColIndicesMissing) {
  UseCompact();
  args_.compact_mask.col_indices.data = nullptr;
  ExpectRejected("compact_mask.col_indices");
}
TEST_F(ValidateTest, CompactColIndexOutOfRange) {
  UseCompact();
  csr_.col_indices.back() = 9;  // Nk = 9
  ExpectRejected("compact_mask.col_indices");
}
TEST_F(ValidateTest, CompactColIndexNegative) {
  UseCompact();
  csr_.col_indices.front() = -1;
  ExpectRejected("compact_mask.col_indices");
}
TEST_F(ValidateTest, CompactColIndicesNotIncreasing) {
  // Row 0 with two equal entries.
  csr_.row_offsets.assign(2 * 5 + 1, 2);
  csr_.row_offsets[0] = 0;
  csr_.col_indices = {4, 4};
  UseCompact();
  ExpectRejected("strictly increasing");
}
TEST_F(ValidateTest, QBytesWrong) {
  args_.q.bytes -= 2;
  ExpectRejected("q must hold");
}
TEST_F(ValidateTest, QMissing) {
  args_.q.data = nullptr;
  ExpectRejected("q is missing");
}
TEST_F(ValidateTest, KBytesWrong) {
  args_.k.bytes += 2;
  ExpectRejected("k must hold");
}
TEST_F(ValidateTest, VBytesWrong) {
  args_.v.bytes = 0;
  ExpectRejected("v must hold");
}
TEST_F(ValidateTest, OutBytesWrong) {
  args_.out.bytes -= 2;
  ExpectRejected("out must hold");
}
TEST_F(ValidateTest, LseBytesWrong) {
  args_.lse.bytes -= 4;
  ExpectRejected("lse must hold");
}
TEST_F(ValidateTest, LseBytesWithoutData) {
  args_.lse.data = nullptr;
  ExpectRejected("lse is missing");
}
TEST_F(ValidateTest, BytesThatDoNotMatchTheDType) {
  // fp32 declared for fp16 data: every tensor is half the size the shape implies.
  args_.dtype = DType::kFloat32;
  ExpectRejected("q must hold");
}

}  // namespace
}  // namespace hbsa
