// AdamW on the device, the math of cpu::adamw_update (decoupled weight decay, bias correction
// folded into two scalars computed on the host exactly as the CPU does), fused over many tensors
// per launch. Master parameters, moments and gradients are fp32; each tensor may also get a bf16
// copy of its updated parameters for the bf16 forward/backward. Also the pieces of global-norm
// clipping: a deterministic sum of squares and an in-place scale.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "kernels/cpu/adamw.h"
#include "kernels/cuda/common.h"

namespace xwin::cuda {

using cpu::AdamWHyper;

// One parameter tensor; all pointers on the device, p_bf16 optional (null: no copy).
struct AdamWTensor {
  float* p;
  const float* g;
  float* m;
  float* v;
  bf16* p_bf16;
  size_t n;
};

// Updates every tensor (any number; launched in batches) for 1-based step t.
void adamw_update(const std::vector<AdamWTensor>& tensors, const AdamWHyper& h, long t,
                  cudaStream_t stream = 0);
// One tensor, argument order of cpu::adamw_update; p_bf16 may be null.
void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWHyper& h,
                  long t, bf16* p_bf16 = nullptr, cudaStream_t stream = 0);

// Number of doubles sum_squares needs as workspace.
constexpr int kSumSquaresParts = 1024;
// *out = sum x[i]^2 in double (device pointer, overwritten). The partial sums go through
// `work` (kSumSquaresParts doubles) and are added in a fixed order, so the result is the same
// on every run and every device.
void sum_squares(double* out, const float* x, size_t n, double* work, cudaStream_t stream = 0);
// x *= s
void scale_inplace(float* x, float s, size_t n, cudaStream_t stream = 0);
// a += b
void add_inplace(float* a, const float* b, size_t n, cudaStream_t stream = 0);

}  // namespace xwin::cuda
