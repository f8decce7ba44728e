// hbsa/numeric.h: host conversions between fp16 / bf16 bit patterns and float, round to
// nearest even, NaN and infinity preserved. Used by the CPU backends, the golden-case tools and
// the clients; the CUDA kernels use the device intrinsics instead.
#ifndef HBSA_NUMERIC_H_
#define HBSA_NUMERIC_H_

#include <cstdint>
#include <cstring>

namespace hbsa {

inline float BitsToFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t FloatToBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float BFloat16ToFloat(uint16_t h) { return BitsToFloat(uint32_t{h} << 16); }

inline uint16_t FloatToBFloat16(float f) {
  const uint32_t u = FloatToBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return BitsToFloat(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return BitsToFloat(sign);
    // subnormal: value = man * 2^-24
    float f = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  return BitsToFloat(sign | ((exp + 112) << 23) | (man << 13));
}

inline uint16_t FloatToHalf(float f) {
  const uint32_t u = FloatToBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;                 // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;                // overflow (>= 65520) -> inf
  if (a < 0x38800000u) {                                      // below the smallest normal
    // subnormal or zero: round a * 2^24 to an integer, ties to even
    const float scaled = BitsToFloat(a) * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(scaled);
    const float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return sign | static_cast<uint16_t>(m);
  }
  const uint32_t rounding = 0xfffu + ((a >> 13) & 1u);
  return sign | static_cast<uint16_t>((a - 0x38000000u + rounding) >> 13);
}

}  // namespace hbsa

#endif  // HBSA_NUMERIC_H_
