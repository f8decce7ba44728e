// reference.cc: the float64 oracle. Plain loops over the visit lists, one (row, head) at a
// time, two passes (max, then sum) so nothing clever can hide a bug. Every faster path is
// checked against this; the fast CPU backend also calls ReferencePair for the few pairs its
// fp32 arithmetic cannot represent (backends.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../common/backends.h"
#include "hbsa/numeric.h"

namespace hbsa::internal {
namespace {

double Load(const void* base, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kFloat16: return HalfToFloat(static_cast<const uint16_t*>(base)[index]);
    case DType::kBFloat16: return BFloat16ToFloat(static_cast<const uint16_t*>(base)[index]);
    case DType::kFloat32: return static_cast<const float*>(base)[index];
  }
  return 0.0;
}

void Store(void* base, DType dtype, int64_t index, double value) {
  const float f = static_cast<float>(value);
  switch (dtype) {
    case DType::kFloat16: static_cast<uint16_t*>(base)[index] = FloatToHalf(f); break;
    case DType::kBFloat16: static_cast<uint16_t*>(base)[index] = FloatToBFloat16(f); break;
    case DType::kFloat32: static_cast<float*>(base)[index] = f; break;
  }
}

}  // namespace

void ReferencePair(const AttentionArgs& a, const BlockLayout& layout, const VisitList& visits,
                   const MaskView& mask, int32_t i, int64_t li, int64_t h, ReferenceScratch* s) {
  const int64_t hq = a.num_heads_q, hk_count = a.num_heads_k, d = a.head_dim;
  const int64_t group = hq / hk_count;
  const double scale = EffectiveScale(a);
  const int32_t b = layout.q_block_seq[i];
  const int64_t r = layout.cu_seqlens_q[b] + li;
  const int32_t hk = static_cast<int32_t>(h / group);
  std::vector<int64_t>& keys = s->keys;
  std::vector<double>& scores = s->scores;
  std::vector<double>& acc = s->acc;
  keys.clear();
  scores.clear();
  acc.assign(static_cast<size_t>(d), 0.0);
  const int64_t vr = int64_t{hk} * layout.num_q_blocks + i;
  for (int64_t e = visits.offsets[vr]; e < visits.offsets[vr + 1]; ++e) {
    const int32_t j = visits.k_blocks[e];
    for (int64_t lj = layout.KBlockFirstRow(b, j); lj < layout.KBlockEndRow(b, j); ++lj) {
      if (!ElementAllowed(layout, mask, a.causal, hk, b, li, lj)) continue;
      const int64_t c = layout.cu_seqlens_k[b] + lj;
      double dot = 0;
      for (int64_t x = 0; x < d; ++x) {
        dot += Load(a.q.data, a.dtype, (r * hq + h) * d + x) *
               Load(a.k.data, a.dtype, (c * hk_count + hk) * d + x);
      }
      keys.push_back(c);
      scores.push_back(scale * dot);
    }
  }
  double lse = -std::numeric_limits<double>::infinity();
  if (!keys.empty()) {
    double mx = -std::numeric_limits<double>::infinity();
    for (double sc : scores) mx = std::max(mx, sc);
    double sum = 0;
    for (size_t n = 0; n < keys.size(); ++n) {
      const double p = std::exp(scores[n] - mx);
      sum += p;
      for (int64_t x = 0; x < d; ++x) {
        acc[x] += p * Load(a.v.data, a.dtype, (keys[n] * hk_count + hk) * d + x);
      }
    }
    for (int64_t x = 0; x < d; ++x) acc[x] /= sum;
    lse = mx + std::log(sum);
  }
  for (int64_t x = 0; x < d; ++x) Store(a.out.data, a.dtype, (r * hq + h) * d + x, acc[x]);
  if (a.lse.data != nullptr) static_cast<float*>(a.lse.data)[r * hq + h] = static_cast<float>(lse);
}

absl::Status RunReference(const AttentionArgs& a, const BlockLayout& layout,
                          const VisitList& visits, const std::function<bool()>& should_stop) {
  const MaskView mask = MakeMaskView(a, layout);
  ReferenceScratch scratch;
  for (int32_t i = 0; i < layout.num_q_blocks; ++i) {
    for (int64_t li = layout.QBlockFirstRow(i); li < layout.QBlockEndRow(i); ++li) {
      if (should_stop && should_stop()) {
        return absl::CancelledError("backend reference: stopped before the end (should_stop)");
      }
      for (int64_t h = 0; h < a.num_heads_q; ++h) {
        ReferencePair(a, layout, visits, mask, i, li, h, &scratch);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace hbsa::internal
