// SwiGLU activation: out = silu(gate) * up, silu(x) = x * sigmoid(x), elementwise over n values.
#pragma once
#include <cstddef>

namespace xwin::cpu {

void swiglu_forward(float* out, const float* gate, const float* up, size_t n);
// The same on the fused gate/up projection's output: gu[N, 2F] holds row n's gate in its first F
// values and its up in the next F; out is [N, F].
void swiglu_forward_fused(float* out, const float* gu, int N, int F);
// dgate and dup are overwritten.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n);

}  // namespace xwin::cpu
