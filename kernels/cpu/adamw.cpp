// AdamW update, elementwise; bias corrections are folded into two scalars per step.
#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace xwin::cpu {

void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWHyper& h,
                  long t) {
  const float bc1 = 1.0f - (float)std::pow((double)h.beta1, (double)t);
  const float bc2 = 1.0f - (float)std::pow((double)h.beta2, (double)t);
  const float decay = 1.0f - h.lr * h.weight_decay;
  const float step = h.lr / bc1;
  const float rbc2 = 1.0f / std::sqrt(bc2);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = h.beta1 * m[i] + (1.0f - h.beta1) * gi;
    float vi = h.beta2 * v[i] + (1.0f - h.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * mi / (std::sqrt(vi) * rbc2 + h.eps);
  }
}

// Fixed-size blocks summed in order: the result does not depend on the thread count, which
// bit-exact resume and layout-independent clipping need.
double sum_squares(const float* x, size_t n) {
  const size_t block = 4096;
  const size_t nb = (n + block - 1) / block;
  std::vector<double> part(nb);
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < nb; b++) {
    size_t i1 = std::min(n, (b + 1) * block);
    double s = 0.0;
    for (size_t i = b * block; i < i1; i++) s += (double)x[i] * x[i];
    part[b] = s;
  }
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

void scale_inplace(float* x, float s, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) x[i] *= s;
}

void add_inplace(float* a, const float* b, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) a[i] += b[i];
}

}  // namespace xwin::cpu
