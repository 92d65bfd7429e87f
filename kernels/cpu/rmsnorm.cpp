// RMSNorm forward/backward. With xhat = x * rstd: dx = rstd * (w*dy - xhat * mean(w*dy*xhat)).
// dweight is reduced per thread then summed, so the parallel loop has no races.
#include "kernels/cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace xwin::cpu {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = inp + (size_t)n * C;
    float* o = out + (size_t)n * C;
    float ss = 0.f;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    float r = 1.0f / std::sqrt(ss / C + eps);
    rstd[n] = r;
#pragma omp simd
    for (int c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
  // dweight partials per fixed block of rows, summed in block order: the result does not depend
  // on the thread count (bit-exact resume and layout-independent results need that).
  const int rows = 64, nb = (N + rows - 1) / rows;
  std::vector<float> dw_part((size_t)nb * C, 0.f);
#pragma omp parallel for schedule(static)
  for (int b = 0; b < nb; b++) {
    float* dw = dw_part.data() + (size_t)b * C;
    for (int n = b * rows; n < std::min(N, (b + 1) * rows); n++) {
      const float* x = inp + (size_t)n * C;
      const float* dy = dout + (size_t)n * C;
      float* dx = dinp + (size_t)n * C;
      float r = rstd[n];
      float dot = 0.f;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < C; c++) dot += weight[c] * dy[c] * x[c];
      float k = dot * r * r * r / C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        dw[c] += dy[c] * x[c] * r;
        dx[c] += r * weight[c] * dy[c] - k * x[c];
      }
    }
  }
  for (int b = 0; b < nb; b++) {
    const float* dw = dw_part.data() + (size_t)b * C;
    for (int c = 0; c < C; c++) dweight[c] += dw[c];
  }
}

}  // namespace xwin::cpu
