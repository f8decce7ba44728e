// device/wgmma.cuh: the Hopper (sm_90a) building blocks of the wgmma attention path: warpgroup MMA
// wrappers (m64n64k16, fp32 accumulators, A from shared memory or registers), shared-memory
// matrix descriptors, the 128-byte-swizzled tile layout they describe, and the async-proxy
// fence, mbarriers and TMA loads. Device code only; every instruction here needs sm_90a (callers guard with
// HBSA_HOPPER_DEVICE).
//
// Shared-memory tile layout ("SW128 panels"): a [rows, kD] tile of 16-bit elements is stored as
// kD / 64 column panels, each [rows, 64] with 128-byte rows; inside a panel, 16-byte chunk c of
// row r lives at chunk position c ^ (r % 8). Panels start at multiples of 1024 bytes. This is the
// canonical 128B-swizzle layout of wgmma, both for K-major operands (Q and K: rows = M or N, the
// 64 columns = the reduction dim) and for MN-major ones (V: rows = keys = the reduction dim, the
// 64 columns = N, read with the transpose bit).
//
// Descriptors: every wgmma issued here covers at most one panel (N = 64 columns of V, or a
// 16-wide slice of the reduction dim of Q / K), so only the 8-row group stride (1024 bytes)
// matters; both byte-offset fields are set to it, which is right whichever of the two the
// hardware reads for the layout at hand.
#ifndef HBSA_CUDA_DEVICE_WGMMA_CUH_
#define HBSA_CUDA_DEVICE_WGMMA_CUH_

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "device/mma.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define HBSA_HOPPER_DEVICE 1
#else
#define HBSA_HOPPER_DEVICE 0
#endif

