// tests/fuzz/mask_fuzz.cc: libFuzzer target for the mask converters and the mask compiler, in all
// three wire forms (dense bits, per-sequence bits, compact CSR).
//
// Input layout (make_seeds.cc writes the golden cases in it):
//   byte 0      form: 0 dense, 1 per-sequence, 2 compact (mod 3)
//   byte 1      B = byte % 7 sequences
//   byte 2, 3   Sq = 1 + byte % 16, Sk = 1 + byte % 16
//   byte 4      Hk = 1 + byte % 3
//   byte 5      bit 0 causal; bit 1 (compact) raw row_offsets; bit 2 (per-sequence) sizes from
//               the input instead of the exact ones
//   2B bytes    Lq_b, Lk_b (0..255 each)
//   the rest    the mask payload in the chosen form:
//               dense: the bit-packed [Hk, Nq, Nk] mask as is;
//               per-sequence: entry b takes its exact ceil(Hk nq_b nk_b / 8) bytes (or, with
//                 bit 2, a length byte then that many bytes), what is missing is missing;
//               compact: structured (row lengths byte % 4, columns byte % (Nk + 2) - 1) or, with
//                 bit 1, raw little-endian int64 row_offsets [Hk Nq + 1] then int32 columns.
// Properties: the server converters either refuse with INVALID_ARGUMENT or produce a mask that
// hbsa::Validate accepts; hbsa::Validate never lets through a CSR the compiler would read past
// (ASan); and the visit lists compiled from a mask in compact form equal those compiled from the
// same mask written out densely (the two MaskView paths of layout.h agree). Small accepted
// problems also run the CPU backend against the float64 reference on bounded data.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "fuzz_check.h"
#include "hbsa/attention.h"
#include "hbsa/golden.h"
#include "hbsa/plan.h"
#include "mask_convert.h"

namespace {

using hbsa::AttentionArgs;
using hbsa::MaskFormat;

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  uint8_t Byte() { return n_ > 0 ? (--n_, *p_++) : 0; }
  std::string Take(size_t k) {
    k = k < n_ ? k : n_;
    std::string s(reinterpret_cast<const char*>(p_), k);
    p_ += k;
    n_ -= k;
    return s;
  }
  std::string Rest() { return Take(n_); }
  size_t left() const { return n_; }

 private:
  const uint8_t* p_;
  size_t n_;
};

struct Problem {
  int32_t batch = 0, sq = 1, sk = 1, hk = 1;
  bool causal = false;
  std::vector<int32_t> cu_q, cu_k;
};

AttentionArgs BaseArgs(const Problem& p, int32_t hq, int32_t d) {
  AttentionArgs a;
  a.dtype = hbsa::DType::kFloat32;
  a.total_q = p.cu_q.back();
  a.total_k = p.cu_k.back();
  a.num_heads_q = hq;
  a.num_heads_k = p.hk;
  a.head_dim = d;
  a.batch = p.batch;
  a.cu_seqlens_q = {p.cu_q.data(), p.cu_q.size() * 4};
  a.cu_seqlens_k = {p.cu_k.data(), p.cu_k.size() * 4};
  a.q_block_size = p.sq;
  a.k_block_size = p.sk;
  a.causal = p.causal;
  return a;
}

void SetCompact(AttentionArgs* a, const hbsa::server::CompactMask& m) {
  a->mask_format = MaskFormat::kCompact;
  a->compact_mask.row_offsets = {m.row_offsets.data(), m.row_offsets.size() * 8};
  a->compact_mask.col_indices = {m.col_indices.data(), m.col_indices.size() * 4};
}

void SetDense(AttentionArgs* a, const std::vector<uint8_t>& dense, int64_t nq, int64_t nk) {
  a->mask_format = MaskFormat::kDense;
  a->dense_mask.shape[0] = a->num_heads_k;
  a->dense_mask.shape[1] = nq;
  a->dense_mask.shape[2] = nk;
  a->dense_mask.data = {dense.data(), dense.size()};
}

void ExpectSameVisits(const hbsa::VisitList& x, const hbsa::VisitList& y, const char* what) {
  HBSA_FUZZ_CHECK(x.offsets == y.offsets, "%s: visit offsets differ", what);
  HBSA_FUZZ_CHECK(x.k_blocks == y.k_blocks, "%s: visited key blocks differ", what);
  HBSA_FUZZ_CHECK(x.coverage == y.coverage, "%s: visit coverage differs", what);
}

