// reference.cc: the float64 oracle. Plain loops over the visit lists, one (row, head) at a
// time, two passes (max, then sum) so nothing clever can hide a bug. Every faster path is
// checked against this.
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

absl::Status RunReference(const AttentionArgs& a, const BlockLayout& layout,
                          const VisitList& visits) {
  const int64_t hq = a.num_heads_q, hk_count = a.num_heads_k, d = a.head_dim;
  const int64_t group = hq / hk_count;
  const double scale = EffectiveScale(a);
  const MaskView mask = MakeMaskView(a, layout);
  std::vector<double> scores;
  std::vector<int64_t> keys;  // global key rows allowed for the current (row, head)
  std::vector<double> acc(d);
  for (int32_t i = 0; i < layout.num_q_blocks; ++i) {
    const int32_t b = layout.q_block_seq[i];
    for (int64_t li = layout.QBlockFirstRow(i); li < layout.QBlockEndRow(i); ++li) {
      const int64_t r = layout.cu_seqlens_q[b] + li;
      for (int64_t h = 0; h < hq; ++h) {
        const int32_t hk = static_cast<int32_t>(h / group);
        keys.clear();
        scores.clear();
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
        std::fill(acc.begin(), acc.end(), 0.0);
        double lse = -std::numeric_limits<double>::infinity();
        if (!keys.empty()) {
          double mx = -std::numeric_limits<double>::infinity();
          for (double s : scores) mx = std::max(mx, s);
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
    }
  }
  return absl::OkStatus();
}

}  // namespace hbsa::internal
