// SwiGLU: out = silu(g) * u. d/dg silu(g) = s * (1 + g * (1 - s)) with s = sigmoid(g).
#include "kernels/cpu/swiglu.h"

#include <cmath>

namespace xwin::cpu {

void swiglu_forward(float* out, const float* gate, const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    float s = 1.0f / (1.0f + std::exp(-g));
    out[i] = g * s * up[i];
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gate[i];
    float s = 1.0f / (1.0f + std::exp(-g));
    float d = dout[i];
    dup[i] = d * g * s;
    dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

}  // namespace xwin::cpu
