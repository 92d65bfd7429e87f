// Token embedding lookup. out[n, :] = wte[tokens[n], :].
#pragma once
#include <cstdint>

namespace xwin::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
// dwte[tokens[n], :] += dout[n, :] (accumulates).
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C);

}  // namespace xwin::cpu
