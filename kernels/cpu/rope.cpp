// RoPE, rotate-half convention (HF Llama): pairs are (i, i + HD/2), not adjacent elements.
// The backward is the same rotation with the angle negated.
#include "kernels/cpu/rope.h"

#include <cmath>

namespace xwin::cpu {

void rope_tables(float* cos, float* sin, int T, int HD, float theta) {
  int half = HD / 2;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < half; i++) {
      double inv_freq = 1.0 / std::pow((double)theta, (2.0 * i) / HD);
      // HF computes inv_freq in fp32 then the angle in fp32; match its rounding of inv_freq.
      double angle = (double)t * (double)(float)inv_freq;
      cos[(size_t)t * half + i] = (float)std::cos(angle);
      sin[(size_t)t * half + i] = (float)std::sin(angle);
    }
}

// Rotates the NH heads of one token at table row `t` from x into out (which may be x).
static inline void rotate_token(float* out, const float* x, const float* cos, const float* sin,
                                int t, int NH, int HD, float sign) {
  const int half = HD / 2;
  const float* c = cos + (size_t)t * half;
  const float* s = sin + (size_t)t * half;
  for (int h = 0; h < NH; h++) {
    const float* v = x + (size_t)h * HD;
    float* o = out + (size_t)h * HD;
#pragma omp simd
    for (int i = 0; i < half; i++) {
      float x1 = v[i], x2 = v[i + half];
      o[i] = x1 * c[i] - sign * x2 * s[i];
      o[i + half] = x2 * c[i] + sign * x1 * s[i];
    }
  }
}

static void rotate(float* x, const float* cos, const float* sin, int B, int T, int NH, int HD,
                   float sign) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      rotate_token(x + ((size_t)b * T + t) * NH * HD, x + ((size_t)b * T + t) * NH * HD, cos, sin,
                   t, NH, HD, sign);
}

void rope_token(float* out, const float* x, const float* cos, const float* sin, int pos, int NH,
                int HD) {
  rotate_token(out, x, cos, sin, pos, NH, HD, 1.0f);
}

void rope_forward(float* x, const float* cos, const float* sin, int B, int T, int NH, int HD) {
  rotate(x, cos, sin, B, T, NH, HD, 1.0f);
}

void rope_backward(float* dx, const float* cos, const float* sin, int B, int T, int NH, int HD) {
  rotate(dx, cos, sin, B, T, NH, HD, -1.0f);
}

}  // namespace xwin::cpu
