// LM head fused with masked cross-entropy. Logits = x @ W^T are formed `chunk` rows at a time,
// so at most chunk x V logits exist, however large the vocabulary. Log-softmax in fp32 with the
// max subtracted; row sums in double.
#pragma once

namespace xwin::cpu {

struct LmHeadCE {
  const float* x;        // [N, C] final normed hidden states
  const float* W;        // [V, C] LM head (or tied embedding)
  const int* targets;    // [N] target token per row
  const float* weights;  // [N] per-row loss weight; 0 skips the row (no logits computed)
  int N, C, V;
  float* scratch;  // [chunk, V] workspace
  int chunk;
  float* dx;    // [N, C] or null: overwritten with d(loss)/dx (zero on skipped rows)
  float* dW;    // [V, C] or null: accumulates d(loss)/dW
  float* logp;  // [N] or null: log p(target) per row (0 on skipped rows)
};

// Returns sum_n weights[n] * -log softmax(x_n W^T)[targets[n]], and fills the optional outputs.
double lm_head_ce(const LmHeadCE& a);

// One chunk's backward, shared with the vocabulary-parallel version: for the M gathered rows
// (x, their positions rows[0..M)) and their dlogits [M, V], a.dx's rows = dlogits W (through
// dxbuf [M, C]) and a.dW += dlogits^T x; each skipped when null.
void lm_head_chunk_backward(const LmHeadCE& a, const int* rows, int M, const float* dlogits,
                            const float* x, float* dxbuf);

}  // namespace xwin::cpu
