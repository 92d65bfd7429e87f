// RMSNorm on the device, as cpu::rmsnorm_*: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2)
// + eps) per row of C. bf16 overloads: bf16 activations and weight (the bf16 parameter copy),
// fp32 rstd and dweight; every reduction runs in fp32.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

// out and rstd[N] are overwritten; rstd is saved for the backward pass.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps, cudaStream_t stream = 0);
void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C,
                     float eps, cudaStream_t stream = 0);
// dinp and dweight accumulate (+=). dweight is reduced over rows in a fixed order (deterministic).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C,
                      cudaStream_t stream = 0);
void rmsnorm_backward(bf16* dinp, float* dweight, const bf16* dout, const bf16* inp,
                      const bf16* weight, const float* rstd, int N, int C, cudaStream_t stream = 0);

}  // namespace xwin::cuda
