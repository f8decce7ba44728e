// device/mma_sync_kernel.cuh: the portable fp16/bf16 tensor-core forward kernel
// (CudaKernel::kMmaSync, FlashAttention-2 style, any GPU the build targets).
//
// One CTA per (query tile t, query head h): kBlockM query rows on 4 warps; each warp owns 32
// rows (two m16 row atoms, 128-row tiles of D <= 128, so every K and V fragment loaded from
// shared memory feeds two MMAs) or 16 rows (64-row tiles). Each 64-row half of the tile has its own flags in
// the visit entry: a warp skips key tiles its half does not need. The CTA walks the visit list of (KV head h / group, t) built by the planner:
// only live key tiles of kBlockN = 64 rows are ever loaded. K/V tiles are double-buffered in
// shared memory with cp.async (tile it + 1 loads while tile it is computed); Q stays in shared
// memory. S = Q K^T and O += P V use mma.sync m16n8k16 with fp32 accumulators; operands come
// from swizzled shared memory through ldmatrix. The online softmax runs in registers in the
// log2 domain; the running maximum is over allowed entries only, so a row with no allowed key
// ends with l = 0 and is written as exactly 0 with LSE -inf.
//
// Columns past D (when the compiled tile kD is wider) are zero-filled and never stored. Rows
// past the sequence end are zero-filled on load, masked in scores, and never stored.
#ifndef HBSA_CUDA_DEVICE_MMA_SYNC_KERNEL_CUH_
#define HBSA_CUDA_DEVICE_MMA_SYNC_KERNEL_CUH_

#include <cstdint>

#include "device/mma.cuh"
#include "params.h"

namespace hbsa::cuda_internal {

template <typename T, int kD, int kBlockM, int kBlockN_>
struct TcConfig {
  static_assert(kD % 64 == 0 && kD <= 256, "compiled head dims are 64, 128, 256");
  static_assert(kBlockN_ == 32 || kBlockN_ == 64, "key tiles of 32 or 64 rows");
  static constexpr int kBlockN = kBlockN_;          // key rows per tile
  // Rows per warp: 32 (two m16 atoms sharing each K/V fragment) for 128-row tiles of D <= 128;
  // 16 otherwise (64-row tiles keep 4 warps; D = 256 needs the registers).
  static constexpr int kWarpRows = kD <= 128 && kBlockM == 128 ? 32 : 16;
  static constexpr int kWarps = kBlockM / kWarpRows;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kAtoms = kWarpRows / 16;       // m16 row atoms per warp
  // CTAs per SM the kernel is built for (registers: 64K / (threads * 255) rounded down).
  static constexpr int kMinBlocks = kThreads <= 64 ? 4 : 2;
  static_assert(kWarpRows == 16 || kWarpRows == 32, "a warp owns one or two m16 atoms");
  static_assert(kHalfRows % kWarpRows == 0, "a warp's rows lie in one 64-row half");
  static constexpr int kChunks = kD / 8;            // 16-byte chunks per smem row
  static constexpr int kQElems = kBlockM * kD;      // sQ [kBlockM, kD]
  static constexpr int kKVElems = kBlockN * kD;     // one stage of sK or sV [kBlockN, kD]
  static constexpr size_t kSmemBytes = size_t{kQElems + 4 * kKVElems} * sizeof(T);
};

// Element offset of (row, 16-byte chunk) in a swizzled [rows, kD] tile: the chunk index is
// XOR-ed with row % 8 so ldmatrix over 8 consecutive rows hits 8 different bank groups.
template <int kD>
__device__ __forceinline__ int Swizzle(int row, int chunk) {
  return row * kD + ((chunk ^ (row & 7)) << 3);
}

// Loads rows [0, kRows) x columns [0, kD) of a global tile into swizzled shared memory. Row r
// lives at g + r * row_stride; rows >= valid_rows and columns >= d are zero-filled. `vec`
// (d % 8 == 0 and 16-byte aligned rows) selects 16-byte cp.async; otherwise element loads.
template <typename T, int kD, int kRows, int kThreads>
__device__ __forceinline__ void LoadTile(T* s, const T* g, int64_t row_stride, int64_t valid_rows,
                                         int d, bool vec) {
  constexpr int kChunks = kD / 8;
  for (int idx = threadIdx.x; idx < kRows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks, col = c * 8;
    T* dst = s + Swizzle<kD>(r, c);
    const bool row_ok = r < valid_rows;
    if (vec) {
      const bool ok = row_ok && col < d;
      CpAsync16(dst, ok ? g + r * row_stride + col : g, ok ? 16 : 0);
    } else {
      const T zero = MmaType<T>::FromFloat(0.f);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        dst[e] = row_ok && col + e < d ? g[r * row_stride + col + e] : zero;
      }
    }
  }
}

