// server/translate.h: a parsed AttendRequest -> hbsa::AttentionArgs, with every check, once.
//
// Translation is the server's validation boundary and its single validation pass. It checks
// what only the wire can get wrong (dtypes, shapes, byte counts, shared-memory references, the
// mask's wire forms, size limits) with messages naming the proto field, runs
// hbsa::ValidateLayout (scalars and cu_seqlens, so the block counts are right), converts the
// mask (dense bits -> bytes or compact, per-sequence -> compact, compact -> as is), runs
// hbsa::ValidateAfterLayout (mask and sizes), rewriting the library's argument names into proto
// field names, and records what it derived (block counts, allowed pairs, FLOPs) in
// RequestFacts, which executors and metrics read instead of recomputing. A request that passes
// is safe to compute; nobody validates it again (executors run with RunOptions::validated).
//
// Input bytes are not copied here: TranslatedRequest says where they lie (fragments of the
// received message, or a registered shared-memory range) and the executor copies them once
// into its staging memory. The result keeps the parsed request (cu_seqlens, compact mask and
// received bytes) and the shared-memory mappings alive. Output buffers are left unset.
#ifndef HBSA_SERVER_TRANSLATE_H_
#define HBSA_SERVER_TRANSLATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "admission.h"
#include "hbsa/attention.h"
#include "hbsa/v1/attention.pb.h"
#include "shm.h"
#include "wire_request.h"

namespace hbsa::server {

// Where one input tensor's bytes are: in the received message, or in shared memory.
struct InputBytes {
  FragmentList wire;            // pieces of the received message (when shm is null)
  const char* shm = nullptr;    // a registered shared-memory range
  bool shm_pinned = false;      // that range is registered for DMA (CUDA)
  size_t bytes = 0;

  // One pointer to all bytes when they are contiguous (shm, or a single wire piece), else null.
  const char* Contiguous() const { return shm != nullptr ? shm : wire.Contiguous(); }
  void CopyTo(char* dst) const;
};

// Where one output goes: into the response (shm == nullptr) or into shared memory.
struct OutputTarget {
  char* shm = nullptr;
  bool shm_pinned = false;
};

// Derived once by the validation pass.
struct RequestFacts {
  int64_t num_q_blocks = 0;   // Nq
  int64_t num_k_blocks = 0;   // Nk
  int64_t allowed_pairs = 0;  // hbsa::AllowedPairs: allowed (query row, key row, query head) triples
  double flops = 0;           // 4 * D * allowed_pairs
};

struct TranslatedRequest {
  // q/k/v point at the input bytes when they are contiguous, else data is null (bytes set):
  // executors stage InputBytes below and point them at the staged copy. out/lse unset.
  AttentionArgs args;
  InputBytes q, k, v;
  OutputTarget out_target, lse_target;
  std::shared_ptr<const ParsedRequest> parsed;  // owns cu_seqlens, compact mask, received bytes
  std::vector<ShmSpan> shm;                     // keeps the mappings alive
  std::string request_id;
  int wire_dtype = 0;                 // v1::DType of q (and out)
  std::vector<uint8_t> dense_mask;    // dense bits unpacked to bytes [Hk, Nq, Nk] (small masks)
  std::vector<int64_t> row_offsets;   // compact mask built from per-sequence or large dense bits
  std::vector<int32_t> col_indices;
  std::string mask_form;              // wire form: "dense", "per_sequence" or "compact"
  bool return_lse = false;
  int64_t out_bytes = 0;              // out [total_q, Hq, D] in dtype
  int64_t lse_bytes = 0;              // lse [total_q, Hq] fp32 when asked, else 0
  int64_t working_bytes = 0;          // inputs + outputs + mask: the memory estimate for budgets
  RequestCost cost;                   // what it holds in host memory, from its header fields
  Reservation reservation;            // cost.host_bytes() of the admission budget, until destroyed
  RequestFacts facts;
  bool uses_shm() const { return !shm.empty(); }
};

struct TranslateLimits {
  int64_t max_message_bytes = 0;      // responses past this are refused (RESOURCE_EXHAUSTED)
  int64_t memory_budget_bytes = 0;    // per-request working memory cap (RESOURCE_EXHAUSTED)
  // Every admitted request reserves its host cost here before anything is copied or expanded
  // (admission.h); null = no shared budget (tests of translation alone).
  AdmissionBudget* admission = nullptr;
};

// Checks and converts `parsed`. INVALID_ARGUMENT (bad input) or RESOURCE_EXHAUSTED (past a
// limit), each message naming the proto field and the rule. The cost (RequestCost) is worked
// out from the header fields and checked against both budgets, and reserved from
// limits.admission, after the cheap checks and before the mask is converted or anything is
// copied, so a refused request allocates nothing. `shm` resolves shared-memory
// references (null: such references are refused).
absl::StatusOr<std::unique_ptr<TranslatedRequest>> Translate(
    std::shared_ptr<const ParsedRequest> parsed, const TranslateLimits& limits,
    const ShmRegistry* shm);

// The same for a message in memory (tests, warm-up); `request` must outlive the result.
absl::StatusOr<std::unique_ptr<TranslatedRequest>> Translate(const v1::AttendRequest& request,
                                                             const TranslateLimits& limits);

// hbsa::Validate names library arguments (num_heads_q, head_dim, block_mask, ...); this
// rewrites the leading name into the proto field it came from ("q.shape[1] (num_heads_q) ...").
std::string ProtoFieldMessage(absl::string_view library_message, absl::string_view mask_form);

// Wire dtype <-> library dtype.
absl::StatusOr<DType> FromProtoDType(v1::DType dtype, absl::string_view field);
v1::DType ToProtoDType(DType dtype);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_TRANSLATE_H_
