// wgmma_selftest.cu: the Hopper kernel's building blocks alone, so a layout or descriptor bug
// shows here even when the attention tests fail. One warpgroup computes, for D = 128 and both
// 16-bit types: S[64 x 64] = Q K^T (wgmma SS, Q and K K-major in SW128 panels, the loop of
// hopper_kernel.cuh) and O[64 x 128] = P V (wgmma RS: P from registers in the m16n8k16 A layout,
// V MN-major in SW128 panels), written out through the accumulator fragment layout and compared
// with a double-precision CPU product of the same rounded inputs. Needs an sm_90a device.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "device/wgmma.cuh"

namespace hbsa::cuda_internal {
namespace {

constexpr int kD = 128, kRows = 64;

// Plain (synchronous) load of a [kRows, kD] row-major tile into SW128 panels.
template <typename T>
__device__ void LoadTile(T* s, const T* g) {
  for (int idx = threadIdx.x; idx < kRows * kD; idx += blockDim.x) {
    const int r = idx / kD, c = idx % kD;
    s[Sw128Offset(kRows, r, c)] = g[r * kD + c];
  }
}

template <typename T>
__global__ void SelfTestKernel(const T* q, const T* k, const T* pm, const T* v, float* s_out,
                               float* o_out) {
#if HBSA_HOPPER_DEVICE
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024u - (SmemAddr(smem_raw) & 1023u)) & 1023u);
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kRows * kD;
  T* sV = sK + kRows * kD;
  LoadTile(sQ, q);
  LoadTile(sK, k);
  LoadTile(sV, v);
  FenceProxyAsync();
  __syncthreads();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const uint32_t q_addr = SmemAddr(sQ), k_addr = SmemAddr(sK), v_addr = SmemAddr(sV);

  float acc_s[32];
  for (int i = 0; i < 32; ++i) acc_s[i] = 0.f;
  FenceRegs(acc_s);
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    const uint32_t panel = kk / 4, slice = (kk % 4) * 32;
    Wgmma<T>::SS(acc_s, Sw128Desc(q_addr + panel * kRows * 128 + slice),
                 Sw128Desc(k_addr + panel * kRows * 128 + slice), kk > 0 ? 1 : 0);
  }
  WgmmaCommit();
  WgmmaWait<0>();
  FenceRegs(acc_s);
  for (int i = 0; i < 32; ++i) {
    const int row = warp * 16 + (lane >> 2) + 8 * ((i >> 1) & 1);
    const int col = (i >> 2) * 8 + 2 * (lane & 3) + (i & 1);
    s_out[row * kRows + col] = acc_s[i];
  }

  // P from global into the A fragment: a0 (g, 2c), a1 (g + 8, 2c), a2 (g, 8 + 2c), a3 (g + 8, 8 + 2c).
  float acc_o[2][32];
  for (int pn = 0; pn < 2; ++pn)
    for (int i = 0; i < 32; ++i) acc_o[pn][i] = 0.f;
  uint32_t pa[4][4];
  const int g = warp * 16 + (lane >> 2), c2 = 2 * (lane & 3);
  for (int ks = 0; ks < 4; ++ks) {
    for (int e = 0; e < 4; ++e) {
      const int row = g + 8 * (e & 1), col = ks * 16 + 8 * (e >> 1) + c2;
      const T lo = pm[row * kRows + col], hi = pm[row * kRows + col + 1];
      pa[ks][e] = uint32_t{reinterpret_cast<const uint16_t&>(lo)} |
                  (uint32_t{reinterpret_cast<const uint16_t&>(hi)} << 16);
    }
  }
  FenceRegs(acc_o[0]);
  FenceRegs(acc_o[1]);
  WgmmaFence();
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
#pragma unroll
    for (int pn = 0; pn < 2; ++pn)
      Wgmma<T>::RS(acc_o[pn], pa[ks], Sw128Desc(v_addr + pn * kRows * 128 + ks * 16 * 128));
  WgmmaCommit();
  WgmmaWait<0>();
  FenceRegs(acc_o[0]);
  FenceRegs(acc_o[1]);
  for (int pn = 0; pn < 2; ++pn)
    for (int i = 0; i < 32; ++i) {
      const int row = warp * 16 + (lane >> 2) + 8 * ((i >> 1) & 1);
      const int col = pn * 64 + (i >> 2) * 8 + 2 * (lane & 3) + (i & 1);
      o_out[row * kD + col] = acc_o[pn][i];
    }