template <typename T, int kD, int kBlockM, int kBlockN_>
__global__ void __launch_bounds__(TcConfig<T, kD, kBlockM, kBlockN_>::kThreads,
                                  TcConfig<T, kD, kBlockM, kBlockN_>::kMinBlocks)
    TcAttentionKernel(const KernelParams p) {
  using Cfg = TcConfig<T, kD, kBlockM, kBlockN_>;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kAtoms = Cfg::kAtoms;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);  // [kBlockM, kD] swizzled
  T* sK = sQ + Cfg::kQElems;               // [2 stages][kBlockN, kD]
  T* sV = sK + 2 * Cfg::kKVElems;          // [2 stages][kBlockN, kD]

  // Heaviest tiles (last of each causal sequence) first.
  const int32_t t = p.num_q_tiles - 1 - static_cast<int32_t>(blockIdx.x);
  const int32_t h = blockIdx.y;
  const int32_t hk = h / p.group;
  const TileRows tr = TileRowsOf(p, t);
  const int d = p.head_dim;
  const bool vec = (d % 8) == 0;
  const int64_t q_stride = int64_t{p.num_heads_q} * d;   // elements between query rows
  const int64_t kv_stride = int64_t{p.num_heads_k} * d;  // elements between key rows
  const T* gQ = static_cast<const T*>(p.q) +
                (int64_t{p.layout.cu_seqlens_q[tr.b]} + tr.row0) * q_stride + int64_t{h} * d;
  const int64_t kv_off = int64_t{p.layout.cu_seqlens_k[tr.b]} * kv_stride + int64_t{hk} * d;
  const T* gK = static_cast<const T*>(p.k) + kv_off;
  const T* gV = static_cast<const T*>(p.v) + kv_off;
  const int64_t row_slot = int64_t{hk} * p.num_q_tiles + t;
  const int32_t n_visits = p.visit_count[row_slot];
  const uint32_t* visits = p.visits + int64_t{hk} * p.plane_slots + p.q_tile_base[t];

  LoadTile<T, kD, kBlockM, Cfg::kThreads>(sQ, gQ, q_stride, tr.lq - tr.row0, d, vec);
  auto load_kv = [&](uint32_t entry, int stage) {
    const int64_t j0 = int64_t{entry & kTileIndexMask} * kBlockN;
    LoadTile<T, kD, kBlockN, Cfg::kThreads>(sK + stage * Cfg::kKVElems, gK + j0 * kv_stride,
                                            kv_stride, tr.lk - j0, d, vec);
    LoadTile<T, kD, kBlockN, Cfg::kThreads>(sV + stage * Cfg::kKVElems, gV + j0 * kv_stride,
                                            kv_stride, tr.lk - j0, d, vec);
  };
  uint32_t next_entry = n_visits > 0 ? visits[0] : 0;
  if (n_visits > 0) load_kv(next_entry, 0);
  CpAsyncCommit();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int warp_row0 = warp * Cfg::kWarpRows;  // first tile row of this warp
  const int half = warp_row0 / kHalfRows;
  float acc_o[kAtoms][kD / 8][4];  // rO: this thread's part of O [kWarpRows, kD]
#pragma unroll
  for (int a = 0; a < kAtoms; ++a)
