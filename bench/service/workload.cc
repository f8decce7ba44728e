// bench/service/workload.cc: see workload.h.
#include "workload.h"

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"

namespace hbsa::bench {
namespace {

struct Shape {
  int32_t tokens, hq, hk, d, block;
  bool causal, diagonal;
  bool empty = false;  // no block on: the kernel only writes zeros (isolates the data path)
};

void FillBf16(std::vector<uint16_t>* v, size_t n, uint64_t seed) {
  v->resize(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // bf16 in [-1, 1): sign, exponent 118..126, 7 mantissa bits.
    const uint16_t sign = static_cast<uint16_t>((x >> 63) << 15);
    const uint16_t exp = static_cast<uint16_t>(118 + (x >> 40) % 9);
    (*v)[i] = static_cast<uint16_t>(sign | (exp << 7) | ((x >> 20) & 0x7f));
  }
}

std::unique_ptr<BenchRequest> Build(const std::string& name, const Shape& s) {
  auto r = std::make_unique<BenchRequest>();
  r->name = name;
  const size_t qn = size_t(s.tokens) * s.hq * s.d, kn = size_t(s.tokens) * s.hk * s.d;
  FillBf16(&r->q, qn, 1);
  FillBf16(&r->k, kn, 2);
  FillBf16(&r->v, kn, 3);
  r->cu_q = {0, s.tokens};
  r->cu_k = {0, s.tokens};
  const int32_t nb = (s.tokens + s.block - 1) / s.block;
  r->row_offsets.push_back(0);
  for (int32_t hk = 0; hk < s.hk; ++hk) {
    for (int32_t i = 0; i < nb; ++i) {
      if (s.empty) {
      } else if (s.diagonal) {
        r->col_indices.push_back(i);
      } else {
        for (int32_t j = 0; j < nb; ++j) r->col_indices.push_back(j);
      }
      r->row_offsets.push_back(static_cast<int64_t>(r->col_indices.size()));
    }
  }
  r->out.assign(qn, 0);
  AttentionArgs& a = r->args;
  a.dtype = DType::kBFloat16;
  a.total_q = a.total_k = s.tokens;
  a.num_heads_q = s.hq;
  a.num_heads_k = s.hk;
  a.head_dim = s.d;
  a.batch = 1;
  a.cu_seqlens_q = {r->cu_q.data(), r->cu_q.size() * 4};
  a.cu_seqlens_k = {r->cu_k.data(), r->cu_k.size() * 4};
  a.q_block_size = a.k_block_size = s.block;
  a.causal = s.causal;
  a.mask_format = MaskFormat::kCompact;
  a.compact_mask.row_offsets = {r->row_offsets.data(), r->row_offsets.size() * 8};
  a.compact_mask.col_indices = {r->col_indices.data(), r->col_indices.size() * 4};
  a.q = {r->q.data(), qn * 2};
  a.k = {r->k.data(), kn * 2};
  a.v = {r->v.data(), kn * 2};
  a.out = {r->out.data(), qn * 2};
  r->input_bytes = static_cast<int64_t>((qn + 2 * kn) * 2);
  r->output_bytes = static_cast<int64_t>(qn * 2);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BenchRequest>> MakeBenchRequest(const std::string& name) {
  if (name == "small128") return Build(name, {128, 8, 8, 128, 128, false, false});
  if (name == "req3mb") return Build(name, {512, 8, 8, 128, 128, false, false});
  if (name == "req200mb") return Build(name, {16384, 32, 8, 128, 128, true, false});
  absl::string_view rest = name;
  int64_t bytes = 0;
  const int64_t per_token = 3 * 8 * 128 * 2;
  if (absl::ConsumePrefix(&rest, "void") && absl::SimpleAtoi(rest, &bytes) && bytes > 0) {
    const int64_t tokens = std::max<int64_t>(1, (bytes + per_token / 2) / per_token);
    return Build(name, {static_cast<int32_t>(tokens), 8, 8, 128, 128, false, false, true});
  }
  if (absl::ConsumePrefix(&rest, "sweep") && absl::SimpleAtoi(rest, &bytes) && bytes > 0) {
    const int64_t tokens = std::max<int64_t>(1, (bytes + per_token / 2) / per_token);
    return Build(name, {static_cast<int32_t>(tokens), 8, 8, 128, 128, false, true});
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown request \"", name, "\": small128, req3mb, req200mb, sweep<BYTES> or void<BYTES>"));
}

absl::StatusOr<std::vector<int64_t>> ParseSizes(const std::string& list) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    int64_t mult = 1;
    if (absl::ConsumeSuffix(&part, "K")) mult = 1 << 10;
    else if (absl::ConsumeSuffix(&part, "M")) mult = 1 << 20;
    else if (absl::ConsumeSuffix(&part, "G")) mult = 1 << 30;
    int64_t x = 0;
    if (!absl::SimpleAtoi(part, &x) || x <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad size \"", part, "\" in ", list));
    }
    out.push_back(x * mult);
  }
  return out;
}

}  // namespace hbsa::bench
