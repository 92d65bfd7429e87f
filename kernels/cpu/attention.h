// Causal grouped-query self-attention, tiled with an online softmax (FlashAttention-style), so
// memory is linear in T: no T x T matrix per head is ever stored.
// Layouts: q, out: [B, T, NH, HD]; k, v: [B, T, NKV, HD]; query head h uses kv head
// h / (NH / NKV). Scale is 1/sqrt(HD). lse: [B, NH, T] log-sum-exp of each query's scaled
// scores, saved for the backward pass (which recomputes the probabilities tile by tile).
#pragma once

namespace xwin::cpu {

// out and lse are overwritten.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int B, int T, int NH, int NKV, int HD);
// dq, dk, dv are overwritten.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int B,
                        int T, int NH, int NKV, int HD);

}  // namespace xwin::cpu
