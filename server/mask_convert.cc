// server/mask_convert.cc: bit-packed wire masks -> dense bytes or compact CSR (see the header).
#include "mask_convert.h"

#include "absl/strings/str_cat.h"

namespace hbsa::server {

absl::Status CheckPackedBits(absl::string_view bits, int64_t count, absl::string_view field) {
  const int64_t want = (count + 7) / 8;
  if (static_cast<int64_t>(bits.size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must hold ceil(", count, " / 8) = ",
                                                   want, " bytes; got ", bits.size()));
  }
  if (count % 8 != 0) {
    const uint8_t last = static_cast<uint8_t>(bits[static_cast<size_t>(want - 1)]);
    if ((last >> (count % 8)) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " pad bits after the last of ", count, " entries must be 0"));
    }
  }
  return absl::OkStatus();
}

int64_t CountSetBits(absl::string_view bits) {
  int64_t n = 0;
  for (char c : bits) n += __builtin_popcount(static_cast<uint8_t>(c));
  return n;
}

std::vector<uint8_t> UnpackBits(absl::string_view bits, int64_t count) {
  std::vector<uint8_t> out(static_cast<size_t>(count));
  for (int64_t n = 0; n < count; ++n) out[static_cast<size_t>(n)] = PackedBit(bits, n) ? 1 : 0;
  return out;
}

CompactMask DenseBitsToCompact(absl::string_view bits, const BlockLayout& layout,
                               int32_t num_heads_k) {
  const int64_t nq = layout.num_q_blocks, nk = layout.num_k_blocks;
  CompactMask m;
  m.row_offsets.reserve(static_cast<size_t>(num_heads_k * nq + 1));
  m.row_offsets.push_back(0);
  m.col_indices.reserve(static_cast<size_t>(CountSetBits(bits)));  // no growth past the need
  for (int32_t hk = 0; hk < num_heads_k; ++hk) {
    for (int32_t i = 0; i < nq; ++i) {
      const int32_t b = layout.q_block_seq[i];
      const int64_t row = int64_t{hk} * nq + i;
      for (int32_t j = layout.k_block_start[b]; j < layout.k_block_start[b + 1]; ++j) {
        if (PackedBit(bits, row * nk + j)) m.col_indices.push_back(j);
      }
      m.row_offsets.push_back(static_cast<int64_t>(m.col_indices.size()));
    }
  }
  return m;
}

absl::StatusOr<CompactMask> PerSequenceToCompact(const std::vector<absl::string_view>& sequences,
                                                 const BlockLayout& layout, int32_t num_heads_k) {
  if (static_cast<int64_t>(sequences.size()) != layout.batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "per_sequence_mask.sequences must have one entry per sequence (B = ", layout.batch,
        "); got ", sequences.size()));
  }
  for (int32_t b = 0; b < layout.batch; ++b) {
    const int64_t nq_b = layout.q_block_start[b + 1] - layout.q_block_start[b];
    const int64_t nk_b = layout.k_block_start[b + 1] - layout.k_block_start[b];
    if (absl::Status s = CheckPackedBits(sequences[b], int64_t{num_heads_k} * nq_b * nk_b,
                                         absl::StrCat("per_sequence_mask.sequences[", b,
                                                      "] ([Hk, nq_b, nk_b] = [", num_heads_k,
                                                      ", ", nq_b, ", ", nk_b, "] bits)"));
        !s.ok()) {
      return s;
    }
  }
  const int64_t nq = layout.num_q_blocks;
  CompactMask m;
  m.row_offsets.assign(static_cast<size_t>(num_heads_k * nq + 1), 0);
  int64_t set_bits = 0;
  for (absl::string_view s : sequences) set_bits += CountSetBits(s);
  m.col_indices.reserve(static_cast<size_t>(set_bits));  // no growth past the need
  // Rows are hk * Nq + i with i ascending across sequences, so visiting (hk, b, local i) in
  // that order appends rows in order.
  for (int32_t hk = 0; hk < num_heads_k; ++hk) {
    for (int32_t b = 0; b < layout.batch; ++b) {
      const int32_t q0 = layout.q_block_start[b], k0 = layout.k_block_start[b];
      const int64_t nq_b = layout.q_block_start[b + 1] - q0;
      const int64_t nk_b = layout.k_block_start[b + 1] - k0;
      for (int64_t i = 0; i < nq_b; ++i) {
        for (int64_t j = 0; j < nk_b; ++j) {
          if (PackedBit(sequences[b], (int64_t{hk} * nq_b + i) * nk_b + j)) {
            m.col_indices.push_back(static_cast<int32_t>(k0 + j));
          }
        }
        m.row_offsets[static_cast<size_t>(int64_t{hk} * nq + q0 + i + 1)] =
            static_cast<int64_t>(m.col_indices.size());
      }
    }
  }
  return m;
}

}  // namespace hbsa::server
