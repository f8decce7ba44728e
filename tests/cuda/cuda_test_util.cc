// cuda_test_util.cc: see cuda_test_util.h.
#include "cuda_test_util.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hbsa/cuda.h"
#include "hbsa/numeric.h"
#include "hbsa/plan.h"

namespace hbsa::testing {
namespace {

golden::NpyArray MakeArray(const std::string& descr, std::vector<int64_t> shape, size_t item) {
  golden::NpyArray a;
  a.descr = descr;
  a.shape = std::move(shape);
  int64_t n = 1;
  for (int64_t s : a.shape) n *= s;
  a.data.resize(size_t(n) * item);
  return a;
}

std::string DescrOf(DType t) {
  return t == DType::kFloat32 ? "<f4" : t == DType::kFloat16 ? "<f2" : "<u2";
}

void FillRandom(golden::NpyArray* a, DType t, std::mt19937_64* rng) {
  std::uniform_real_distribution<float> dist(-2.f, 2.f);
  const int64_t n = a->NumElements();
  for (int64_t e = 0; e < n; ++e) {
    const float x = dist(*rng);
    if (t == DType::kFloat32) {
      std::memcpy(a->data.data() + e * 4, &x, 4);
    } else {
      const uint16_t h = t == DType::kFloat16 ? FloatToHalf(x) : FloatToBFloat16(x);
      std::memcpy(a->data.data() + e * 2, &h, 2);
    }
  }
}

// Compact (CSR) form of a dense [rows, nk] mask.
void ToCompact(const golden::NpyArray& dense, int64_t rows, int64_t nk,
               std::vector<int64_t>* offsets, std::vector<int32_t>* cols) {
  offsets->assign(1, 0);
  cols->clear();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < nk; ++j) {
      if (dense.data[r * nk + j]) cols->push_back(static_cast<int32_t>(j));
    }
    offsets->push_back(static_cast<int64_t>(cols->size()));
  }
}

}  // namespace

std::string ProblemSpec::Describe() const {
  return absl::StrCat(std::string(DTypeName(dtype)), " lq=[", absl::StrJoin(lq, ","), "] lk=[",
                      absl::StrJoin(lk, ","), "] hq=", hq, " hk=", hk, " d=", d, " blocks=", sq,
                      "x", sk, causal ? " causal" : "", " density=", density,
                      scale ? absl::StrCat(" scale=", *scale) : "",
                      compact_mask ? " compact" : "", " seed=", seed);
}

absl::Status FillReference(golden::Case* c) {
  const int64_t nq_el = c->total_q() * c->hq * c->d, nk_el = c->total_k() * c->hk * c->d;
  std::vector<float> q = golden::ToFloat(c->dtype, c->q.data.data(), nq_el);
  std::vector<float> k = golden::ToFloat(c->dtype, c->k.data.data(), nk_el);
  std::vector<float> v = golden::ToFloat(c->dtype, c->v.data.data(), nk_el);
  c->out = MakeArray("<f4", {c->total_q(), c->hq, c->d}, 4);
  c->lse = MakeArray("<f4", {c->total_q(), c->hq}, 4);
  AttentionArgs a;
  a.dtype = DType::kFloat32;
  a.total_q = c->total_q();
  a.total_k = c->total_k();
  a.num_heads_q = c->hq;
  a.num_heads_k = c->hk;
  a.head_dim = c->d;
  a.batch = c->batch();
  a.cu_seqlens_q = {c->cu_q.data(), c->cu_q.size() * 4};
  a.cu_seqlens_k = {c->cu_k.data(), c->cu_k.size() * 4};
  a.q_block_size = c->sq;
  a.k_block_size = c->sk;
  a.causal = c->causal;
  a.softmax_scale = c->scale;
  a.dense_mask.shape[0] = c->block_mask.shape[0];
  a.dense_mask.shape[1] = c->block_mask.shape[1];
  a.dense_mask.shape[2] = c->block_mask.shape[2];
  a.dense_mask.data = {c->block_mask.data.data(), c->block_mask.data.size()};
  a.q = {q.data(), q.size() * 4};
  a.k = {k.data(), k.size() * 4};
  a.v = {v.data(), v.size() * 4};
  a.out = {c->out.data.data(), c->out.data.size()};
  a.lse = {c->lse.data.data(), c->lse.data.size()};
  return Run(Backend::kReference, a);
}

