// test_util.cc: see test_util.h.
#include "test_util.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "hbsa/numeric.h"
#include "hbsa/plan.h"

namespace hbsa::testing {
namespace {

void FillRandom(DType dtype, int64_t n, float amplitude, std::mt19937_64& rng,
                std::vector<uint8_t>* out) {
  std::uniform_real_distribution<float> dist(-amplitude, amplitude);
  out->resize(static_cast<size_t>(n) * DTypeSize(dtype));
  for (int64_t e = 0; e < n; ++e) {
    const float f = dist(rng);
    if (dtype == DType::kFloat32) {
      std::memcpy(out->data() + e * 4, &f, 4);
    } else {
      const uint16_t h = dtype == DType::kFloat16 ? FloatToHalf(f) : FloatToBFloat16(f);
      std::memcpy(out->data() + e * 2, &h, 2);
    }
  }
}

void FillNaN(DType dtype, std::vector<uint8_t>* out) {
  if (dtype == DType::kFloat32) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (size_t e = 0; e + 4 <= out->size(); e += 4) std::memcpy(out->data() + e, &nan, 4);
  } else {
    const uint16_t nan = dtype == DType::kFloat16 ? 0x7e00 : 0x7fc0;
    for (size_t e = 0; e + 2 <= out->size(); e += 2) std::memcpy(out->data() + e, &nan, 2);
  }
}

}  // namespace

Problem MakeProblem(const ProblemSpec& spec, std::mt19937_64& rng) {
  Problem p;
  p.spec = spec;
  p.cu_q.push_back(0);
  p.cu_k.push_back(0);
  for (size_t b = 0; b < spec.lq.size(); ++b) {
    p.cu_q.push_back(p.cu_q.back() + spec.lq[b]);
    p.cu_k.push_back(p.cu_k.back() + spec.lk[b]);
  }
  const int32_t batch = static_cast<int32_t>(spec.lq.size());
  p.nq = CountBlocks(batch, p.cu_q.data(), spec.sq);
  p.nk = CountBlocks(batch, p.cu_k.data(), spec.sk);
  FillRandom(spec.dtype, p.total_q() * spec.hq * spec.d, spec.amplitude, rng, &p.q);
  FillRandom(spec.dtype, p.total_k() * spec.hk * spec.d, spec.amplitude, rng, &p.k);
  FillRandom(spec.dtype, p.total_k() * spec.hk * spec.d, spec.amplitude, rng, &p.v);
  std::bernoulli_distribution bit(spec.density), row_off(spec.empty_mask_row_prob);
  p.mask.resize(static_cast<size_t>(spec.hk * p.nq * p.nk));
  for (int64_t r = 0; r < spec.hk * p.nq; ++r) {
    const bool off = row_off(rng);
    for (int64_t j = 0; j < p.nk; ++j) p.mask[r * p.nk + j] = !off && bit(rng) ? 1 : 0;
  }
  return p;
}

AttentionArgs Problem::Args(std::vector<uint8_t>* out, std::vector<float>* lse) const {
  AttentionArgs a;
  a.dtype = spec.dtype;
  a.total_q = total_q();
  a.total_k = total_k();
  a.num_heads_q = spec.hq;
  a.num_heads_k = spec.hk;
  a.head_dim = spec.d;
  a.batch = static_cast<int32_t>(spec.lq.size());
  a.cu_seqlens_q = {cu_q.data(), cu_q.size() * sizeof(int32_t)};
  a.cu_seqlens_k = {cu_k.data(), cu_k.size() * sizeof(int32_t)};
  a.q_block_size = spec.sq;
  a.k_block_size = spec.sk;
  a.causal = spec.causal;
  a.softmax_scale = spec.scale;
  a.mask_format = MaskFormat::kDense;
  a.dense_mask.shape[0] = spec.hk;
  a.dense_mask.shape[1] = nq;
  a.dense_mask.shape[2] = nk;
  a.dense_mask.data = {mask.data(), mask.size()};
  a.q = {q.data(), q.size()};
  a.k = {k.data(), k.size()};
  a.v = {v.data(), v.size()};
  out->assign(static_cast<size_t>(total_q() * spec.hq * spec.d) * DTypeSize(spec.dtype), 0);
  FillNaN(spec.dtype, out);
  a.out = {out->data(), out->size()};
  if (lse != nullptr) {
    lse->assign(static_cast<size_t>(total_q() * spec.hq), std::numeric_limits<float>::quiet_NaN());
    a.lse = {lse->data(), lse->size() * sizeof(float)};
  }
  return a;
}

CompactMask ToCompact(const std::vector<uint8_t>& dense, int64_t rows, int64_t nk) {
  CompactMask c;
  c.row_offsets.push_back(0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < nk; ++j) {
      if (dense[r * nk + j] != 0) c.col_indices.push_back(static_cast<int32_t>(j));
    }
    c.row_offsets.push_back(static_cast<int64_t>(c.col_indices.size()));
  }
  return c;
}

golden::Case AsCase(const Problem& p, const std::vector<float>& out, const std::vector<float>& lse) {
  golden::Case c;
  c.name = "generated";
  c.dtype = p.spec.dtype;
  c.hq = p.spec.hq;
  c.hk = p.spec.hk;
  c.d = p.spec.d;
  c.sq = p.spec.sq;
  c.sk = p.spec.sk;
  c.causal = p.spec.causal;
  c.scale = p.spec.scale;
  c.cu_q = p.cu_q;
  c.cu_k = p.cu_k;
  c.out.descr = "<f4";
  c.out.shape = {p.total_q(), p.spec.hq, p.spec.d};
  c.out.data.resize(out.size() * sizeof(float));
  if (!out.empty()) std::memcpy(c.out.data.data(), out.data(), c.out.data.size());
  c.lse.descr = "<f4";
  c.lse.shape = {p.total_q(), p.spec.hq};
  c.lse.data.resize(lse.size() * sizeof(float));
  if (!lse.empty()) std::memcpy(c.lse.data.data(), lse.data(), c.lse.data.size());
  return c;
}

absl::Status RunWith(Backend backend, const AttentionArgs& args, const std::string& isa,
                     int threads) {
  if (isa.empty()) {
    unsetenv("HBSA_CPU_ISA");
  } else {
    setenv("HBSA_CPU_ISA", isa.c_str(), 1);
  }
  RunOptions options;
  options.num_threads = threads;
  absl::Status s = Run(backend, args, options);
  unsetenv("HBSA_CPU_ISA");
  return s;
}

}  // namespace hbsa::testing
