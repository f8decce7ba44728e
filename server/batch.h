// server/batch.h: dynamic batching, several waiting requests merged into one varlen launch.
//
// Requests whose launches agree on every kernel-level choice (dtype, head counts, head dim,
// block sizes, causal, softmax scale, LSE, TF32) can run as one packed batch: their sequences
// are concatenated (the contract is already varlen), their masks become one compact mask in
// the merged block numbering, and the output rows of request j are rows
// [q_row0[j], q_row0[j] + total_q_j) of the merged output, so splitting the answer back is
// pointer arithmetic. Requests that use shared memory run alone (their outputs go to their own
// ranges). The Scheduler picks the members (Scheduler::TakeBatch with a BatchPolicy); an
// executor turns them into a Launch and runs it like one request.
#ifndef HBSA_SERVER_BATCH_H_
#define HBSA_SERVER_BATCH_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "hbsa/attention.h"
#include "job.h"

namespace hbsa::server {

struct BatchPolicy {
  // Most query (and key) tokens of one merged launch; 0 turns batching off.
  int64_t max_tokens = 0;
  // How long the oldest request of a batch may wait for companions (never past any member's
  // deadline). 0: merge only what is already waiting.
  std::chrono::microseconds max_delay{0};
};

// True when `a` and `b` may share a launch.
bool Batchable(const TranslatedRequest& a, const TranslatedRequest& b);
// True when a request may be merged with others at all (no shared memory).
bool MayBatch(const TranslatedRequest& r);

// One launch: one request, or several merged.
struct Launch {
  std::vector<std::unique_ptr<Job>> jobs;
  // What the kernel runs. For one job: that job's arguments. Merged: shapes and metadata of
  // the packed batch (arrays below); q/k/v data are null (executors stage the jobs' inputs at
  // the offsets below); out/lse unset.
  AttentionArgs args;
  std::vector<int64_t> q_row0, k_row0;  // [jobs] first row of job j in the merged q / k
  bool return_lse = false;
  int64_t out_bytes = 0;                // merged out [total_q, Hq, D]
  int64_t lse_bytes = 0;                // merged lse [total_q, Hq] fp32, 0 when not asked

  // Byte offsets of job j's rows in the merged q, k (and v), out and lse.
  size_t QOffset(size_t j) const;
  size_t KOffset(size_t j) const;
  size_t OutOffset(size_t j) const { return QOffset(j); }
  size_t LseOffset(size_t j) const;

  // Storage of the merged metadata.
  std::vector<int32_t> cu_q, cu_k;
  std::vector<int64_t> row_offsets;
  std::vector<int32_t> col_indices;
};

// Builds the launch of `jobs` (one or more, pairwise Batchable).
Launch MakeLaunch(std::vector<std::unique_ptr<Job>> jobs);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_BATCH_H_
