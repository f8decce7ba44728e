// request_internal.h (internal): pieces of PackInputs for callers whose q, k and v are already
// on the device (the kernel benchmark copies them device-to-device instead of through the host).
#ifndef HBSA_CUDA_REQUEST_INTERNAL_H_
#define HBSA_CUDA_REQUEST_INTERNAL_H_

#include <cstddef>

#include "hbsa/cuda.h"

namespace hbsa::cuda_internal {

// Byte offsets of q, k and v inside the request buffer, and where the rest of the inputs start.
struct TensorOffsets {
  size_t q = 0, k = 0, v = 0;
  size_t metadata = 0;  // [metadata, input_bytes): cu_seqlens, layout arrays, tile table, mask
};
TensorOffsets OffsetsOf(const cuda::RequestLayout& layout);

// PackInputs without q, k and v: fills [metadata, input_bytes) of `dst` (an input_bytes host
// buffer, laid out as for PackInputs).
void PackMetadata(const AttentionArgs& args, const cuda::RequestLayout& layout, void* dst);

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_REQUEST_INTERNAL_H_