// `a` with zero q/k/v/out of the right sizes in *buffers, so that hbsa::Validate can run.
AttentionArgs WithPlaceholders(AttentionArgs a, std::vector<float>* buffers) {
  const size_t q = static_cast<size_t>(a.total_q * a.num_heads_q * a.head_dim);
  const size_t kv = static_cast<size_t>(a.total_k * a.num_heads_k * a.head_dim);
  buffers->assign(q * 2 + kv * 2, 0.0f);
  a.q = {buffers->data(), q * 4};
  a.k = {buffers->data() + q, kv * 4};
  a.v = {buffers->data() + q + kv, kv * 4};
  a.out = {buffers->data() + q + 2 * kv, q * 4};
  return a;
}

// Validates `a` (which must pass) and returns its visit list.
hbsa::VisitList Compile(AttentionArgs a, std::vector<float>* buffers, const char* what) {
  a = WithPlaceholders(a, buffers);
  const absl::Status s = hbsa::Validate(a);
  HBSA_FUZZ_CHECK(s.ok(), "%s: a mask the converters produced was refused: %s", what,
                  s.ToString().c_str());
  hbsa::BlockLayoutStorage layout(a);
  return hbsa::CompileVisitList(layout.view(), hbsa::MakeMaskView(a, layout.view()), a.causal,
                                a.num_heads_k);
}

// The CSR written out densely by the plainest loop (every listed entry, cross-sequence ones
// too: the compiler must ignore those in both forms).
std::vector<uint8_t> Densify(const hbsa::server::CompactMask& m, int64_t nk) {
  const int64_t rows = static_cast<int64_t>(m.row_offsets.size()) - 1;
  std::vector<uint8_t> dense(static_cast<size_t>(rows * nk), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t e = m.row_offsets[r]; e < m.row_offsets[r + 1]; ++e) {
      dense[static_cast<size_t>(r * nk + m.col_indices[e])] = 1;
    }
  }
  return dense;
}

