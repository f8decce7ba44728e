// cpu_kernels.cc: the fast CPU backend's tile kernel (cpu_tile_body.inc) compiled three times,
// for AVX-512F, for AVX2+FMA+F16C and for plain C++, each inside its own namespace and target
// region (`#pragma GCC target` with GCC, `#pragma clang attribute` with clang, which the
// sanitizer and fuzz builds use), plus the run-time choice between them. This is function
// multiversioning by hand: the build needs no -march flag, the binary runs on any x86-64 (and
// the generic version anywhere), and a CPU with AVX-512 still gets 512-bit FMAs.
//
// Only the vector primitives differ per ISA; the algorithm exists once, in the .inc file.
#include "cpu_kernels.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "hbsa/layout.h"
#include "hbsa/numeric.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HBSA_CPU_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace hbsa::internal {

// ---------------------------------------------------------------------------------------------
// Portable version: 4-float GCC vector extensions (SSE2 on any x86-64, NEON on ARM), without
// FMA; what the target lacks the compiler emulates lane by lane.
namespace cpu_generic {
typedef float Vec __attribute__((vector_size(16)));
typedef int32_t IVec __attribute__((vector_size(16)));
constexpr int kW = 4, kNv = 2, kMr = 4;  // 4 x 8 micro-tile: 8 accumulators of 16 registers
inline Vec VZero() { return Vec{}; }
inline Vec VLoad(const float* p) { Vec v; std::memcpy(&v, p, sizeof(v)); return v; }
inline void VStore(float* p, Vec v) { std::memcpy(p, &v, sizeof(v)); }
inline Vec VSet1(float x) { return Vec{x, x, x, x}; }
inline Vec VFma(Vec a, Vec b, Vec c) { return a * b + c; }
inline Vec VAdd(Vec a, Vec b) { return a + b; }
inline Vec VSub(Vec a, Vec b) { return a - b; }
inline Vec VMul(Vec a, Vec b) { return a * b; }
inline Vec VMax(Vec a, Vec b) { return a > b ? a : b; }
inline Vec VKeepBelow(Vec s, float k, Vec cnt) { return VSet1(k) < cnt ? s : VSet1(-INFINITY); }
inline Vec VNegInfToZero(Vec x) { return x == VSet1(-INFINITY) ? VZero() : x; }
inline Vec VExp2(Vec x) {
  const IVec live = x >= VSet1(-126.0f);
  x = x < VSet1(-126.0f) ? VSet1(-126.0f) : x;
  x = x > VSet1(127.0f) ? VSet1(127.0f) : x;
  // Round to nearest with the 1.5 * 2^23 trick (exact for |x| < 2^22, no -ffast-math here).
  const Vec n = (x + VSet1(12582912.0f)) - VSet1(12582912.0f);
  const Vec f = x - n;
  Vec p = VSet1(1.535336188319500e-4f);
  p = p * f + VSet1(1.339887440266574e-3f);
  p = p * f + VSet1(9.618437357674640e-3f);
  p = p * f + VSet1(5.550332471162809e-2f);
  p = p * f + VSet1(2.402264791363012e-1f);
  p = p * f + VSet1(6.931472028550421e-1f);
  p = p * f + VSet1(1.0f);
  const IVec bits = (__builtin_convertvector(n, IVec) + 127) << 23;
  Vec scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return live ? p * scale : VZero();
}
inline Vec VFromHalf(const uint16_t* p) {
  return Vec{HalfToFloat(p[0]), HalfToFloat(p[1]), HalfToFloat(p[2]), HalfToFloat(p[3])};
}
inline Vec VFromBf16(const uint16_t* p) {
  return Vec{BFloat16ToFloat(p[0]), BFloat16ToFloat(p[1]), BFloat16ToFloat(p[2]), BFloat16ToFloat(p[3])};
}
#include "cpu_tile_body.inc"
}  // namespace cpu_generic

#ifdef HBSA_CPU_X86
// Cephes exp2f: 2^f = 1 + f * P(f) on [-0.5, 0.5], relative error about 2e-7 (the generic
// version above spells out the same polynomial).
#define HBSA_EXP2_POLY(FMA, SET1, f)                                               \
  FMA(FMA(FMA(FMA(FMA(FMA(SET1(1.535336188319500e-4f), f, SET1(1.339887440266574e-3f)), f, \
                      SET1(9.618437357674640e-3f)), f, SET1(5.550332471162809e-2f)), f,     \
              SET1(2.402264791363012e-1f)), f, SET1(6.931472028550421e-1f)), f, SET1(1.0f))

