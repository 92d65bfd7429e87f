// SwiGLU: out = silu(g) * u. d/dg silu(g) = s * (1 + g * (1 - s)) with s = sigmoid(g).
// The sigmoid uses e = exp(-|g|) <= 1 from the vectorisable exp_nonpos (std::exp would stay a
// scalar call without -ffast-math): s = 1 / (1 + e) for g >= 0 and e / (1 + e) otherwise, the
// case picked by g's sign bit (a float compare or branch keeps gcc from vectorising the loop
// under -ftrapping-math, and a branch on random signs mispredicts half the time).
#include "kernels/cpu/swiglu.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/vexp.h"

namespace xwin::cpu {

// Below this many values one thread does the work: opening a parallel region costs more.
constexpr size_t kParallelMin = 1 << 14;

static inline float sigmoid(float g) {
  const float e = exp_nonpos(-std::fabs(g));
  const float r = 1.0f / (1.0f + e);
  uint32_t gb, eb;
  std::memcpy(&gb, &g, sizeof gb);
  std::memcpy(&eb, &e, sizeof eb);
  const uint32_t neg = 0u - (gb >> 31);                   // all ones when g's sign bit is set
  const uint32_t fb = (eb & neg) | (0x3F800000u & ~neg);  // e, or 1.0f
  float f;
  std::memcpy(&f, &fb, sizeof f);
  return f * r;
}

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

void swiglu_forward_fused(float* out, const float* gu, int N, int F) {
#pragma omp parallel for schedule(static) if ((size_t)N * F >= kParallelMin)
  for (int n = 0; n < N; n++) {
    const float* g = gu + (size_t)n * 2 * F;
    const float* u = g + F;
    float* o = out + (size_t)n * F;
#pragma omp simd
    for (int i = 0; i < F; i++) o[i] = g[i] * sigmoid(g[i]) * u[i];
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float g = gate[i], s = sigmoid(g), d = dout[i];
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

}  // namespace xwin::cpu