#pragma unroll
    for (int i = 0; i < kD / 8; ++i) acc_o[a][i][0] = acc_o[a][i][1] = acc_o[a][i][2] = acc_o[a][i][3] = 0.f;
  // Rows (lane / 4) and (lane / 4 + 8) of each atom; log2-domain running max, partial sums.
  float row_max[kAtoms][2], row_sum[kAtoms][2];
  int64_t my_row[kAtoms][2];
#pragma unroll
  for (int a = 0; a < kAtoms; ++a) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[a][r] = -INFINITY;
      row_sum[a][r] = 0.f;
      my_row[a][r] = tr.row0 + warp_row0 + a * 16 + (lane >> 2) + r * 8;
    }
  }

  for (int32_t it = 0; it < n_visits; ++it) {
    const uint32_t entry = next_entry;
    const int stage = it & 1;
    CpAsyncWaitAll();
    __syncthreads();  // tile `it` visible to all; everyone is done reading the other stage
    if (it + 1 < n_visits) {
      next_entry = visits[it + 1];
      load_kv(next_entry, stage ^ 1);
    }
    CpAsyncCommit();
    const uint32_t flags = HalfFlags(entry, half);
    if ((flags & kHalfLive) == 0) continue;  // this warp's half needs nothing from the tile
    const T* cK = sK + stage * Cfg::kKVElems;
    const T* cV = sV + stage * Cfg::kKVElems;

    // rS = Q K^T for this warp's rows x 64 keys.
    float acc_s[kAtoms][kBlockN / 8][4];
#pragma unroll
    for (int a = 0; a < kAtoms; ++a)
#pragma unroll
      for (int i = 0; i < kBlockN / 8; ++i) acc_s[a][i][0] = acc_s[a][i][1] = acc_s[a][i][2] = acc_s[a][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t qa[kAtoms][4];
#pragma unroll
      for (int a = 0; a < kAtoms; ++a) {
        LdMatrixX4(qa[a], sQ + Swizzle<kD>(warp_row0 + a * 16 + (lane & 15), kk * 2 + (lane >> 4)));
      }
#pragma unroll
      for (int np = 0; np < kBlockN / 16; ++np) {
        uint32_t b[4];
        LdMatrixX4(b, cK + Swizzle<kD>(np * 16 + (lane >> 4) * 8 + (lane & 7),
                                       kk * 2 + ((lane >> 3) & 1)));
#pragma unroll
        for (int a = 0; a < kAtoms; ++a) {
          MmaType<T>::Mma(acc_s[a][2 * np], qa[a], b[0], b[1]);
          MmaType<T>::Mma(acc_s[a][2 * np + 1], qa[a], b[2], b[3]);
        }
      }
    }

    // Mask per element in partial halves. The rule is evaluated in a rolled loop into a bit
    // set (bit 4 * nt + e, kBlockN / 2 bits), so the register arrays stay indexed by constants
    // and the mask code is emitted once.
    const int64_t j0 = int64_t{entry & kTileIndexMask} * kBlockN;
    uint32_t allowed[kAtoms];
#pragma unroll
    for (int a = 0; a < kAtoms; ++a) allowed[a] = 0xffffffffu;
    if (flags & kHalfPartial) {
      const bool single = (flags & kHalfSingleBlock) != 0;
#pragma unroll
      for (int a = 0; a < kAtoms; ++a) {
        uint32_t bits = 0;
#pragma unroll 1
        for (int bit = 0; bit < kBlockN / 2; ++bit) {
          const int64_t i = my_row[a][(bit >> 1) & 1];
          const int64_t j = j0 + (bit >> 2) * 8 + 2 * (lane & 3) + (bit & 1);
          bool ok = i < tr.lq && j < tr.lk;
          if (ok) {
            ok = single ? (!p.causal || CausalAllows(i, j, tr.lq, tr.lk))
                        : ElementAllowed(p.layout, p.mask, p.causal, hk, tr.b, i, j);
          }
          bits |= uint32_t{ok} << bit;
        }
        allowed[a] = bits;
      }
    }

    // Online softmax in the log2 domain; a quad of 4 lanes shares a row.
#pragma unroll
    for (int a = 0; a < kAtoms; ++a) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = row_max[a][r];
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int e = 2 * r + c;
            const float s = acc_s[a][nt][e] * p.scale_log2;
            acc_s[a][nt][e] = (allowed[a] >> (4 * nt + e)) & 1u ? s : -INFINITY;
            mx = fmaxf(mx, acc_s[a][nt][e]);
          }
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_use = mx == -INFINITY ? 0.f : mx;
        const float alpha = Exp2(row_max[a][r] - m_use);
        row_max[a][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt) {
          acc_s[a][nt][2 * r] = Exp2(acc_s[a][nt][2 * r] - m_use);
          acc_s[a][nt][2 * r + 1] = Exp2(acc_s[a][nt][2 * r + 1] - m_use);
          sum += acc_s[a][nt][2 * r] + acc_s[a][nt][2 * r + 1];
        }
        row_sum[a][r] = row_sum[a][r] * alpha + sum;