#endif
}

template <typename T>
void RunSelfTest(const char* name) {
  int dev = 0, major = 0;
  ASSERT_EQ(cudaGetDevice(&dev), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), cudaSuccess);
  if (major != 9) GTEST_SKIP() << "needs a compute capability 9.x device (sm_90a)";
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  auto make = [&](int n, std::vector<T>* h, std::vector<double>* ref) {
    h->resize(n);
    ref->resize(n);
    for (int i = 0; i < n; ++i) {
      (*h)[i] = T(dist(rng));
      (*ref)[i] = static_cast<double>(static_cast<float>((*h)[i]));
    }
  };
  std::vector<T> hq, hk, hp, hv;
  std::vector<double> rq, rk, rp, rv;
  make(kRows * kD, &hq, &rq);
  make(kRows * kD, &hk, &rk);
  make(kRows * kRows, &hp, &rp);
  make(kRows * kD, &hv, &rv);
  T *dq, *dk, *dp, *dv;
  float *ds, *dout;
  ASSERT_EQ(cudaMalloc(&dq, hq.size() * sizeof(T)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dk, hk.size() * sizeof(T)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dp, hp.size() * sizeof(T)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dv, hv.size() * sizeof(T)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&ds, kRows * kRows * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dout, kRows * kD * sizeof(float)), cudaSuccess);
  cudaMemcpy(dq, hq.data(), hq.size() * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(dk, hk.data(), hk.size() * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(dp, hp.data(), hp.size() * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(dv, hv.data(), hv.size() * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemset(ds, 0xff, kRows * kRows * sizeof(float));  // NaN poison
  cudaMemset(dout, 0xff, kRows * kD * sizeof(float));
  const int smem = 3 * kRows * kD * sizeof(T) + 1024;
  ASSERT_EQ(cudaFuncSetAttribute(SelfTestKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 smem),
            cudaSuccess);
  SelfTestKernel<T><<<1, 128, smem>>>(dq, dk, dp, dv, ds, dout);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> s(kRows * kRows), o(kRows * kD);
  cudaMemcpy(s.data(), ds, s.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaMemcpy(o.data(), dout, o.size() * sizeof(float), cudaMemcpyDeviceToHost);
  double err_s = 0, err_o = 0;
  int bad_s = 0, bad_o = 0;
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kRows; ++j) {
      double ref = 0;
      for (int c = 0; c < kD; ++c) ref += rq[i * kD + c] * rk[j * kD + c];
      const double e = std::fabs(ref - s[i * kRows + j]);
      if (!(e <= 1e-3)) {
        if (bad_s++ < 4) std::printf("  S[%d][%d] = %g, expected %g\n", i, j, s[i * kRows + j], ref);
      }
      err_s = std::isnan(e) ? INFINITY : std::fmax(err_s, e);
    }
    for (int c = 0; c < kD; ++c) {
      double ref = 0;
      for (int j = 0; j < kRows; ++j) ref += rp[i * kRows + j] * rv[j * kD + c];
      const double e = std::fabs(ref - o[i * kD + c]);
      if (!(e <= 1e-3)) {
        if (bad_o++ < 4) std::printf("  O[%d][%d] = %g, expected %g\n", i, c, o[i * kD + c], ref);
      }
      err_o = std::isnan(e) ? INFINITY : std::fmax(err_o, e);
    }
  }
  std::printf("WGMMA_SELFTEST %s QK^T(SS) max_err=%.3g bad=%d  PV(RS,trans) max_err=%.3g bad=%d\n",
              name, err_s, bad_s, err_o, bad_o);
  EXPECT_EQ(bad_s, 0);
  EXPECT_EQ(bad_o, 0);
  cudaFree(dq);
  cudaFree(dk);
  cudaFree(dp);
  cudaFree(dv);
  cudaFree(ds);
  cudaFree(dout);
}

TEST(WgmmaSelfTest, Bf16) { RunSelfTest<__nv_bfloat16>("bf16"); }
TEST(WgmmaSelfTest, Fp16) { RunSelfTest<__half>("fp16"); }

}  // namespace
}  // namespace hbsa::cuda_internal
