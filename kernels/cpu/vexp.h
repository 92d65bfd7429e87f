// Vectorisable exp for non-positive arguments (softmax numerators), shared by the kernels.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace xwin::cpu {

// exp(x) for x <= ~0, within 2 ulp (Cephes expf), in a form gcc vectorises inside a simd loop
// without -ffast-math (std::exp stays a scalar call). Bit tricks stand in for the compares and
// the float-to-int conversion that block if-conversion under -ftrapping-math: negative floats
// order like their bit patterns, so an unsigned min clamps x (even -inf, but not NaN) at -88,
// where the result flushes to exactly 0; adding 1.5 * 2^23 rounds x log2(e) to the integer n in
// the low bits.
inline float exp_nonpos(float x) {
  uint32_t xb;
  std::memcpy(&xb, &x, sizeof xb);
  const uint32_t nan = 0u - static_cast<uint32_t>(xb > 0xFF800000u);  // all ones for -NaN
  xb = (xb & nan) | (std::min(xb, 0xC2B00000u) & ~nan);               // -88.0f
  std::memcpy(&x, &xb, sizeof x);
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  x -= n * 0.693359375f;  // x - n ln2, with ln2 split in two for accuracy
  x -= n * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * x * x + x + 1.0f;
  uint32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  const int32_t e = static_cast<int32_t>(tb - 0x4B400000u) + 127;     // n + bias
  const uint32_t bits = static_cast<uint32_t>(std::max(e, 0)) << 23;  // 2^n, or 0 below 2^-126
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

}  // namespace xwin::cpu
