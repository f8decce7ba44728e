// server/batch.cc: merging compatible requests into one launch (see batch.h).
#include "batch.h"

#include "hbsa/layout.h"
#include "hbsa/plan.h"

namespace hbsa::server {

bool MayBatch(const TranslatedRequest& r) { return !r.uses_shm(); }

bool Batchable(const TranslatedRequest& x, const TranslatedRequest& y) {
  const AttentionArgs& a = x.args;
  const AttentionArgs& b = y.args;
  return MayBatch(x) && MayBatch(y) && a.dtype == b.dtype && a.num_heads_q == b.num_heads_q &&
         a.num_heads_k == b.num_heads_k && a.head_dim == b.head_dim &&
         a.q_block_size == b.q_block_size && a.k_block_size == b.k_block_size &&
         a.causal == b.causal && EffectiveScale(a) == EffectiveScale(b) &&
         a.allow_tf32 == b.allow_tf32 && x.return_lse == y.return_lse;
}

size_t Launch::QOffset(size_t j) const {
  return static_cast<size_t>(q_row0[j]) * args.num_heads_q * args.head_dim * DTypeSize(args.dtype);
}
size_t Launch::KOffset(size_t j) const {
  return static_cast<size_t>(k_row0[j]) * args.num_heads_k * args.head_dim * DTypeSize(args.dtype);
}
size_t Launch::LseOffset(size_t j) const {
  return static_cast<size_t>(q_row0[j]) * args.num_heads_q * sizeof(float);
}

Launch MakeLaunch(std::vector<std::unique_ptr<Job>> jobs) {
  Launch l;
  l.jobs = std::move(jobs);
  const TranslatedRequest& first = *l.jobs.front()->request;
  l.return_lse = first.return_lse;
  if (l.jobs.size() == 1) {
    l.args = first.args;
    l.q_row0 = {0};
    l.k_row0 = {0};
    l.out_bytes = first.out_bytes;
    l.lse_bytes = first.lse_bytes;
    return l;
  }
  AttentionArgs& m = l.args;
  m = first.args;
  m.q = m.k = m.v = {};
  m.out = m.lse = {};
  m.total_q = m.total_k = 0;
  m.batch = 0;
  l.cu_q = {0};
  l.cu_k = {0};
  int64_t nq_total = 0, nk_total = 0;
  for (const auto& job : l.jobs) {
    const AttentionArgs& a = job->request->args;
    l.q_row0.push_back(m.total_q);
    l.k_row0.push_back(m.total_k);
    const auto* cq = static_cast<const int32_t*>(a.cu_seqlens_q.data);
    const auto* ck = static_cast<const int32_t*>(a.cu_seqlens_k.data);
    for (int32_t b = 1; b <= a.batch; ++b) {
      l.cu_q.push_back(static_cast<int32_t>(m.total_q + cq[b]));
      l.cu_k.push_back(static_cast<int32_t>(m.total_k + ck[b]));
    }
    m.total_q += a.total_q;
    m.total_k += a.total_k;
    m.batch += a.batch;
    nq_total += job->request->facts.num_q_blocks;
    nk_total += job->request->facts.num_k_blocks;
  }
  // The merged compact mask: for KV head hk, the rows of job 0, then job 1, ...; each job's
  // in-sequence key blocks shifted by the key blocks of the jobs before it.
  l.row_offsets.reserve(static_cast<size_t>(m.num_heads_k * nq_total + 1));
  l.row_offsets.push_back(0);
  std::vector<std::unique_ptr<BlockLayoutStorage>> layouts;
  for (const auto& job : l.jobs) layouts.push_back(std::make_unique<BlockLayoutStorage>(job->request->args));
  for (int32_t hk = 0; hk < m.num_heads_k; ++hk) {
    int64_t nk_base = 0;
    for (size_t j = 0; j < l.jobs.size(); ++j) {
      const AttentionArgs& a = l.jobs[j]->request->args;
      const BlockLayout& lay = layouts[j]->view();
      const MaskView mask = MakeMaskView(a, lay);
      const auto& kbs = layouts[j]->k_block_start();
      const auto& q_seq = layouts[j]->q_block_seq();
      for (int32_t i = 0; i < lay.num_q_blocks; ++i) {
        const int32_t b = q_seq[static_cast<size_t>(i)];
        for (int32_t kb = kbs[static_cast<size_t>(b)]; kb < kbs[static_cast<size_t>(b) + 1]; ++kb) {
          if (mask.Get(hk, i, kb)) l.col_indices.push_back(static_cast<int32_t>(nk_base + kb));
        }
        l.row_offsets.push_back(static_cast<int64_t>(l.col_indices.size()));
      }
      nk_base += lay.num_k_blocks;
    }
  }
  m.batch = static_cast<int32_t>(l.cu_q.size() - 1);
  m.cu_seqlens_q = {l.cu_q.data(), l.cu_q.size() * sizeof(int32_t)};
  m.cu_seqlens_k = {l.cu_k.data(), l.cu_k.size() * sizeof(int32_t)};
  m.mask_format = MaskFormat::kCompact;
  m.dense_mask = {};
  m.compact_mask.row_offsets = {l.row_offsets.data(), l.row_offsets.size() * sizeof(int64_t)};
  m.compact_mask.col_indices = {l.col_indices.data(), l.col_indices.size() * sizeof(int32_t)};
  const size_t es = DTypeSize(m.dtype);
  const size_t q_bytes = static_cast<size_t>(m.total_q) * m.num_heads_q * m.head_dim * es;
  const size_t kv_bytes = static_cast<size_t>(m.total_k) * m.num_heads_k * m.head_dim * es;
  m.q = {nullptr, q_bytes};
  m.k = {nullptr, kv_bytes};
  m.v = {nullptr, kv_bytes};
  l.out_bytes = static_cast<int64_t>(q_bytes);
  l.lse_bytes = l.return_lse ? m.total_q * m.num_heads_q * 4 : 0;
  return l;
}

}  // namespace hbsa::server
