// Causal grouped-query self-attention on the device, FlashAttention-style, as cpu::attention_*:
// tiles of queries and keys in shared memory, an online softmax, no T x T matrix anywhere.
// Layouts: q, out: [B, T, NH, HD]; k, v: [B, T, NKV, HD]; query head h uses kv head
// h / (NH / NKV). Scale is 1/sqrt(HD). lse: [B, NH, T] fp32 log-sum-exp of each query's scaled
// scores, saved for the backward pass. bf16 overloads: bf16 q/k/v/out and gradients, fp32 lse,
// every product and softmax in fp32. Needs HD <= 128 and NH a multiple of NKV.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

// out and lse are overwritten.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int B, int T, int NH, int NKV, int HD, cudaStream_t stream = 0);
void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B,
                       int T, int NH, int NKV, int HD, cudaStream_t stream = 0);
// dq, dk, dv are overwritten.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int B,
                        int T, int NH, int NKV, int HD, cudaStream_t stream = 0);
void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T,
                        int NH, int NKV, int HD, cudaStream_t stream = 0);

}  // namespace xwin::cuda
