// server/translate.h: AttendRequest (proto) -> hbsa::AttentionArgs, with every check.
//
// Translation is the server's validation boundary. It checks what only the wire can get wrong
// (dtypes, shapes, byte counts, the mask's wire forms, size limits) with messages naming the
// proto field, converts the mask (dense bits -> bytes or compact, per-sequence -> compact,
// compact -> as is), and then runs hbsa::Validate for every rule of SEMANTICS.md, rewriting the
// library's argument names into proto field names. A request that passes is safe to compute.
//
// The result points into the request message (q/k/v bytes, cu_seqlens, compact mask), so the
// request must outlive it. Output buffers are left unset: the executor allocates them.
#ifndef HBSA_SERVER_TRANSLATE_H_
#define HBSA_SERVER_TRANSLATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hbsa/attention.h"
#include "hbsa/v1/attention.pb.h"

namespace hbsa::server {

struct TranslatedRequest {
  AttentionArgs args;                 // out/lse unset; buffers point into the request and below
  std::vector<uint8_t> dense_mask;    // dense bits unpacked to bytes [Hk, Nq, Nk] (small masks)
  std::vector<int64_t> row_offsets;   // compact mask built from per-sequence or large dense bits
  std::vector<int32_t> col_indices;
  std::string mask_form;              // wire form: "dense", "per_sequence" or "compact"
  bool return_lse = false;
  int64_t out_bytes = 0;              // out [total_q, Hq, D] in dtype
  int64_t lse_bytes = 0;              // lse [total_q, Hq] fp32 when asked, else 0
  int64_t working_bytes = 0;          // inputs + outputs + mask: the memory estimate for budgets
};

struct TranslateLimits {
  int64_t max_message_bytes = 0;      // responses past this are refused (RESOURCE_EXHAUSTED)
  int64_t memory_budget_bytes = 0;    // per-request working memory cap (RESOURCE_EXHAUSTED)
};

// Checks and converts `request`. INVALID_ARGUMENT (bad input) or RESOURCE_EXHAUSTED (past a
// limit), each message naming the proto field and the rule.
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