#pragma unroll
        for (int dt = 0; dt < kD / 8; ++dt) {
          acc_o[a][dt][2 * r] *= alpha;
          acc_o[a][dt][2 * r + 1] *= alpha;
        }
      }
    }

    // rO += P V: P from the score registers, rounded to T.
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) {
      uint32_t pa[kAtoms][4];
#pragma unroll
      for (int a = 0; a < kAtoms; ++a) {
        pa[a][0] = MmaType<T>::Pack(acc_s[a][2 * ks][0], acc_s[a][2 * ks][1]);
        pa[a][1] = MmaType<T>::Pack(acc_s[a][2 * ks][2], acc_s[a][2 * ks][3]);
        pa[a][2] = MmaType<T>::Pack(acc_s[a][2 * ks + 1][0], acc_s[a][2 * ks + 1][1]);
        pa[a][3] = MmaType<T>::Pack(acc_s[a][2 * ks + 1][2], acc_s[a][2 * ks + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < kD / 16; ++dp) {
        uint32_t b[4];
        LdMatrixX4Trans(b, cV + Swizzle<kD>(ks * 16 + ((lane >> 3) & 1) * 8 + (lane & 7),
                                            dp * 2 + (lane >> 4)));
#pragma unroll
        for (int a = 0; a < kAtoms; ++a) {
          MmaType<T>::Mma(acc_o[a][2 * dp], pa[a], b[0], b[1]);
          MmaType<T>::Mma(acc_o[a][2 * dp + 1], pa[a], b[2], b[3]);
        }
      }
    }
  }
  CpAsyncWaitAll();

  // Epilogue: normalise and store rows inside the sequence; LSE in natural log.
  T* gO = static_cast<T*>(p.out) +
          (int64_t{p.layout.cu_seqlens_q[tr.b]} + tr.row0) * q_stride + int64_t{h} * d;
#pragma unroll
  for (int a = 0; a < kAtoms; ++a) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = row_sum[a][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      if (my_row[a][r] >= tr.lq) continue;
      const float inv = l > 0.f ? 1.f / l : 0.f;
      T* row_out = gO + (my_row[a][r] - tr.row0) * q_stride;
#pragma unroll
      for (int dt = 0; dt < kD / 8; ++dt) {
        const int col = dt * 8 + 2 * (lane & 3);
        const float x0 = acc_o[a][dt][2 * r] * inv, x1 = acc_o[a][dt][2 * r + 1] * inv;
        if ((d & 1) == 0) {
          if (col < d) *reinterpret_cast<uint32_t*>(row_out + col) = MmaType<T>::Pack(x0, x1);
        } else {
          if (col < d) row_out[col] = MmaType<T>::FromFloat(x0);
          if (col + 1 < d) row_out[col + 1] = MmaType<T>::FromFloat(x1);
        }
      }
      if (p.lse != nullptr && (lane & 3) == 0) {
        const int64_t grow = int64_t{p.layout.cu_seqlens_q[tr.b]} + my_row[a][r];
        p.lse[grow * p.num_heads_q + h] =
            l > 0.f ? (row_max[a][r] + __log2f(l)) * 0.6931471805599453f : -INFINITY;
      }
    }
  }
}

}  // namespace hbsa::cuda_internal

#endif  // HBSA_CUDA_DEVICE_MMA_SYNC_KERNEL_CUH_
