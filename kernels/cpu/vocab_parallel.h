// Vocabulary-parallel embedding and LM head + cross-entropy (Megatron's VocabParallelEmbedding
// and vocab_parallel_cross_entropy): this rank holds rows [v0, v0 + V) of a vocabulary split
// across ranks. Full logits are never gathered: per row, the partial max, sum of exponentials
// and target logit are combined across the ranks by the caller's reduce callbacks (kernels know
// nothing of MPI).
#pragma once
#include <cstdint>
#include <functional>

#include "kernels/cpu/crossentropy.h"

namespace xwin::cpu {

// out[n, :] = wte[tokens[n] - v0, :] for tokens in this rank's range, 0 otherwise (the caller
// sums over ranks).
void embedding_forward_shard(float* out, const int32_t* tokens, const float* wte, int N, int C,
                             int v0, int V);
// dwte[tokens[n] - v0, :] += dout[n, :] for tokens in range.
void embedding_backward_shard(float* dwte, const float* dout, const int32_t* tokens, int N, int C,
                              int v0, int V);

struct VocabReduce {
  int v0 = 0;                             // first vocabulary row held (a.W is [a.V, C])
  std::function<void(float*, int)> max;   // elementwise max over the ranks, in place
  std::function<void(double*, int)> sum;  // elementwise sum over the ranks, in place
};

// As lm_head_ce, with a.V the local vocabulary rows. Returns the full loss (same on every rank);
// logp is full; dx receives this rank's partial d(loss)/dx (the caller sums over ranks); dW
// accumulates the local rows' gradient.
double lm_head_ce_vocab_parallel(const LmHeadCE& a, const VocabReduce& r);

}  // namespace xwin::cpu
