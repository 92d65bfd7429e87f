// SwiGLU on the device, as cpu::swiglu_*: out = silu(gate) * up elementwise over n values. The
// bf16 overloads compute in fp32 and round the results to bf16.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

void swiglu_forward(float* out, const float* gate, const float* up, size_t n,
                    cudaStream_t stream = 0);
void swiglu_forward(bf16* out, const bf16* gate, const bf16* up, size_t n, cudaStream_t stream = 0);
// dgate and dup are overwritten.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n, cudaStream_t stream = 0);
void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up,
                     size_t n, cudaStream_t stream = 0);

}  // namespace xwin::cuda
