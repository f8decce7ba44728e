// hbsa/attention.h: the public contract of the attention library.
//
// Computes heterogeneous block-sparse attention over packed variable-length batches, exactly as
// specified in SEMANTICS.md (shared with the service): query and key block sizes that may differ,
// causal bottom-right or not, GQA/MQA, per-KV-head block masks, empty sequences, optional LSE.
//
// Flow (after CUTLASS's Arguments -> can_implement -> run):
//   AttentionArgs args = ...;            // what the caller means: shapes, dtype, buffers, mask
//   absl::Status s = hbsa::Validate(args);  // every rejected input, with field and rule named
//   s = hbsa::Run(hbsa::Backend::kCpu, args);  // validates again, then computes
//
// Ownership: the library never owns or frees caller buffers; all pointers must stay valid for
// the duration of the call. Thread safety: Validate and Run are reentrant; concurrent Runs on
// different outputs are safe. Errors: every failure is returned as an absl::Status (the library
// never aborts, throws across this boundary, or logs):
//   INVALID_ARGUMENT  input breaks a rule of SEMANTICS.md (message names the field and the rule)
//   UNIMPLEMENTED     a valid configuration this backend was not built for (e.g. no CUDA)
//   RESOURCE_EXHAUSTED an allocation failed
//   INTERNAL          a device launch failed
#ifndef HBSA_ATTENTION_H_
#define HBSA_ATTENTION_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace hbsa {

// Element type of q, k, v and out. The LSE is always fp32.
enum class DType : int { kFloat16 = 0, kBFloat16 = 1, kFloat32 = 2 };

// Bytes per element of `dtype` (2, 2, 4).
size_t DTypeSize(DType dtype);
// "fp16", "bf16" or "fp32".
std::string_view DTypeName(DType dtype);
// Parses "fp16"/"float16", "bf16"/"bfloat16", "fp32"/"float32"; nullopt otherwise.
std::optional<DType> ParseDType(std::string_view name);

// Which implementation computes the result.
enum class Backend : int {
  kReference = 0,  // plain float64 oracle: slow, obviously correct
  kCpu = 1,        // fast CPU backend: fp32 accumulation, thread pool, vectorised loops
  kCuda = 2,       // CUDA backend (only when built with HBSA_WITH_CUDA)
};
std::string_view BackendName(Backend backend);
std::optional<Backend> ParseBackend(std::string_view name);
// True when this build contains the backend (kCuda needs HBSA_WITH_CUDA; a GPU is checked at Run).
bool BackendCompiled(Backend backend);

// A read-only byte buffer. `bytes` is what the caller actually holds; Validate checks it
// against the size the shape implies, so a short buffer is an error, never an overread, and
// checks that q, k, v, out and lse start at a multiple of their element size (the backends
// read them as typed arrays).
struct ConstBuffer {
  const void* data = nullptr;
  size_t bytes = 0;
};
// A writable byte buffer, same rule.
struct MutableBuffer {
  void* data = nullptr;
  size_t bytes = 0;
};

// How the block mask is given.
enum class MaskFormat : int {
  // [Hk, Nq, Nk] bytes, nonzero = on, global block numbering (SEMANTICS.md "Blocks").
  kDense = 0,
  // CSR over the Hk * Nq rows (row r = hk * Nq + i): row_offsets [Hk*Nq + 1] int64, starting at
  // 0, non-decreasing, last = nnz; col_indices [nnz] int32 global key blocks, strictly
  // increasing within a row, each in [0, Nk). Entries that pair blocks of different sequences
  // are ignored, as in the dense form. Suits long batches, whose dense mask is huge and mostly
  // ignored.
  kCompact = 1,
};

struct DenseMaskArgs {
  int64_t shape[3] = {0, 0, 0};  // as declared by the caller; must equal [Hk, Nq, Nk]
  ConstBuffer data;              // uint8 [shape[0], shape[1], shape[2]]
};

struct CompactMaskArgs {
  ConstBuffer row_offsets;  // int64 [Hk * Nq + 1]
  ConstBuffer col_indices;  // int32 [nnz]
};

// Everything one attention call means. Shapes follow SEMANTICS.md; all buffers live in host
// memory for the reference and CPU backends and for hbsa::Run on kCuda (which stages them).
struct AttentionArgs {
  DType dtype = DType::kFloat32;       // of q, k, v and out
  int64_t total_q = 0;                 // rows of q (sum of query lengths)
  int64_t total_k = 0;                 // rows of k and v (sum of key lengths)
  int32_t num_heads_q = 0;             // Hq, a multiple of Hk
  int32_t num_heads_k = 0;             // Hk
  int32_t head_dim = 0;                // D, 1..kMaxHeadDim
  int32_t batch = 0;                   // B, number of sequences (0 allowed with empty tensors)
  ConstBuffer cu_seqlens_q;            // int32 [B+1], 0-based, non-decreasing, last = total_q
  ConstBuffer cu_seqlens_k;            // int32 [B+1], same for keys
  int32_t q_block_size = 0;            // Sq >= 1 rows per query block
  int32_t k_block_size = 0;            // Sk >= 1 rows per key block
  bool causal = false;                 // bottom-right aligned causal rule
  std::optional<float> softmax_scale;  // unset: 1/sqrt(D); any given finite value is used as is
  bool allow_tf32 = false;             // fp32 inputs only: permit TF32 tensor-core math
  MaskFormat mask_format = MaskFormat::kDense;
  DenseMaskArgs dense_mask;            // used when mask_format == kDense
  CompactMaskArgs compact_mask;        // used when mask_format == kCompact
  ConstBuffer q;                       // dtype [total_q, Hq, D]
  ConstBuffer k;                       // dtype [total_k, Hk, D]
  ConstBuffer v;                       // dtype [total_k, Hk, D]
  MutableBuffer out;                   // dtype [total_q, Hq, D]; every element is written
  MutableBuffer lse;                   // fp32 [total_q, Hq] when data != nullptr, else not computed
};

