// AdamW (decoupled weight decay, bias-corrected), matching torch.optim.AdamW:
//   p -= lr * wd * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)      (t is the 1-based step)
#pragma once
#include <cstddef>

namespace xwin::cpu {

struct AdamWHyper {
  float lr, beta1, beta2, eps, weight_decay;
};

void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWHyper& h,
                  long t);
// Sum of squares in double (for the global gradient norm).
double sum_squares(const float* x, size_t n);
void scale_inplace(float* x, float s, size_t n);
// a += b
void add_inplace(float* a, const float* b, size_t n);

}  // namespace xwin::cpu
