// cpu_kernels.h (internal): the contract between the fast CPU backend's driver
// (cpu_backend.cc: work split, thread pool, scratch) and its per-ISA tile kernels
// (cpu_kernels.cc: the same code compiled for AVX-512, AVX2+FMA and plain C++, chosen at run time,
// so the binary stays portable without -march).
//
// Work unit: a tile = KV head hk, global query block i, and a range [m0, m1) of that block's
// (query row, query head of the group) pairs, numbered m = local_row_in_block * G + g where G =
// Hq / Hk. All query heads of a KV-head group sit in one tile, so every K/V chunk a tile loads is
// reused by G heads. A tile owns its softmax state, so tiles are independent work items.
#ifndef HBSA_CPU_CPU_KERNELS_H_
#define HBSA_CPU_CPU_KERNELS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hbsa/attention.h"
#include "hbsa/layout.h"
#include "hbsa/plan.h"

namespace hbsa::internal {

// Most (row, head) pairs in one tile. A multiple of every ISA's micro-tile width (32, 16, 8).
// 128 keeps a tile's Q^T, scores and output (128 x D floats each) inside L2 while giving the
// register-blocked micro-kernels long enough loops; see docs/BENCHMARKS.md for the measurements.
inline constexpr int64_t kTileM = 128;
// Most keys processed per step (a run of consecutive visited key blocks is cut into chunks of
// at most this many keys): 128 x 32 floats of V per micro-kernel column panel fit in L1.
inline constexpr int64_t kChunkK = 128;

// Index of element (row, head, x) of a packed [rows, heads, dim] tensor. Always int64: with
// total_q * Hq * D past 2^31 a 32-bit product would wrap (SEMANTICS.md "64-bit offsets").
inline int64_t PackedIndex(int64_t row, int64_t heads, int64_t head, int64_t dim, int64_t x) {
  return (row * heads + head) * dim + x;
}

// Everything a tile reads, built once per call from validated arguments.
struct TileProblem {
  DType dtype = DType::kFloat32;   // of q, k, v, out
  const void* q = nullptr;         // [total_q, Hq, D]
  const void* k = nullptr;         // [total_k, Hk, D]
  const void* v = nullptr;         // [total_k, Hk, D]
  void* out = nullptr;             // [total_q, Hq, D]
  float* lse = nullptr;            // [total_q, Hq] natural log, or nullptr
  int64_t num_heads_q = 0;         // Hq
  int64_t num_heads_k = 0;         // Hk
  int64_t head_dim = 0;            // D
  int64_t group = 1;               // G = Hq / Hk
  float q_scale = 1;               // softmax scale * log2(e): scores are kept in base 2
  bool causal = false;
  const BlockLayout* layout = nullptr;
  const VisitList* visits = nullptr;
};

// One work item (see the file comment).
struct TileWork {
  int32_t hk = 0;  // KV head
  int32_t i = 0;   // global query block
  int64_t m0 = 0;  // first (row, head) pair of the block, m = local_row * G + g
  int64_t m1 = 0;  // one past the last
};

// One ISA's kernels.
struct CpuKernelSet {
  const char* name;  // "avx512", "avx2" or "generic"
  // Scratch floats one thread needs for any tile of `p` (64-byte aligned buffer).
  int64_t (*scratch_floats)(const TileProblem& p);
  // Computes out (and lse) for every pair of `w`; writes nothing else. Pairs whose fp32
  // arithmetic went non-finite (see cpu_tile_body.inc) are left unwritten and appended to
  // `redo` as pair indices m in [w.m0, w.m1); the caller recomputes them in float64.
  void (*run_tile)(const TileProblem& p, const TileWork& w, float* scratch,
                   std::vector<int64_t>* redo);
};

// The kernel set for `isa`: "" or "auto" = the best this CPU supports; "avx512", "avx2" or
// "generic" = that one, or nullptr when this CPU (or this build's compiler) cannot run it.
const CpuKernelSet* SelectCpuKernels(std::string_view isa);

// Names of the kernel sets this CPU can run, best first ("generic" always last).
std::vector<std::string> SupportedCpuIsas();

}  // namespace hbsa::internal

#endif  // HBSA_CPU_CPU_KERNELS_H_
