// bench_workload.cc: see bench_workload.h.
#include "bench_workload.h"

#include <cstring>
#include <random>

#include "absl/strings/str_format.h"
#include "hbsa/numeric.h"
#include "hbsa/plan.h"

namespace hbsa::tools {
namespace {

// Stores `n` uniform values in [-1, 1) in `dtype` storage.
golden::NpyArray RandomTensor(DType dtype, std::vector<int64_t> shape, std::mt19937_64& rng) {
  golden::NpyArray a;
  a.shape = std::move(shape);
  const int64_t n = a.shape[0] * a.shape[1] * a.shape[2];
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  a.data.resize(static_cast<size_t>(n) * DTypeSize(dtype));
  for (int64_t i = 0; i < n; ++i) {
    const float x = u(rng);
    switch (dtype) {
      case DType::kFloat16: a.descr = "<f2"; reinterpret_cast<uint16_t*>(a.data.data())[i] = FloatToHalf(x); break;
      case DType::kBFloat16: a.descr = "<u2"; reinterpret_cast<uint16_t*>(a.data.data())[i] = FloatToBFloat16(x); break;
      case DType::kFloat32: a.descr = "<f4"; reinterpret_cast<float*>(a.data.data())[i] = x; break;
    }
  }
  return a;
}

absl::Status Finish(Workload* w, const client::RequestOptions& options) {
  std::vector<uint8_t> out_scratch;
  const AttentionArgs args = w->data.MakeArgs(&out_scratch, nullptr);
  absl::StatusOr<v1::AttendRequest> req = client::BuildRequest(args, options);
  if (!req.ok()) return req.status();
  w->request = std::make_shared<const v1::AttendRequest>(*std::move(req));
  w->allowed_pairs = AllowedPairs(args);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Workload>> MakeSyntheticWorkload(
    const SyntheticSpec& s, const client::RequestOptions& options) {
  if (s.batch < 1 || s.seqlen_q < 1 || s.seqlen_k < 1 || s.heads_q < 1 || s.heads_k < 1 ||
      s.head_dim < 1 || s.q_block_size < 1 || s.k_block_size < 1) {
    return absl::InvalidArgumentError("synthetic shape: every size must be >= 1");
  }
  if (!(s.density > 0 && s.density <= 1)) {
    return absl::InvalidArgumentError("--density must be in (0, 1]");
  }
  auto w = std::make_unique<Workload>();
  golden::Case& c = w->data;
  c.name = "synthetic";
  c.dtype = s.dtype;
  c.hq = s.heads_q;
  c.hk = s.heads_k;
  c.d = s.head_dim;
  c.sq = s.q_block_size;
  c.sk = s.k_block_size;
  c.causal = s.causal;
  for (int32_t b = 0; b <= s.batch; ++b) {
    c.cu_q.push_back(b * s.seqlen_q);
    c.cu_k.push_back(b * s.seqlen_k);
  }
  std::mt19937_64 rng(s.seed);
  c.q = RandomTensor(s.dtype, {c.total_q(), s.heads_q, s.head_dim}, rng);
  c.k = RandomTensor(s.dtype, {c.total_k(), s.heads_k, s.head_dim}, rng);
  c.v = RandomTensor(s.dtype, {c.total_k(), s.heads_k, s.head_dim}, rng);
  // Mask: Bernoulli(density) over same-sequence block pairs, via the kernels' layout; the last
  // key block of each query block's sequence is forced on so no row is empty by accident (it
  // is also the one the causal rule leaves visible longest).
  const BlockLayoutStorage layout(s.batch, c.cu_q.data(), c.cu_k.data(), s.q_block_size,
                                  s.k_block_size);
  const BlockLayout& l = layout.view();
  c.block_mask.descr = "|u1";
  c.block_mask.shape = {s.heads_k, l.num_q_blocks, l.num_k_blocks};
  c.block_mask.data.assign(static_cast<size_t>(s.heads_k) * l.num_q_blocks * l.num_k_blocks, 0);
  std::bernoulli_distribution on(s.density);
  for (int32_t hk = 0; hk < s.heads_k; ++hk) {
    for (int32_t i = 0; i < l.num_q_blocks; ++i) {
      const int32_t b = layout.q_block_seq()[i];
      const int32_t j0 = layout.k_block_start()[b], j1 = layout.k_block_start()[b + 1];
      uint8_t* row = &c.block_mask.data[(static_cast<size_t>(hk) * l.num_q_blocks + i) * l.num_k_blocks];
      for (int32_t j = j0; j < j1; ++j) row[j] = on(rng) ? 1 : 0;
      if (j1 > j0) row[j1 - 1] = 1;
    }
  }
  w->description = absl::StrFormat(
      "synthetic %s B=%d Lq=%d Lk=%d Hq=%d Hk=%d D=%d Sq=%d Sk=%d density=%.2f %s mask=%s",
      DTypeName(s.dtype), s.batch, s.seqlen_q, s.seqlen_k, s.heads_q, s.heads_k, s.head_dim,
      s.q_block_size, s.k_block_size, s.density, s.causal ? "causal" : "non-causal",
      client::MaskFormName(options.mask_form));
  if (absl::Status st = Finish(w.get(), options); !st.ok()) return st;
  return w;
}

absl::StatusOr<std::unique_ptr<Workload>> LoadCaseWorkload(const std::string& dir,
                                                           const client::RequestOptions& options) {
  absl::StatusOr<golden::Case> c = golden::LoadCase(dir);
  if (!c.ok()) return c.status();
  auto w = std::make_unique<Workload>();
  w->data = *std::move(c);
  w->has_expected = true;
  w->description = absl::StrFormat("case %s (%s, Hq=%d Hk=%d D=%d Sq=%d Sk=%d) mask=%s",
                                   w->data.name, DTypeName(w->data.dtype), w->data.hq, w->data.hk,
                                   w->data.d, w->data.sq, w->data.sk,
                                   client::MaskFormName(options.mask_form));
  if (absl::Status st = Finish(w.get(), options); !st.ok()) return st;
  return w;
}

absl::Status ComputeExpected(Workload* w) {
  if (w->has_expected) return absl::OkStatus();
  golden::Case& c = w->data;
  std::vector<uint8_t> out;
  std::vector<float> lse;
  const AttentionArgs args = c.MakeArgs(&out, &lse);
  // The fast CPU backend, not the float64 oracle: the oracle needs minutes for the large
  // requests a load test sends, and the CPU backend is itself held to the oracle by the tests.
  if (absl::Status s = Run(Backend::kCpu, args); !s.ok()) return s;
  const std::vector<float> out_f = golden::ToFloat(c.dtype, out.data(), c.total_q() * c.hq * c.d);
  c.out.descr = "<f4";
  c.out.shape = {c.total_q(), c.hq, c.d};
  c.out.data.resize(out_f.size() * sizeof(float));
  std::memcpy(c.out.data.data(), out_f.data(), c.out.data.size());
  c.lse.descr = "<f4";
  c.lse.shape = {c.total_q(), c.hq};
  c.lse.data.resize(lse.size() * sizeof(float));
  std::memcpy(c.lse.data.data(), lse.data(), c.lse.data.size());
  w->has_expected = true;
  return absl::OkStatus();
}

}  // namespace hbsa::tools