// Limits beyond which inputs are refused (a dimension that overflows a limit).
inline constexpr int32_t kMaxHeadDim = 256;
inline constexpr int32_t kMaxHeads = 4096;
inline constexpr int32_t kMaxBlockSize = 1 << 20;
// Dense masks larger than this many entries (4 Gi) are refused: use the compact form.
inline constexpr int64_t kMaxDenseMaskEntries = int64_t{1} << 32;

// Softmax scale actually used: args.softmax_scale, or 1/sqrt(D) when unset.
float EffectiveScale(const AttentionArgs& args);

// Checks every rule of SEMANTICS.md "Rejected inputs" plus buffer sizes. OK, or
// INVALID_ARGUMENT whose message names the field and the rule (e.g. "cu_seqlens_q must be
// non-decreasing; entry 3 (12) < entry 2 (40)"). Reads cu_seqlens and the compact mask, so
// those must be host memory. Never touches q/k/v/out contents.
absl::Status Validate(const AttentionArgs& args);

// Which CUDA kernel computes a request on Backend::kCuda. kAuto lets a pure function of the
// device and the request choose (kernels/cuda/heuristics.h: the fastest kernel that can run it);
// hbsa::cuda::RequestLayout::kernel reports the choice. Any other value is an explicit choice
// (A/B measurements, tests): exactly that kernel runs, or planning returns UNIMPLEMENTED saying
// why it cannot run the request. No kernel is ever substituted silently.
enum class CudaKernel : int {
  kAuto = 0,
  // Hopper (sm_90a image, compute capability 9.x): TMA producer warp, wgmma consumer
  // warpgroups, key tiles gathered from live 16-key chunks; fp16/bf16, D <= 128, D % 8 == 0.
  kWgmmaTma = 1,
  // The portable tensor-core kernel (mma.sync, any GPU the build targets); fp16/bf16, D <= 256.
  kMmaSync = 2,
  // Exact fp32 on the CUDA cores; fp32 only.
  kSimtFp32 = 3,
};
// "auto", "wgmma_tma", "mma_sync", "simt_fp32".
std::string_view CudaKernelName(CudaKernel kernel);
// The inverse of CudaKernelName; nullopt for any other string.
std::optional<CudaKernel> ParseCudaKernel(std::string_view name);

// Validate in two halves, for callers that must know the block layout before they can build
// the mask (the server converts wire masks once Nq and Nk are known): ValidateLayout checks
// dtype, heads, head_dim, block sizes, softmax_scale, batch, totals and cu_seqlens (everything
// CountBlocks needs); ValidateAfterLayout, which requires ValidateLayout(args) to have passed,
// checks the mask and the buffers. Validate(args) is the two in order.
absl::Status ValidateLayout(const AttentionArgs& args);
absl::Status ValidateAfterLayout(const AttentionArgs& args);

// Per-call execution options.
struct RunOptions {
  int num_threads = 0;  // kCpu: worker threads; 0 = one per hardware thread
  int cuda_device = 0;  // kCuda: device ordinal
  CudaKernel cuda_kernel = CudaKernel::kAuto;  // kCuda: which kernel (see CudaKernel)
  // The caller already ran Validate on exactly these arguments (the server validates each
  // request once, at its edge): Run skips its own Validate. Passing unvalidated arguments with
  // this set is undefined behaviour.
  bool validated = false;
  // kCpu and kReference: when set, called between work items (a CPU tile of up to kTileM
  // (row, head) pairs; a reference query row), possibly from several threads at once; once it
  // returns true the remaining items are skipped and Run returns CANCELLED (the outputs'
  // contents are then unspecified). The server uses it to stop work whose client cancelled or
  // whose deadline passed. Must be cheap and thread-safe. Ignored by kCuda (a launched kernel
  // runs to its end; the server drops its result).
  std::function<bool()> should_stop;
};

// Validates `args` (unless options.validated), then computes out (and lse when asked) on `backend`. Synchronous: returns
// after every output element is written. On error the outputs' contents are unspecified.
absl::Status Run(Backend backend, const AttentionArgs& args, const RunOptions& options = {});

// Useful work of one call, for throughput metrics: the number of allowed (query row, key row,
// query head) triples, so effective FLOPs = 4 * D * AllowedPairs. Requires valid args.
int64_t AllowedPairs(const AttentionArgs& args);

}  // namespace hbsa

#endif  // HBSA_ATTENTION_H_
