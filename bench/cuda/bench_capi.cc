// bench_capi.cc: a C ABI over the CUDA backend for the Python benchmark driver (bench.py), so
// our kernel, cuDNN SDPA and FlexAttention run in one process on the same torch tensors.
//
// hbsa_bench_create sizes one request (hbsa::cuda::PlanRequest), allocates its device buffer,
// copies q/k/v device-to-device from the caller's tensors and the packed metadata (layout
// arrays, tile table, mask) from the host, all outside the timing. hbsa_bench_enqueue then runs
// exactly what the service runs per request: device-side planning + the attention kernel
// (hbsa::cuda::Enqueue) on the given stream, without synchronising. hbsa_bench_set_kernel picks
// the kernel of later creates (hbsa::cuda::PlanOptions: "auto" or an explicit kernel for A/B
// runs); hbsa_bench_kernel_name reports the kernel a handle runs.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hbsa/attention.h"
#include "hbsa/cuda.h"
#include "request_internal.h"

namespace {

hbsa::CudaKernel g_kernel = hbsa::CudaKernel::kAuto;  // hbsa_bench_set_kernel

struct Bench {
  std::vector<int32_t> cu_q, cu_k;
  std::vector<uint8_t> mask;
  hbsa::AttentionArgs args;
  hbsa::cuda::RequestLayout layout;
  void* device = nullptr;
};

int Fail(char* err, int err_len, const std::string& msg) {
  if (err != nullptr && err_len > 0) {
    std::strncpy(err, msg.c_str(), err_len - 1);
    err[err_len - 1] = '\0';
  }
  return -1;
}

}  // namespace

extern "C" {

// The kernel later hbsa_bench_create calls plan for: a hbsa::CudaKernelName ("auto",
// "wgmma_tma", "mma_sync", "simt_fp32"). 0, or -1 for an unknown name (nothing changes).
int hbsa_bench_set_kernel(const char* name) {
  const std::optional<hbsa::CudaKernel> k = hbsa::ParseCudaKernel(name != nullptr ? name : "");
  if (!k) return -1;
  g_kernel = *k;
  return 0;
}

// dtype: 0 fp16, 1 bf16, 2 fp32. q/k/v: device pointers, packed [total, heads, d].
// mask: host uint8 [hk, Nq, Nk]. Returns a handle, or nullptr with `err` filled.
void* hbsa_bench_create(int dtype, int64_t total_q, int64_t total_k, int hq, int hk, int d,
                        int batch, const int32_t* cu_q, const int32_t* cu_k, int sq, int sk,
                        int causal, const uint8_t* mask, int64_t nq, int64_t nk, const void* q,
                        const void* k, const void* v, char* err, int err_len) {
  auto b = std::make_unique<Bench>();
  b->cu_q.assign(cu_q, cu_q + batch + 1);
  b->cu_k.assign(cu_k, cu_k + batch + 1);
  b->mask.assign(mask, mask + hk * nq * nk);
  hbsa::AttentionArgs& a = b->args;
  a.dtype = static_cast<hbsa::DType>(dtype);
  a.total_q = total_q;
  a.total_k = total_k;
  a.num_heads_q = hq;
  a.num_heads_k = hk;
  a.head_dim = d;
  a.batch = batch;
  a.cu_seqlens_q = {b->cu_q.data(), b->cu_q.size() * 4};
  a.cu_seqlens_k = {b->cu_k.data(), b->cu_k.size() * 4};
  a.q_block_size = sq;
  a.k_block_size = sk;
  a.causal = causal != 0;
  a.dense_mask.shape[0] = hk;
  a.dense_mask.shape[1] = nq;
  a.dense_mask.shape[2] = nk;
  a.dense_mask.data = {b->mask.data(), b->mask.size()};
  // Validate sees plausible host buffers of the right sizes; their contents are never read.
  const size_t esz = hbsa::DTypeSize(a.dtype);
  const size_t q_bytes = size_t(total_q) * hq * d * esz, kv_bytes = size_t(total_k) * hk * d * esz;
  a.q = {q, q_bytes};
  a.k = {k, kv_bytes};
  a.v = {v, kv_bytes};
  a.out = {reinterpret_cast<void*>(1), q_bytes};
  if (absl::Status s = hbsa::Validate(a); !s.ok()) return Fail(err, err_len, s.ToString()), nullptr;
  a.out = {};
  auto layout = hbsa::cuda::PlanRequest(a, hbsa::cuda::PlanOptions{g_kernel});
  if (!layout.ok()) return Fail(err, err_len, layout.status().ToString()), nullptr;
  b->layout = *layout;
  std::vector<char> staging(b->layout.input_bytes);
  hbsa::cuda::PackMetadata(a, b->layout, staging.data());
  const auto off = hbsa::cuda::InputOffsetsOf(b->layout);
  cudaError_t e = cudaMalloc(&b->device, b->layout.total_bytes);
  char* dev = static_cast<char*>(b->device);
  if (e == cudaSuccess) e = cudaMemcpy(dev + off.q, q, q_bytes, cudaMemcpyDeviceToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(dev + off.k, k, kv_bytes, cudaMemcpyDeviceToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(dev + off.v, v, kv_bytes, cudaMemcpyDeviceToDevice);
  if (e == cudaSuccess) {
    e = cudaMemcpy(dev + off.metadata, staging.data() + off.metadata,
                   b->layout.input_bytes - off.metadata, cudaMemcpyHostToDevice);
  }
  if (e != cudaSuccess) {
    if (b->device != nullptr) cudaFree(b->device);
    return Fail(err, err_len, cudaGetErrorString(e)), nullptr;
  }
  return b.release();
}

// Planning + attention on `stream` (a cudaStream_t, e.g. torch's current stream). 0 on success.
int hbsa_bench_enqueue(void* handle, void* stream, char* err, int err_len) {
  auto* b = static_cast<Bench*>(handle);
  const absl::Status s =
      hbsa::cuda::Enqueue(b->args, b->layout, b->device, static_cast<cudaStream_t>(stream));
  return s.ok() ? 0 : Fail(err, err_len, s.ToString());
}

// Copies the output [total_q, hq, d] to device pointer `out` (synchronous). 0 on success.
int hbsa_bench_copy_out(void* handle, void* out) {
  auto* b = static_cast<Bench*>(handle);
  const size_t bytes = size_t(b->args.total_q) * b->args.num_heads_q * b->args.head_dim *
                       hbsa::DTypeSize(b->args.dtype);
  return cudaMemcpy(out, static_cast<char*>(b->device) + b->layout.out_offset, bytes,
                    cudaMemcpyDeviceToDevice) == cudaSuccess
             ? 0
             : -1;
}

// The kernel the handle runs (a hbsa::CudaKernelName; static storage).
const char* hbsa_bench_kernel_name(void* handle) {
  return hbsa::CudaKernelName(static_cast<Bench*>(handle)->layout.kernel).data();
}

// Allowed (query row, key row, query head) triples: effective FLOPs = 4 * D * this.
int64_t hbsa_bench_allowed_pairs(void* handle) {
  auto* b = static_cast<Bench*>(handle);
  hbsa::AttentionArgs a = b->args;
  return hbsa::AllowedPairs(a);
}

void hbsa_bench_destroy(void* handle) {
  auto* b = static_cast<Bench*>(handle);
  if (b->device != nullptr) cudaFree(b->device);
  delete b;
}

}  // extern "C"