namespace hbsa::cuda_internal {

// Element offset of (row, column) in an SW128-panel tile of `rows` rows.
__device__ __forceinline__ int Sw128Offset(int rows, int row, int col) {
  const int panel = col >> 6, chunk = (col >> 3) & 7;
  return panel * rows * 64 + row * 64 + ((chunk ^ (row & 7)) << 3) + (col & 7);
}

// Matrix descriptor of an SW128 operand starting at shared byte address `addr` (1024-aligned
// pattern base; K-major slices advance it by 32 bytes per 16 reduction elements).
__device__ __forceinline__ uint64_t Sw128Desc(uint32_t addr) {
  constexpr uint64_t kGroupStride = 1024 >> 4;  // 8 rows x 128 bytes
  return (uint64_t{(addr & 0x3FFFFu) >> 4}) | (kGroupStride << 16) | (kGroupStride << 32) |
         (uint64_t{1} << 62);  // layout type 1: 128-byte swizzle
}

__device__ __forceinline__ void WgmmaFence() {
#if HBSA_HOPPER_DEVICE
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void WgmmaCommit() {
#if HBSA_HOPPER_DEVICE
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
#if HBSA_HOPPER_DEVICE
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}
// Makes generic-proxy writes to shared memory (st.shared, cp.async) visible to wgmma's async
// proxy; each writer runs it after its writes land and before the barrier.
__device__ __forceinline__ void FenceProxyAsync() {
#if HBSA_HOPPER_DEVICE
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// Keeps the compiler from moving reads or writes of accumulator registers across an async MMA.
template <int kN>
__device__ __forceinline__ void FenceRegs(float (&r)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// mbarrier helpers (shared::cta). Wait loops on try_wait (acquire) until the phase of the given
// parity has completed.
__device__ __forceinline__ void MbarInit(uint32_t bar, int count) {
#if HBSA_HOPPER_DEVICE
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#endif
}
// Makes mbarrier initialisations visible to other threads and to the async proxy (TMA).
__device__ __forceinline__ void FenceMbarInit() {
#if HBSA_HOPPER_DEVICE
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
#if HBSA_HOPPER_DEVICE
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
#endif
}
// Arrives on `bar` when all of this thread's earlier cp.async copies have landed (the arrival
// counts against the barrier's expected count: .noinc).
__device__ __forceinline__ void MbarArriveCpAsync(uint32_t bar) {
#if HBSA_HOPPER_DEVICE
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
#endif
}
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
#if HBSA_HOPPER_DEVICE
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
#endif
}

// Arms `bar` for `bytes` of asynchronous (TMA) writes and arrives once.
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
#if HBSA_HOPPER_DEVICE
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
#endif
}
// TMA: loads the box at (column c0, row c1) of the 2-D tensor map `tmap` (a __grid_constant__
// kernel parameter) to shared address `dst`; completion is counted in bytes on `bar`.
__device__ __forceinline__ void TmaLoad2d(uint32_t dst, const void* tmap, int32_t c0, int32_t c1,
                                          uint32_t bar) {
#if HBSA_HOPPER_DEVICE
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
#endif
}

// TMA: loads the box at (c0, c1, c2) (innermost first) of the 3-D tensor map `tmap` to shared
// address `dst`; elements outside the tensor are zero-filled; completion in bytes on `bar`.
__device__ __forceinline__ void TmaLoad3d(uint32_t dst, const void* tmap, int32_t c0, int32_t c1,
                                          int32_t c2, uint32_t bar) {
#if HBSA_HOPPER_DEVICE
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
#endif
}

template <typename T>
struct Wgmma;

// D[64 x 64] (+)= A[64 x 16] * B[16 x 64]. Accumulator fragment (per warp w of the warpgroup,
// lane l): d[4 j + e] is row 16 w + l / 4 + 8 (e / 2), column 8 j + 2 (l % 4) + e % 2, the
// mma.sync m16n8 C layout. SS: A and B K-major from shared memory. RS: A from registers in the
// mma.sync m16n8k16 A layout, B from shared memory MN-major (transpose bit set).
#define HBSA_WGMMA_SPECIALIZE(TYPE, PTX_TYPE)                                                    \
  template <>                                                                                    \
  struct Wgmma<TYPE> {                                                                           \
    static __device__ __forceinline__ void SS(float (&d)[32], uint64_t da, uint64_t db,          \
                                              int accumulate) {                                  \
      HBSA_WGMMA_SS_BODY(PTX_TYPE)                                                               \
    }                                                                                            \
    static __device__ __forceinline__ void RS(float (&d)[32], const uint32_t (&a)[4],            \
                                              uint64_t db) {                                     \
      HBSA_WGMMA_RS_BODY(PTX_TYPE)                                                               \
    }                                                                                            \
  };

#define HBSA_WGMMA_D_REGS                                                                      \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define HBSA_WGMMA_D_OPERANDS                                                                 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),          \
      "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),  \
      "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),            \
      "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),            \
      "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

#if HBSA_HOPPER_DEVICE
#define HBSA_WGMMA_SS_BODY(PTX_TYPE)                                                          \
  asm volatile(                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                            \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " HBSA_WGMMA_D_REGS \
      ", %32, %33, p, 1, 1, 0, 0;\n}\n"                                                       \
      : HBSA_WGMMA_D_OPERANDS                                                                 \
      : "l"(da), "l"(db), "r"(accumulate));
#define HBSA_WGMMA_RS_BODY(PTX_TYPE)                                                          \
  asm volatile(                                                                               \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                            \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " HBSA_WGMMA_D_REGS \
      ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                         \
      : HBSA_WGMMA_D_OPERANDS                                                                 \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
#else
#define HBSA_WGMMA_SS_BODY(PTX_TYPE) (void)d, (void)da, (void)db, (void)accumulate;
#define HBSA_WGMMA_RS_BODY(PTX_TYPE) (void)d, (void)a, (void)db;
#endif

HBSA_WGMMA_SPECIALIZE(__half, "f16")
HBSA_WGMMA_SPECIALIZE(__nv_bfloat16, "bf16")

#undef HBSA_WGMMA_SPECIALIZE
#undef HBSA_WGMMA_SS_BODY
#undef HBSA_WGMMA_RS_BODY
#undef HBSA_WGMMA_D_REGS
#undef HBSA_WGMMA_D_OPERANDS

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_WGMMA_CUH_
