// SwiGLU activation: out = silu(gate) * up, silu(x) = x * sigmoid(x), elementwise over n values.
#pragma once
#include <cstddef>

namespace xwin::cpu {

void swiglu_forward(float* out, const float* gate, const float* up, size_t n);
// dgate and dup are overwritten.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n);

}  // namespace xwin::cpu
