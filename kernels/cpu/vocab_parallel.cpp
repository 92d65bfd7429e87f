// Per chunk of active rows: local logits (sgemm), a reduced row max, then one reduction of
// (sum of exp(logit - max), target logit) pairs in double, the log-softmax, and in place
// dlogits = w * (softmax - onehot) on the local columns; dx and dW as in lm_head_ce.
#include "kernels/cpu/vocab_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/vexp.h"

namespace xwin::cpu {

void embedding_forward_shard(float* out, const int32_t* tokens, const float* wte, int N, int C,
                             int v0, int V) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const int v = tokens[n] - v0;
    float* o = out + (size_t)n * C;
    if (v >= 0 && v < V)
      std::memcpy(o, wte + (size_t)v * C, sizeof(float) * C);
    else
      std::memset(o, 0, sizeof(float) * C);
  }
}

void embedding_backward_shard(float* dwte, const float* dout, const int32_t* tokens, int N, int C,
                              int v0, int V) {
  // Sequential over n: rows that repeat a token accumulate in a fixed order.
  for (int n = 0; n < N; n++) {
    const int v = tokens[n] - v0;
    if (v < 0 || v >= V) continue;
    float* d = dwte + (size_t)v * C;
    const float* g = dout + (size_t)n * C;
    for (int c = 0; c < C; c++) d[c] += g[c];
  }
}

double lm_head_ce_vocab_parallel(const LmHeadCE& a, const VocabReduce& r) {
  const int C = a.C, V = a.V;
  std::vector<int> rows;
  rows.reserve(a.N);
  for (int n = 0; n < a.N; n++)
    if (a.weights[n] != 0.f) rows.push_back(n);
  if (a.dx) std::memset(a.dx, 0, sizeof(float) * (size_t)a.N * C);
  if (a.logp) std::memset(a.logp, 0, sizeof(float) * (size_t)a.N);

  std::vector<float> xbuf((size_t)a.chunk * C), dxbuf((size_t)a.chunk * C), mx(a.chunk);
  std::vector<double> stats(2 * (size_t)a.chunk), row_loss(rows.size());
  const bool grad = a.dx || a.dW;
  for (size_t r0 = 0; r0 < rows.size(); r0 += a.chunk) {
    const int M = (int)std::min<size_t>(a.chunk, rows.size() - r0);
    for (int i = 0; i < M; i++)
      std::memcpy(&xbuf[(size_t)i * C], a.x + (size_t)rows[r0 + i] * C, sizeof(float) * C);
    float* logits = a.scratch;
    matmul_forward(logits, xbuf.data(), a.W, M, C, V);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
      const float* l = logits + (size_t)i * V;
      float m = l[0];
#pragma omp simd reduction(max : m)
      for (int v = 1; v < V; v++) m = std::max(m, l[v]);
      mx[i] = m;
    }
    r.max(mx.data(), M);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
      const float* l = logits + (size_t)i * V;
      const float m = mx[i];
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int v = 0; v < V; v++) sum += exp_nonpos(l[v] - m);
      const int t = a.targets[rows[r0 + i]] - r.v0;
      stats[2 * i] = sum;
      stats[2 * i + 1] = t >= 0 && t < V ? (double)l[t] : 0.0;
    }
    r.sum(stats.data(), 2 * M);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
      const int n = rows[r0 + i];
      float* l = logits + (size_t)i * V;
      const float lse = mx[i] + (float)std::log(stats[2 * i]);
      const float lp = (float)stats[2 * i + 1] - lse;
      const float w = a.weights[n];
      row_loss[r0 + i] = -(double)w * lp;
      if (a.logp) a.logp[n] = lp;
      if (grad) {
#pragma omp simd
        for (int v = 0; v < V; v++) l[v] = w * exp_nonpos(l[v] - lse);
        const int t = a.targets[n] - r.v0;
        if (t >= 0 && t < V) l[t] -= w;
      }
    }
    if (!grad) continue;
    lm_head_chunk_backward(a, &rows[r0], M, logits, xbuf.data(), dxbuf.data());
  }
  double loss = 0.0;
  for (double l : row_loss) loss += l;
  return loss;
}

}  // namespace xwin::cpu
