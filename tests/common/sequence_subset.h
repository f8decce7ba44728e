// tests/common/sequence_subset.h: a golden::Case cut down to some of its sequences, for tests
// that check only part of a batch (the cross-sequence tests in tests/kernels and tests/cuda
// poison some sequences and compare the others). Header-only: the two test folders build
// separate helper libraries whose problem generators differ.
#ifndef HBSA_TESTS_COMMON_SEQUENCE_SUBSET_H_
#define HBSA_TESTS_COMMON_SEQUENCE_SUBSET_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "hbsa/golden.h"

namespace hbsa::testing {

// Rows of the sequences b with keep[b], of a [total, width] array of `item`-byte elements whose
// sequences start at cu[b].
inline std::vector<uint8_t> KeepRows(const uint8_t* data, const std::vector<int32_t>& cu,
                                     const std::vector<bool>& keep, int64_t width, size_t item) {
  std::vector<uint8_t> r;
  const size_t row_bytes = size_t(width) * item;
  for (size_t b = 0; b + 1 < cu.size(); ++b) {
    if (keep[b]) r.insert(r.end(), data + cu[b] * row_bytes, data + cu[b + 1] * row_bytes);
  }
  return r;
}

// `c` restricted to the query rows of the kept sequences: dtype, heads, cu_q and the expected
// out/lse, which is what golden::Compare reads.
inline golden::Case KeepSequences(const golden::Case& c, const std::vector<bool>& keep) {
  golden::Case k;
  k.name = c.name;
  k.dtype = c.dtype;
  k.hq = c.hq;
  k.hk = c.hk;
  k.d = c.d;
  k.cu_q.assign(1, 0);
  for (size_t b = 0; b + 1 < c.cu_q.size(); ++b) {
    if (keep[b]) k.cu_q.push_back(k.cu_q.back() + c.cu_q[b + 1] - c.cu_q[b]);
  }
  k.out.descr = k.lse.descr = "<f4";
  k.out.shape = {k.total_q(), c.hq, c.d};
  k.lse.shape = {k.total_q(), c.hq};
  k.out.data = KeepRows(c.out.data.data(), c.cu_q, keep, int64_t{c.hq} * c.d, 4);
  k.lse.data = KeepRows(c.lse.data.data(), c.cu_q, keep, c.hq, 4);
  return k;
}

}  // namespace hbsa::testing

#endif  // HBSA_TESTS_COMMON_SEQUENCE_SUBSET_H_
