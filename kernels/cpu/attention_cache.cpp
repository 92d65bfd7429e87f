// Decode-time attention: each (row, head, query) walks its keys once. Scores of one query are
// computed into a per-thread buffer of length <= Tmax, then a max, exp and weighted sum of v;
// linear in the context length, parallel over (row, head).
#include "kernels/cpu/attention_cache.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/vexp.h"

namespace xwin::cpu {

void attention_cached(float* out, const float* q, const float* kcache, const float* vcache,
                      const int* slot, const int* pos, int R, int n, int NH, int NKV, int HD,
                      int Tmax) {
  const float scale = 1.0f / std::sqrt((float)HD);
  const int group = NH / NKV;
#pragma omp parallel
  {
    std::vector<float> s(Tmax), acc(HD);
#pragma omp for collapse(2) schedule(dynamic)
    for (int r = 0; r < R; r++)
      for (int h = 0; h < NH; h++) {
        const int kvh = h / group;
        const float* kbase = kcache + ((size_t)slot[r] * Tmax * NKV + kvh) * HD;
        const float* vbase = vcache + ((size_t)slot[r] * Tmax * NKV + kvh) * HD;
        const size_t stride = (size_t)NKV * HD;
        for (int i = 0; i < n; i++) {
          const float* qi = q + (((size_t)r * n + i) * NH + h) * HD;
          const int len = pos[r] + i + 1;
          float mx = -INFINITY;
          for (int t = 0; t < len; t++) {
            const float* kt = kbase + t * stride;
            float d = 0.f;
#pragma omp simd reduction(+ : d)
            for (int c = 0; c < HD; c++) d += qi[c] * kt[c];
            s[t] = d * scale;
            mx = std::max(mx, s[t]);
          }
          float sum = 0.f;
#pragma omp simd reduction(+ : sum)
          for (int t = 0; t < len; t++) {
            s[t] = exp_nonpos(s[t] - mx);
            sum += s[t];
          }
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int t = 0; t < len; t++) {
            const float* vt = vbase + t * stride;
            const float p = s[t];
#pragma omp simd
            for (int c = 0; c < HD; c++) acc[c] += p * vt[c];
          }
          float* o = out + (((size_t)r * n + i) * NH + h) * HD;
          const float inv = 1.0f / sum;
          for (int c = 0; c < HD; c++) o[c] = acc[c] * inv;
        }
      }
  }
}

}  // namespace xwin::cpu
