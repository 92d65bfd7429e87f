// Scalar value head of the reward model on the device: out[n] = h[n, :] . w + b, the
// CPU model's matmul_forward(out, h, w, N, C, 1) plus the bias. Values are fp32 in both
// precisions; the bf16 overloads read bf16 hidden states and the bf16 copy of w and b.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

// out[N] is overwritten; w [C] and b [1] are device pointers.
void value_head_forward(float* out, const float* h, const float* w, const float* b, int N, int C,
                        cudaStream_t stream = 0);
void value_head_forward(float* out, const bf16* h, const bf16* w, const bf16* b, int N, int C,
                        cudaStream_t stream = 0);
// dh[n, :] = dout[n] * w is overwritten (zero rows where dout is 0); dw [C] and db [1]
// accumulate (+=) sum_n dout[n] h[n, :] and sum_n dout[n], in a fixed order.
void value_head_backward(float* dh, float* dw, float* db, const float* dout, const float* h,
                         const float* w, int N, int C, cudaStream_t stream = 0);
void value_head_backward(bf16* dh, float* dw, float* db, const float* dout, const bf16* h,
                         const bf16* w, int N, int C, cudaStream_t stream = 0);

}  // namespace xwin::cuda
