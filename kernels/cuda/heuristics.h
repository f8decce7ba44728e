// heuristics.h (internal): which kernel runs a request and on which tiles, as pure functions of
// the device's traits and the request's shape (host only, unit-tested on the CPU in
// tests/cuda/cuda_host_test.cc). PlanRequest calls ChooseKernel once; the result travels in the
// RequestLayout to Enqueue, the service and the benchmark, so what runs is what is reported.
//
// Kernels, in the order kAuto prefers them (docs/KERNEL_HISTORY.md has the measurements):
// * kWgmmaTma (Hopper, sm_90a image): fp16/bf16 with D % 8 == 0 and D <= 128 (TMA boxes of 64
//   columns; 16-byte strides). Tiles (WgmmaTile): 64 keys per stage; 64 or 128 tile rows, each
//   tile q_rows query rows x `heads` query heads of one KV head. A 128-row tile (two consumer
//   warpgroups sharing every K/V stage) needs all its rows in one mask row, i.e. Sq % q_rows ==
//   0: Sq % 128 == 0 gives 128 x 1 head; smaller blocks pack the heads of a GQA group (64 x 2,
//   32 x 4, 16 x 8). Otherwise a 64-row tile, still packing heads where the group allows it (its
//   four 16-row groups carry their own mask bits, chunk_mask.h), so a 16- or 32-row query block
//   computes only the key chunks its own rows need. On an H100 the 128-row tiles ran at 300-420
//   effective TFLOP/s on the ANCHORS grid, 64-row tiles 10-15 % lower (docs/KERNEL_HISTORY.md h4).
// * kMmaSync (any GPU the build targets): fp16/bf16, D <= 256. Tiles (MmaSyncTile): 128 rows x
//   64 keys when Sq % 128 == 0 and D <= 128 (4 warps of 32 rows share each K/V fragment: 266-282
//   TFLOP/s against 209-257 for 16-row warps), else 64 x 64 (64-row mask blocks would leave half
//   the warps of a 128-row tile idle: measured 155-181 against 175-206); D = 256: 64 x 64.
// * kSimtFp32: fp32, 32 x 32 tiles (K, V and Q of D = 256 in about 97 KB of shared memory).
#ifndef HBSA_CUDA_HEURISTICS_H_
#define HBSA_CUDA_HEURISTICS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "hbsa/attention.h"
#include "params.h"

