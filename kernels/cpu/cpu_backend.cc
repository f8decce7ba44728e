// cpu_backend.cc: hbsa::internal::RunCpu, the fast CPU backend's driver.
//
// Splits the call into tiles (cpu_kernels.h: KV head x query block x up to kTileM (row, head)
// pairs, all query heads of a KV-head group together), hands them to the shared thread pool with
// dynamic scheduling, and gives each thread a reusable scratch buffer. The numerics live in the
// per-ISA tile kernels (cpu_kernels.cc); which ISA runs is chosen per call: the best this CPU
// supports, or the one named by the environment variable HBSA_CPU_ISA (avx512, avx2, generic),
// which tests and benchmarks use to exercise every version. Pairs the fp32 tile cannot represent
// (NaN/Inf inputs, overflowing scores) are recomputed with the reference's float64 code.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "../common/backends.h"
#include "absl/strings/str_cat.h"
#include "cpu_kernels.h"
#include "thread_pool.h"

namespace hbsa::internal {
namespace {

// A thread's scratch floats, 64-byte aligned, grown on demand and kept for the thread's life so
// that small calls (decode) do not allocate.
class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  // nullptr when the allocation fails.
  float* Get(int64_t floats) {
    if (floats > size_) {
      std::free(data_);
      const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      size_ = data_ != nullptr ? floats : 0;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t size_ = 0;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

absl::Status RunCpu(const AttentionArgs& args, const BlockLayout& layout, const VisitList& visits,
                    const RunOptions& options) {
  if (options.num_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_threads must be >= 0 (0 = one per hardware thread); got ", options.num_threads));
  }
  const char* isa_env = std::getenv("HBSA_CPU_ISA");
  const std::string isa = isa_env != nullptr ? isa_env : "";
  const CpuKernelSet* kernels = SelectCpuKernels(isa);
  if (kernels == nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        "HBSA_CPU_ISA=", isa, " is not supported on this CPU (use avx512, avx2, generic or auto)"));
  }

  TileProblem p;
  p.dtype = args.dtype;
  p.q = args.q.data;
  p.k = args.k.data;
  p.v = args.v.data;
  p.out = args.out.data;
  p.lse = static_cast<float*>(args.lse.data);
  p.num_heads_q = args.num_heads_q;
  p.num_heads_k = args.num_heads_k;
  p.head_dim = args.head_dim;
  p.group = args.num_heads_q / args.num_heads_k;
  p.q_scale = static_cast<float>(static_cast<double>(EffectiveScale(args)) * std::numbers::log2e);
  p.causal = args.causal;
  p.layout = &layout;
  p.visits = &visits;

  // tile_start[i]: first tile of query block i among one KV head's tiles.
  std::vector<int64_t> tile_start(layout.num_q_blocks + 1, 0);
  for (int32_t i = 0; i < layout.num_q_blocks; ++i) {
    const int64_t pairs = (layout.QBlockEndRow(i) - layout.QBlockFirstRow(i)) * p.group;
    tile_start[i + 1] = tile_start[i] + CeilDiv(pairs, kTileM);
  }
  const int64_t tiles_per_head = tile_start.back();
  const int64_t items = tiles_per_head * args.num_heads_k;
  if (items == 0) return absl::OkStatus();

  int threads = options.num_threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const int64_t scratch_floats = kernels->scratch_floats(p);
  std::atomic<bool> out_of_memory{false};
  std::atomic<bool> stopped{false};

  const MaskView mask = MakeMaskView(args, layout);
  ThreadPool::Shared().ParallelFor(items, threads, [&](int64_t item) {
    // Between tiles: once asked to stop, every remaining tile returns at once.
    if (stopped.load(std::memory_order_relaxed)) return;
    if (options.should_stop && options.should_stop()) {
      stopped.store(true, std::memory_order_relaxed);
      return;
    }
    float* scratch = ThreadScratch().Get(scratch_floats);
    if (scratch == nullptr) {
      out_of_memory.store(true, std::memory_order_relaxed);
      return;
    }
    TileWork w;
    w.hk = static_cast<int32_t>(item / tiles_per_head);
    const int64_t t = item % tiles_per_head;
    w.i = static_cast<int32_t>(std::upper_bound(tile_start.begin(), tile_start.end(), t) -
                               tile_start.begin() - 1);
    const int64_t pairs = (layout.QBlockEndRow(w.i) - layout.QBlockFirstRow(w.i)) * p.group;
    w.m0 = (t - tile_start[w.i]) * kTileM;
    w.m1 = std::min(w.m0 + kTileM, pairs);
    thread_local std::vector<int64_t> redo;
    redo.clear();
    kernels->run_tile(p, w, scratch, &redo);
    // Pairs whose fp32 arithmetic went non-finite: the reference's float64 code, pair by pair.
    if (!redo.empty()) {
      thread_local ReferenceScratch exact;
      const int64_t first_row = layout.QBlockFirstRow(w.i);
      for (int64_t m : redo) {
        ReferencePair(args, layout, visits, mask, w.i, first_row + m / p.group,
                      int64_t{w.hk} * p.group + m % p.group, &exact);
      }
    }
  });
  if (stopped.load()) {
    return absl::CancelledError("backend cpu: stopped before the end (should_stop)");
  }
  if (out_of_memory.load()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("backend cpu: cannot allocate ", scratch_floats * sizeof(float),
                     " bytes of scratch per thread"));
  }
  return absl::OkStatus();
}

}  // namespace hbsa::internal
