// Embedding: a row gather forward, a scatter-add backward. The backward runs over channel
// blocks in parallel so that repeated tokens never race on the same dwte row.
#include "kernels/cpu/embedding.h"

#include <cstring>

namespace xwin::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    std::memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, sizeof(float) * C);
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  const int block = 64;
  const int nblocks = (C + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < nblocks; b++) {
    int c0 = b * block, c1 = c0 + block < C ? c0 + block : C;
    for (int n = 0; n < N; n++) {
      float* d = dwte + (size_t)tokens[n] * C;
      const float* g = dout + (size_t)n * C;
#pragma omp simd
      for (int c = c0; c < c1; c++) d[c] += g[c];
    }
  }
}

}  // namespace xwin::cpu