namespace hbsa::cuda_internal {

// What the kernel choice needs to know about the device a request runs on.
struct DeviceTraits {
  int cc_major = 0;          // compute capability major (0: no usable device)
  bool sm90a_image = false;  // the binary's sm_90a image loads on it (launch/wgmma_probe.cu)
};

// The parts of a request the choice depends on.
struct RequestShape {
  DType dtype = DType::kBFloat16;
  int32_t head_dim = 0;
  int32_t q_block_size = 1;  // Sq
  int32_t group = 1;         // Hq / Hk
};

inline RequestShape ShapeOf(const AttentionArgs& a) {
  return RequestShape{a.dtype, a.head_dim, a.q_block_size,
                      a.num_heads_k > 0 ? a.num_heads_q / a.num_heads_k : 1};
}

struct KernelPlan {
  CudaKernel kernel = CudaKernel::kAuto;
  TileShape tile;
};

// The compiled tensor-core head dim that covers `d` (64, 128 or 256), or 0 when none does.
inline int32_t CompiledHeadDim(int32_t d) {
  if (d <= 0) return 0;
  if (d <= 64) return 64;
  if (d <= 128) return 128;
  if (d <= 256) return 256;
  return 0;
}

// Whether the generated instance list (instances/instances.cmake) holds `kernel` for (dtype,
// compiled head dim, tile rows). kSimtFp32 is one kernel for every D.
inline bool InstanceCompiled(CudaKernel kernel, DType dtype, int32_t compiled_d, int32_t block_m) {
  if (kernel == CudaKernel::kSimtFp32) return dtype == DType::kFloat32;
#define HBSA_MMA_SYNC_INSTANCE(T, E, D, M)                                                    \
  if (kernel == CudaKernel::kMmaSync && dtype == DType::E && compiled_d == D && block_m == M) \
    return true;
#define HBSA_WGMMA_INSTANCE(T, E, D, M)                                                        \
  if (kernel == CudaKernel::kWgmmaTma && dtype == DType::E && compiled_d == D && block_m == M) \
    return true;
#include "hbsa_cuda_instances.inc"
#undef HBSA_MMA_SYNC_INSTANCE
#undef HBSA_WGMMA_INSTANCE
  return false;
}

inline TileShape WgmmaTile(int32_t q_block_size, int32_t group) {
  const int32_t sq = q_block_size;
  auto tile = [](int32_t q_rows, int32_t heads) {
    return TileShape{q_rows * heads, 64, q_rows, heads};
  };
  if (sq % 128 == 0) return tile(128, 1);
  if (sq % 64 == 0) return group % 2 == 0 ? tile(64, 2) : tile(64, 1);
  if (sq % 32 == 0) {
    if (group % 4 == 0) return tile(32, 4);
    return group % 2 == 0 ? tile(32, 2) : tile(64, 1);
  }
  if (sq % 16 == 0) {
    if (group % 8 == 0) return tile(16, 8);
    if (group % 4 == 0) return tile(16, 4);
    return group % 2 == 0 ? tile(32, 2) : tile(64, 1);
  }
  return tile(64, 1);  // blocks that are not multiples of 16: per-element checks
}

inline TileShape MmaSyncTile(int32_t head_dim, int32_t q_block_size) {
  const int32_t m = CompiledHeadDim(head_dim) <= 128 && q_block_size % 128 == 0 ? 128 : 64;
  return TileShape{m, 64, m, 1};
}

inline TileShape SimtTile() { return TileShape{32, 32, 32, 1}; }

inline TileShape TileFor(CudaKernel kernel, const RequestShape& s) {
  switch (kernel) {
    case CudaKernel::kWgmmaTma:
      return WgmmaTile(s.q_block_size, s.group);
    case CudaKernel::kMmaSync:
      return MmaSyncTile(s.head_dim, s.q_block_size);
    default:
      return SimtTile();
  }
}

// Why `kernel` cannot run a request of shape `s` on device `dev`; empty when it can.
inline std::string WhyNot(CudaKernel kernel, const DeviceTraits& dev, const RequestShape& s) {
  const int32_t d = CompiledHeadDim(s.head_dim);
  if (kernel != CudaKernel::kAuto && dev.cc_major == 0) {
    return "needs a CUDA device (none is usable)";
  }
  switch (kernel) {
    case CudaKernel::kWgmmaTma: {
      if (dev.cc_major != 9 || !dev.sm90a_image) {
        return absl::StrCat(
            "needs a compute capability 9.x device that loads the sm_90a image "
            "(device: compute capability ",
            dev.cc_major, ".x, sm_90a image ", dev.sm90a_image ? "loads" : "absent or not loadable",
            ")");
      }
      if (s.dtype == DType::kFloat32) return "needs fp16 or bf16 (got fp32)";
      if (s.head_dim > 128 || s.head_dim % 8 != 0) {
        return absl::StrCat("needs head_dim <= 128 and a multiple of 8 (got ", s.head_dim, ")");
      }
      break;
    }
    case CudaKernel::kMmaSync:
      if (dev.cc_major < 8) {
        return absl::StrCat(
            "needs a compute capability 8.x or newer device (device: ", dev.cc_major, ".x)");
      }
      if (s.dtype == DType::kFloat32) return "needs fp16 or bf16 (got fp32)";
      if (d == 0) return absl::StrCat("needs head_dim <= 256 (got ", s.head_dim, ")");
      break;
    case CudaKernel::kSimtFp32:
      if (dev.cc_major < 8) {
        return absl::StrCat(
            "needs a compute capability 8.x or newer device (device: ", dev.cc_major, ".x)");
      }
      if (s.dtype != DType::kFloat32) {
        return absl::StrCat("needs fp32 (got ", std::string(DTypeName(s.dtype)), ")");
      }
      break;
    case CudaKernel::kAuto:
      return "kAuto is not a kernel";
  }
  const TileShape tile = TileFor(kernel, s);
  if (!InstanceCompiled(kernel, s.dtype, d, tile.block_m)) {
    return absl::StrCat("has no compiled instance for ", std::string(DTypeName(s.dtype)),
                        " head_dim ", s.head_dim, " (compiled ", d, ") on ", tile.block_m,
                        "-row tiles (see HBSA_CUDA_INSTANCES)");
  }
  return "";
}

// The kernel a request runs and its tiles. kAuto: the first of kWgmmaTma, kMmaSync, kSimtFp32
// that can run it (UNIMPLEMENTED listing why none can); any other kernel: that kernel, or
// UNIMPLEMENTED saying why it cannot.
inline absl::StatusOr<KernelPlan> ChooseKernel(const DeviceTraits& dev, const RequestShape& s,
                                               CudaKernel requested) {
  if (requested != CudaKernel::kAuto) {
    const std::string why = WhyNot(requested, dev, s);
    if (!why.empty()) {
      return absl::UnimplementedError(absl::StrCat("cuda kernel ",
                                                   std::string(CudaKernelName(requested)),
                                                   " cannot run this request: it ", why));
    }
    return KernelPlan{requested, TileFor(requested, s)};
  }
  std::string reasons;
  for (CudaKernel k : {CudaKernel::kWgmmaTma, CudaKernel::kMmaSync, CudaKernel::kSimtFp32}) {
    const std::string why = WhyNot(k, dev, s);
    if (why.empty()) return KernelPlan{k, TileFor(k, s)};
    absl::StrAppend(&reasons, reasons.empty() ? "" : "; ", std::string(CudaKernelName(k)), " ",
                    why);
  }
  return absl::UnimplementedError(
      absl::StrCat("cuda backend: no kernel can run this request: ", reasons));
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_HEURISTICS_H_