// ---------------------------------------------------------------------------------------------
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
namespace cpu_avx2 {
using Vec = __m256;
constexpr int kW = 8, kNv = 2, kMr = 4;  // 4 x 16 micro-tile: 8 accumulators, 2 FMA ports
inline Vec VZero() { return _mm256_setzero_ps(); }
inline Vec VLoad(const float* p) { return _mm256_loadu_ps(p); }
inline void VStore(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec VSet1(float x) { return _mm256_set1_ps(x); }
inline Vec VFma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec VAdd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec VSub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec VMul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec VMax(Vec a, Vec b) { return _mm256_max_ps(a, b); }
inline Vec VKeepBelow(Vec s, float k, Vec cnt) {
  return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), s, _mm256_cmp_ps(_mm256_set1_ps(k), cnt, _CMP_LT_OQ));
}
inline Vec VNegInfToZero(Vec x) {
  return _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ), x);
}
inline Vec VExp2(Vec x) {
  const Vec live = _mm256_cmp_ps(x, _mm256_set1_ps(-126.0f), _CMP_GE_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(127.0f)), _mm256_set1_ps(-126.0f));
  const Vec n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const Vec f = _mm256_sub_ps(x, n);
  const Vec p = HBSA_EXP2_POLY(_mm256_fmadd_ps, _mm256_set1_ps, f);
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), live);
}
inline Vec VFromHalf(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline Vec VFromBf16(const uint16_t* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
#include "cpu_tile_body.inc"
}  // namespace cpu_avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

// ---------------------------------------------------------------------------------------------
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
// GCC 12 reports its own _mm512_undefined_ps() inside the intrinsics as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
namespace cpu_avx512 {
using Vec = __m512;
constexpr int kW = 16, kNv = 2, kMr = 8;  // 8 x 32 micro-tile: 16 of the 32 zmm registers
inline Vec VZero() { return _mm512_setzero_ps(); }
inline Vec VLoad(const float* p) { return _mm512_loadu_ps(p); }
inline void VStore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec VSet1(float x) { return _mm512_set1_ps(x); }
inline Vec VFma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec VAdd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec VSub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec VMul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec VMax(Vec a, Vec b) { return _mm512_max_ps(a, b); }
inline Vec VKeepBelow(Vec s, float k, Vec cnt) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(_mm512_set1_ps(k), cnt, _CMP_LT_OQ),
                              _mm512_set1_ps(-INFINITY), s);
}
inline Vec VNegInfToZero(Vec x) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ), x,
                              _mm512_setzero_ps());
}
inline Vec VExp2(Vec x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_GE_OQ);
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(127.0f)), _mm512_set1_ps(-126.0f));
  const Vec n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const Vec f = _mm512_sub_ps(x, n);
  const Vec p = HBSA_EXP2_POLY(_mm512_fmadd_ps, _mm512_set1_ps, f);
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}
inline Vec VFromHalf(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline Vec VFromBf16(const uint16_t* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
#include "cpu_tile_body.inc"
}  // namespace cpu_avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
#endif  // HBSA_CPU_X86

// ---------------------------------------------------------------------------------------------
namespace {

const CpuKernelSet kGeneric = {"generic", cpu_generic::ScratchFloats, cpu_generic::RunTile};
#ifdef HBSA_CPU_X86
const CpuKernelSet kAvx2 = {"avx2", cpu_avx2::ScratchFloats, cpu_avx2::RunTile};
const CpuKernelSet kAvx512 = {"avx512", cpu_avx512::ScratchFloats, cpu_avx512::RunTile};

bool HasAvx2() {
  __builtin_cpu_init();
  // F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
}
bool HasAvx512() {
  __builtin_cpu_init();
  return HasAvx2() && __builtin_cpu_supports("avx512f");
}
#endif

}  // namespace

const CpuKernelSet* SelectCpuKernels(std::string_view isa) {
#ifdef HBSA_CPU_X86
  const bool auto_pick = isa.empty() || isa == "auto";
  if ((auto_pick || isa == "avx512") && HasAvx512()) return &kAvx512;
  if ((auto_pick || isa == "avx2") && HasAvx2()) return &kAvx2;
#else
  const bool auto_pick = isa.empty() || isa == "auto";
#endif
  if (auto_pick || isa == "generic") return &kGeneric;
  return nullptr;
}

std::vector<std::string> SupportedCpuIsas() {
  std::vector<std::string> names;
#ifdef HBSA_CPU_X86
  if (HasAvx512()) names.push_back("avx512");
  if (HasAvx2()) names.push_back("avx2");
#endif
  names.push_back("generic");
  return names;
}

}  // namespace hbsa::internal