golden::Case MakeProblem(const ProblemSpec& s) {
  std::mt19937_64 rng(s.seed);
  golden::Case c;
  c.name = s.Describe();
  c.dtype = s.dtype;
  c.hq = s.hq;
  c.hk = s.hk;
  c.d = s.d;
  c.sq = s.sq;
  c.sk = s.sk;
  c.causal = s.causal;
  c.scale = s.scale;
  c.cu_q.assign(1, 0);
  c.cu_k.assign(1, 0);
  for (size_t b = 0; b < s.lq.size(); ++b) {
    c.cu_q.push_back(c.cu_q.back() + s.lq[b]);
    c.cu_k.push_back(c.cu_k.back() + s.lk[b]);
  }
  const size_t item = DTypeSize(s.dtype);
  c.q = MakeArray(DescrOf(s.dtype), {c.total_q(), s.hq, s.d}, item);
  c.k = MakeArray(DescrOf(s.dtype), {c.total_k(), s.hk, s.d}, item);
  c.v = MakeArray(DescrOf(s.dtype), {c.total_k(), s.hk, s.d}, item);
  FillRandom(&c.q, s.dtype, &rng);
  FillRandom(&c.k, s.dtype, &rng);
  FillRandom(&c.v, s.dtype, &rng);
  const int64_t nq = CountBlocks(c.batch(), c.cu_q.data(), s.sq);
  const int64_t nk = CountBlocks(c.batch(), c.cu_k.data(), s.sk);
  c.block_mask = MakeArray("|u1", {s.hk, nq, nk}, 1);
  std::bernoulli_distribution bit(s.density);
  for (auto& m : c.block_mask.data) m = bit(rng) ? 1 : 0;
  (void)FillReference(&c);
  return c;
}

CudaResult RunCudaOn(const golden::Case& c, bool with_lse, bool compact, CudaKernel kernel) {
  CudaResult r;
  r.out.resize(size_t(c.total_q()) * c.hq * c.d * DTypeSize(c.dtype));
  // NaN in every dtype: 0xffff is a NaN for fp16 and bf16, 0xffffffff for fp32.
  std::memset(r.out.data(), 0xff, r.out.size());
  AttentionArgs a = c.MakeArgs(&r.out, with_lse ? &r.lse : nullptr);
  if (with_lse) std::fill(r.lse.begin(), r.lse.end(), std::numeric_limits<float>::quiet_NaN());
  a.out = {r.out.data(), r.out.size()};
  if (with_lse) a.lse = {r.lse.data(), r.lse.size() * sizeof(float)};
  std::vector<int64_t> offsets;
  std::vector<int32_t> cols;
  if (compact) {
    const int64_t rows = c.block_mask.shape[0] * c.block_mask.shape[1];
    ToCompact(c.block_mask, rows, c.block_mask.shape[2], &offsets, &cols);
    a.mask_format = MaskFormat::kCompact;
    a.compact_mask.row_offsets = {offsets.data(), offsets.size() * sizeof(int64_t)};
    a.compact_mask.col_indices = {cols.data(), cols.size() * sizeof(int32_t)};
  }
  RunOptions options;
  options.cuda_kernel = kernel;
  r.status = Run(Backend::kCuda, a, options);
  return r;
}

std::vector<CudaKernel> CudaKernelsFor(const golden::Case& c) {
  std::vector<uint8_t> out(size_t(c.total_q()) * c.hq * c.d * DTypeSize(c.dtype));
  const AttentionArgs a = c.MakeArgs(&out, nullptr);
  std::vector<CudaKernel> kernels;
  const absl::StatusOr<cuda::RequestLayout> chosen = cuda::PlanRequest(a);
  if (!chosen.ok()) return kernels;
  kernels.push_back(chosen->kernel);
  for (CudaKernel k : {CudaKernel::kWgmmaTma, CudaKernel::kMmaSync, CudaKernel::kSimtFp32}) {
    if (k != chosen->kernel && cuda::PlanRequest(a, cuda::PlanOptions{k}).ok()) {
      kernels.push_back(k);
    }
  }
  return kernels;
}

}  // namespace hbsa::testing
