// server/heuristics.h: small pure decisions of the server, each with its reasoning.
#ifndef HBSA_SERVER_HEURISTICS_H_
#define HBSA_SERVER_HEURISTICS_H_

#include <cstdint>

#include "hbsa/attention.h"

namespace hbsa::server {

// Upper bound of the FLOPs of one request as if every in-sequence block were on:
// 4 * D * Hq * sum_b Lq_b * Lk_b. Cheap (O(B)), so it is usable before the mask is compiled.
// Requires validated cu_seqlens.
double DenseFlopsUpperBound(const AttentionArgs& args);

// Threads the CPU executor gives one request (hbsa::RunOptions::num_threads).
//
// Reasoning: a request with little work finishes faster on one thread than it takes to wake
// others (a thread hand-off costs ~20-50 us; 2e7 FLOPs take ~5 ms on one scalar-ish core), so
// each thread should get at least kMinFlopsPerThread of work. When several requests are
// active (running plus waiting), the machine's threads are shared between them so that the
// server favours throughput under load and latency when idle. Result in [1, total_threads].
inline constexpr double kMinFlopsPerThread = 2e7;
int CpuThreadsForRequest(double flops, int total_threads, int active_requests);

// Whether a dense bit-packed mask of `entries` (Hk * Nq * Nk) bits is converted to the compact
// form instead of unpacked to one byte per entry. Unpacking is simplest and fastest for the
// kernel's mask lookups while it stays small; past 16 Mi entries (16 MB of bytes, mostly
// cross-sequence pairs the kernel ignores) the CSR of the in-sequence blocks is far smaller.
inline constexpr int64_t kMaxUnpackedDenseMaskEntries = int64_t{1} << 24;
bool DenseMaskToCompact(int64_t entries);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_HEURISTICS_H_
