// Token embedding lookup on the device, as cpu::embedding_*: out[n, :] = wte[tokens[n], :].
// The bf16 overloads read the bf16 copy of the parameters and write bf16 activations; the
// gradient dwte is fp32 in both.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C,
                       cudaStream_t stream = 0);
void embedding_forward(bf16* out, const int32_t* tokens, const bf16* wte, int N, int C,
                       cudaStream_t stream = 0);
// dwte[tokens[n], :] += dout[n, :] (accumulates). Deterministic: rows are added in n order, as on
// the CPU, so the fp32 result is bit-identical to cpu::embedding_backward.
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C,
                        cudaStream_t stream = 0);
void embedding_backward(float* dwte, const bf16* dout, const int32_t* tokens, int N, int C,
                        cudaStream_t stream = 0);

}  // namespace xwin::cuda