// Small problems: the CPU backend against the reference, D = 3, Hq = 2 Hk, bounded data.
void RunBoth(const AttentionArgs& mask_args, uint32_t seed) {
  AttentionArgs a = mask_args;
  a.num_heads_q = 2 * a.num_heads_k;
  a.head_dim = 3;
  const int64_t qn = a.total_q * a.num_heads_q * a.head_dim, kn = a.total_k * a.num_heads_k * a.head_dim;
  if (a.total_q * a.total_k * a.num_heads_q > 200000) return;
  std::vector<float> q(qn), k(kn), v(kn), out_c(qn), out_r(qn), lse_c(a.total_q * a.num_heads_q),
      lse_r(lse_c.size());
  for (float* x : {q.data(), k.data(), v.data()}) {
    const int64_t n = x == q.data() ? qn : kn;
    for (int64_t i = 0; i < n; ++i) {
      seed = seed * 1664525u + 1013904223u;
      x[i] = static_cast<float>(static_cast<int32_t>(seed >> 8) % 2001 - 1000) / 500.0f;
    }
  }
  a.q = {q.data(), q.size() * 4};
  a.k = {k.data(), k.size() * 4};
  a.v = {v.data(), v.size() * 4};
  a.out = {out_c.data(), out_c.size() * 4};
  a.lse = {lse_c.data(), lse_c.size() * 4};
  hbsa::RunOptions o;
  o.num_threads = 1;
  HBSA_FUZZ_CHECK(hbsa::Run(hbsa::Backend::kCpu, a, o).ok(), "cpu backend failed");
  a.out = {out_r.data(), out_r.size() * 4};
  a.lse = {lse_r.data(), lse_r.size() * 4};
  HBSA_FUZZ_CHECK(hbsa::Run(hbsa::Backend::kReference, a).ok(), "reference failed");
  for (int64_t i = 0; i < qn; ++i) {
    HBSA_FUZZ_CHECK(std::fabs(out_c[i] - out_r[i]) <= 1e-4f + 1e-4f * std::fabs(out_r[i]),
                    "out %lld: cpu %g reference %g", static_cast<long long>(i), out_c[i], out_r[i]);
  }
  for (size_t i = 0; i < lse_c.size(); ++i) {
    const bool same = lse_r[i] == -INFINITY ? lse_c[i] == -INFINITY
                                            : std::fabs(lse_c[i] - lse_r[i]) <= 1e-5f * std::fmax(1.0f, std::fabs(lse_r[i]));
    HBSA_FUZZ_CHECK(same, "lse %zu: cpu %g reference %g", i, lse_c[i], lse_r[i]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r(data, size);
  Problem p;
  const int form = r.Byte() % 3;
  p.batch = r.Byte() % 7;
  p.sq = 1 + r.Byte() % 16;
  p.sk = 1 + r.Byte() % 16;
  p.hk = 1 + r.Byte() % 3;
  const uint8_t flags = r.Byte();
  p.causal = (flags & 1) != 0;
  p.cu_q = {0};
  p.cu_k = {0};
  for (int32_t b = 0; b < p.batch; ++b) {
    p.cu_q.push_back(p.cu_q.back() + r.Byte());
    p.cu_k.push_back(p.cu_k.back() + r.Byte());
  }
  const hbsa::BlockLayoutStorage storage(p.batch, p.cu_q.data(), p.cu_k.data(), p.sq, p.sk);
  const hbsa::BlockLayout& layout = storage.view();
  const int64_t nq = layout.num_q_blocks, nk = layout.num_k_blocks;
  const int64_t rows = p.hk * nq;
  AttentionArgs a = BaseArgs(p, p.hk, 1);
  std::vector<float> buffers;
  uint32_t seed = static_cast<uint32_t>(size);

  if (form == 0) {  // dense bits: the unpacked bytes and the converted CSR must compile alike
    const std::string bits = r.Rest();
    const int64_t entries = rows * nk;
    if (!hbsa::server::CheckPackedBits(bits, entries, "dense_mask.bits").ok()) return 0;
    const std::vector<uint8_t> dense = hbsa::server::UnpackBits(bits, entries);
    const hbsa::server::CompactMask csr = hbsa::server::DenseBitsToCompact(bits, layout, p.hk);
    AttentionArgs ad = a, ac = a;
    SetDense(&ad, dense, nq, nk);
    SetCompact(&ac, csr);
    ExpectSameVisits(Compile(ad, &buffers, "dense"), Compile(ac, &buffers, "dense as CSR"), "dense");
    RunBoth(ac, seed);
    return 0;
  }
  if (form == 1) {  // per-sequence bits
    std::vector<std::string> owned;
    for (int32_t b = 0; b < p.batch; ++b) {
      const int64_t nq_b = layout.q_block_start[b + 1] - layout.q_block_start[b];
      const int64_t nk_b = layout.k_block_start[b + 1] - layout.k_block_start[b];
      const size_t exact = static_cast<size_t>((p.hk * nq_b * nk_b + 7) / 8);
      owned.push_back(r.Take((flags & 4) != 0 ? r.Byte() : exact));
    }
    const std::vector<absl::string_view> seqs(owned.begin(), owned.end());
    absl::StatusOr<hbsa::server::CompactMask> csr = hbsa::server::PerSequenceToCompact(seqs, layout, p.hk);
    if (!csr.ok()) {
      HBSA_FUZZ_CHECK(csr.status().code() == absl::StatusCode::kInvalidArgument, "%s",
                      csr.status().ToString().c_str());
      return 0;
    }
    AttentionArgs ac = a, ad = a;
    SetCompact(&ac, *csr);
    const std::vector<uint8_t> dense = Densify(*csr, nk);
    SetDense(&ad, dense, nq, nk);
    ExpectSameVisits(Compile(ac, &buffers, "per-sequence"), Compile(ad, &buffers, "per-sequence dense"),
                     "per-sequence");
    RunBoth(ac, seed);
    return 0;
  }
  // compact CSR, straight from the input: hbsa::Validate is the only guard.
  hbsa::server::CompactMask csr;
  if ((flags & 2) != 0) {
    for (int64_t i = 0; i <= rows; ++i) {
      int64_t x = 0;
      const std::string b = r.Take(8);
      std::memcpy(&x, b.data(), b.size());
      csr.row_offsets.push_back(x);
    }
    while (r.left() >= 4) {
      int32_t c = 0;
      const std::string b = r.Take(4);
      std::memcpy(&c, b.data(), 4);
      csr.col_indices.push_back(c);
    }
  } else {
    csr.row_offsets.push_back(0);
    for (int64_t i = 0; i < rows; ++i) {
      const int n = r.Byte() % 4;
      for (int e = 0; e < n; ++e) csr.col_indices.push_back(static_cast<int32_t>(r.Byte() % (nk + 2)) - 1);
      csr.row_offsets.push_back(static_cast<int64_t>(csr.col_indices.size()));
    }
  }
  AttentionArgs ac = a;
  SetCompact(&ac, csr);
  const absl::Status s = hbsa::Validate(WithPlaceholders(ac, &buffers));
  if (!s.ok()) {
    HBSA_FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, "%s", s.ToString().c_str());
    return 0;
  }
  AttentionArgs ad = a;
  const std::vector<uint8_t> dense = Densify(csr, nk);
  SetDense(&ad, dense, nq, nk);
  ExpectSameVisits(Compile(ac, &buffers, "compact"), Compile(ad, &buffers, "compact dense"), "compact");
  RunBoth(ac, seed);
  return 0;
}
