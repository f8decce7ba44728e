// server/heuristics.cc: the server's pure heuristics (see heuristics.h for the reasoning).
#include "heuristics.h"

#include <algorithm>
#include <cmath>

namespace hbsa::server {

double DenseFlopsUpperBound(const AttentionArgs& args) {
  const auto* cu_q = static_cast<const int32_t*>(args.cu_seqlens_q.data);
  const auto* cu_k = static_cast<const int32_t*>(args.cu_seqlens_k.data);
  double pairs = 0;
  for (int32_t b = 0; b < args.batch; ++b) {
    pairs += static_cast<double>(cu_q[b + 1] - cu_q[b]) * static_cast<double>(cu_k[b + 1] - cu_k[b]);
  }
  return 4.0 * args.head_dim * args.num_heads_q * pairs;
}

int CpuThreadsForRequest(double flops, int total_threads, int active_requests) {
  total_threads = std::max(1, total_threads);
  const int share = std::max(1, total_threads / std::max(1, active_requests));
  const double by_work = std::floor(std::max(0.0, flops) / kMinFlopsPerThread);
  const int useful = by_work >= total_threads ? total_threads : std::max(1, static_cast<int>(by_work));
  return std::clamp(std::min(share, useful), 1, total_threads);
}

bool DenseMaskToCompact(int64_t entries) { return entries > kMaxUnpackedDenseMaskEntries; }

}  // namespace hbsa::server
