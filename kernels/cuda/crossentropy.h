// LM head fused with masked cross-entropy on the device, the contract of cpu::lm_head_ce: logits
// = x @ W^T are formed `chunk` active rows at a time (cuBLASLt, fp32 accumulation and fp32
// logits), so at most chunk x V logits exist; a stable log-softmax per row in fp32; per-row
// log p(target), dx and dW. The bf16 overload reads bf16 x and W (the bf16 parameter copy) and
// writes bf16 dx; logits, log-probs, losses and dW are fp32 in both.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/cuda/common.h"
#include "kernels/cuda/gemm.h"

namespace xwin::cuda {

template <typename T>
struct LmHeadCE {
  const T* x;            // [N, C] final normed hidden states
  const T* W;            // [V, C] LM head (or tied embedding)
  const int* targets;    // [N] target token per row
  const float* weights;  // [N] per-row loss weight; 0 skips the row (no logits computed)
  int N, C, V;
  void* workspace;  // lm_head_ce_workspace(N, C, V, chunk, is bf16) bytes, 256-byte aligned
  int chunk;
  T* dx;        // [N, C] or null: overwritten with d(loss)/dx (zero on skipped rows)
  float* dW;    // [V, C] or null: accumulates d(loss)/dW
  float* logp;  // [N] or null: log p(target) per row (0 on skipped rows)
};

// Bytes of workspace lm_head_ce needs.
size_t lm_head_ce_workspace(int N, int C, int V, int chunk, bool bf16_inputs);
// Returns sum_n weights[n] * -log softmax(x_n W^T)[targets[n]] (row losses summed in row order on
// the host, in double) and fills the optional outputs. Synchronises `stream` twice: once for the
// number of active rows, once for the row losses. Every pointer in `a` is a device pointer.
double lm_head_ce(const LmHeadCE<float>& a, GemmHandle& handle, cudaStream_t stream = 0);
double lm_head_ce(const LmHeadCE<bf16>& a, GemmHandle& handle, cudaStream_t stream = 0);

}  // namespace xwin::cuda
