// SwiGLU: out = silu(g) * u. d/dg silu(g) = s * (1 + g * (1 - s)) with s = sigmoid(g).
// The sigmoid uses e = exp(-|g|) <= 1 from the vectorisable exp_nonpos (std::exp would stay a
// scalar call without -ffast-math): s = 1 / (1 + e) for g >= 0 and e / (1 + e) otherwise.
#include "kernels/cpu/swiglu.h"

#include <cmath>

#include "kernels/cpu/vexp.h"

namespace xwin::cpu {

static inline float sigmoid(float g) {
  const float e = exp_nonpos(-std::fabs(g));
  const float r = 1.0f / (1.0f + e);
  return g >= 0.f ? r : e * r;
}

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
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
