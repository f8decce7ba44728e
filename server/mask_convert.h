// server/mask_convert.h: the wire's bit-packed block masks -> the library's mask forms.
//
// The wire carries the block mask as dense bits [Hk, Nq, Nk], per-sequence bits [Hk, nq_b, nk_b]
// or compact CSR (proto/hbsa/v1/attention.proto). The library takes dense bytes or compact CSR
// (MaskFormat in hbsa/attention.h). These pure functions do the conversion; which dense form to
// use is heuristics.h's DenseMaskToCompact. Bits are least-significant first within a byte
// (numpy.packbits(..., bitorder="little")); pad bits after the last entry must be 0.
#ifndef HBSA_SERVER_MASK_CONVERT_H_
#define HBSA_SERVER_MASK_CONVERT_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hbsa/layout.h"

namespace hbsa::server {

// CSR over the Hk * Nq rows, as CompactMaskArgs in hbsa/attention.h expects.
struct CompactMask {
  std::vector<int64_t> row_offsets;  // [Hk * Nq + 1]
  std::vector<int32_t> col_indices;  // [nnz], strictly increasing within a row
};

// Bit n of a little-endian bit-packed array.
inline bool PackedBit(absl::string_view bits, int64_t n) {
  return ((static_cast<uint8_t>(bits[static_cast<size_t>(n >> 3)]) >> (n & 7)) & 1) != 0;
}

// Number of 1 bits in `bits` (pad bits included; CheckPackedBits requires them to be 0). An
// upper bound of a converted mask's entries, known before anything is allocated.
int64_t CountSetBits(absl::string_view bits);

// Checks that `bits` holds exactly ceil(count / 8) bytes and that its pad bits are 0.
// INVALID_ARGUMENT naming `field` otherwise.
absl::Status CheckPackedBits(absl::string_view bits, int64_t count, absl::string_view field);

// One byte (0/1) per bit for the first `count` bits. Requires CheckPackedBits to have passed.
std::vector<uint8_t> UnpackBits(absl::string_view bits, int64_t count);

// The dense bit-packed [Hk, Nq, Nk] mask as CSR, keeping only in-sequence pairs (the others
// are ignored by the contract). Requires a layout from validated cu_seqlens and checked bits.
CompactMask DenseBitsToCompact(absl::string_view bits, const BlockLayout& layout,
                               int32_t num_heads_k);

// The per-sequence masks (entry b: [Hk, nq_b, nk_b] bits, local numbering) as global CSR.
// INVALID_ARGUMENT naming per_sequence_mask.sequences when the count or a size is wrong.
absl::StatusOr<CompactMask> PerSequenceToCompact(const std::vector<absl::string_view>& sequences,
                                                 const BlockLayout& layout, int32_t num_heads_k);

}  // namespace hbsa::server

#endif  // HBSA_SERVER_MASK_CONVERT_H_
