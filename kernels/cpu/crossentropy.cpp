// LM head + masked cross-entropy, chunked over the rows that carry loss. Skipped rows (weight 0,
// e.g. prompt tokens in SFT) cost nothing: active rows are gathered first, so a chunk is always
// full. Per chunk: logits = x W^T (sgemm), a stable log-softmax per row, the logits buffer is
// turned in place into dlogits = w * (softmax - onehot), then dx = dlogits W and
// dW += dlogits^T x (two more sgemms). Row losses are summed in order for determinism.
#include "kernels/cpu/crossentropy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/vexp.h"

namespace xwin::cpu {

double lm_head_ce(const LmHeadCE& a) {
  const int C = a.C, V = a.V;
  std::vector<int> rows;
  rows.reserve(a.N);
  for (int n = 0; n < a.N; n++)
    if (a.weights[n] != 0.f) rows.push_back(n);
  if (a.dx) std::memset(a.dx, 0, sizeof(float) * (size_t)a.N * C);
  if (a.logp) std::memset(a.logp, 0, sizeof(float) * (size_t)a.N);

  std::vector<float> xbuf((size_t)a.chunk * C), dxbuf((size_t)a.chunk * C);
  std::vector<double> row_loss(rows.size());
  const bool grad = a.dx || a.dW;
  for (size_t r0 = 0; r0 < rows.size(); r0 += a.chunk) {
    const int M = (int)std::min<size_t>(a.chunk, rows.size() - r0);
    for (int i = 0; i < M; i++)
      std::memcpy(&xbuf[(size_t)i * C], a.x + (size_t)rows[r0 + i] * C, sizeof(float) * C);
    float* logits = a.scratch;
    matmul_forward(logits, xbuf.data(), a.W, M, C, V);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
      const int n = rows[r0 + i];
      float* l = logits + (size_t)i * V;
      float mx = l[0];
#pragma omp simd reduction(max : mx)
      for (int v = 1; v < V; v++) mx = std::max(mx, l[v]);
      double sum = 0.0;
#pragma omp simd reduction(+ : sum)
      for (int v = 0; v < V; v++) sum += exp_nonpos(l[v] - mx);
      const float lse = mx + (float)std::log(sum);
      const float lp = l[a.targets[n]] - lse;
      const float w = a.weights[n];
      row_loss[r0 + i] = -(double)w * lp;
      if (a.logp) a.logp[n] = lp;
      if (grad) {
#pragma omp simd
        for (int v = 0; v < V; v++) l[v] = w * exp_nonpos(l[v] - lse);
        l[a.targets[n]] -= w;
      }
    }
    if (!grad) continue;
    lm_head_chunk_backward(a, &rows[r0], M, logits, xbuf.data(), dxbuf.data());
  }
  double loss = 0.0;
  for (double l : row_loss) loss += l;
  return loss;
}

void lm_head_chunk_backward(const LmHeadCE& a, const int* rows, int M, const float* dlogits,
                            const float* x, float* dxbuf) {
  const int C = a.C, V = a.V;
  if (a.dx) {
    sgemm_rows(false, false, M, C, V, 1.0f, dlogits, V, a.W, C, 0.0f, dxbuf, C);
    for (int i = 0; i < M; i++)
      std::memcpy(a.dx + (size_t)rows[i] * C, dxbuf + (size_t)i * C, sizeof(float) * C);
  }
  if (a.dW) matmul_backward(nullptr, a.dW, dlogits, x, a.W, M, C, V);
}

}  // namespace xwin::cpu
