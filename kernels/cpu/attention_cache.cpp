// Decode-time attention: each (row, head, query) walks its keys once. Scores of one query are
// computed into a per-thread buffer of length <= Tmax, then a max, exp and weighted sum of v;
// linear in the context length, parallel over (row, head).
//
// With AVX2 + FMA and head_dim in {8, 16, 32, 64, 128} the walks are register kernels: the
// query and the output accumulators stay in ymm registers, eight keys' dot products are summed
// across lanes together (one transpose-add of eight vectors instead of eight horizontal sums),
// and the v walk takes two keys at a time into two accumulator sets so the FMA chains overlap.
// A decode step of many rows (n = 1, at least 4 rows per thread) instead gives each task a whole
// row: it walks the row's cache positions in order, all heads at once, so the cache (read once
// per step, the kernel's real cost: it does not fit in cache) streams sequentially rather than
// as one strided walk per head. Otherwise, or for other head sizes, the portable loops run.
// The paths sum in different orders, so results agree to float rounding, not bit for bit.
#include "kernels/cpu/attention_cache.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define XWIN_ATTN_CACHE_AVX2 1
#endif

#include "kernels/cpu/vexp.h"

namespace xwin::cpu {
namespace {

// exp(s[t] - mx) in place for t < len; returns their sum.
inline float exp_shift_sum(float* s, int len, float mx) {
  float sum = 0.f;
#pragma omp simd reduction(+ : sum)
  for (int t = 0; t < len; t++) {
    s[t] = exp_nonpos(s[t] - mx);
    sum += s[t];
  }
  return sum;
}

// One query against keys/values 0..len-1 (rows `stride` floats apart): o = softmax(q.k * scale) v.
void attend_portable(float* o, const float* qi, const float* kbase, const float* vbase,
                     size_t stride, int len, int HD, float scale, float* s, float* acc) {
  float mx = -INFINITY;
  for (int t = 0; t < len; t++) {
    const float* kt = kbase + t * stride;
    float d = 0.f;
#pragma omp simd reduction(+ : d)
    for (int c = 0; c < HD; c++) d += qi[c] * kt[c];
    s[t] = d * scale;
    mx = std::max(mx, s[t]);
  }
  const float sum = exp_shift_sum(s, len, mx);
  std::fill(acc, acc + HD, 0.f);
  for (int t = 0; t < len; t++) {
    const float* vt = vbase + t * stride;
    const float p = s[t];
#pragma omp simd
    for (int c = 0; c < HD; c++) acc[c] += p * vt[c];
  }
  const float inv = 1.0f / sum;
  for (int c = 0; c < HD; c++) o[c] = acc[c] * inv;
}

#ifdef XWIN_ATTN_CACHE_AVX2
// The eight lane sums of a0..a7, in order.
inline __m256 sum_lanes8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5,
                         __m256 a6, __m256 a7) {
  const __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
  const __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

inline float sum_lanes(__m256 a) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// q . k over NC chunks of 8 floats, q already in registers.
template <int NC>
inline __m256 dot_chunks(const __m256* q, const float* k) {
  __m256 a = _mm256_mul_ps(q[0], _mm256_loadu_ps(k));
  for (int c = 1; c < NC; c++) a = _mm256_fmadd_ps(q[c], _mm256_loadu_ps(k + 8 * c), a);
  return a;
}

// attend_portable for HD = 8 * NC.
template <int NC>
void attend_avx2(float* o, const float* qi, const float* kbase, const float* vbase, size_t stride,
                 int len, float scale, float* s) {
  __m256 q[NC];
  for (int c = 0; c < NC; c++) q[c] = _mm256_loadu_ps(qi + 8 * c);
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vmx = _mm256_set1_ps(-INFINITY);
  int t = 0;
  for (; t + 8 <= len; t += 8) {
    const float* k = kbase + t * stride;
    const __m256 d =
        sum_lanes8(dot_chunks<NC>(q, k), dot_chunks<NC>(q, k + stride),
                   dot_chunks<NC>(q, k + 2 * stride), dot_chunks<NC>(q, k + 3 * stride),
                   dot_chunks<NC>(q, k + 4 * stride), dot_chunks<NC>(q, k + 5 * stride),
                   dot_chunks<NC>(q, k + 6 * stride), dot_chunks<NC>(q, k + 7 * stride));
    const __m256 sc = _mm256_mul_ps(d, vscale);
    _mm256_storeu_ps(s + t, sc);
    vmx = _mm256_max_ps(vmx, sc);
  }
  float buf[8];
  _mm256_storeu_ps(buf, vmx);
  float mx = buf[0];
  for (int j = 1; j < 8; j++) mx = std::max(mx, buf[j]);
  for (; t < len; t++) {
    s[t] = sum_lanes(dot_chunks<NC>(q, kbase + t * stride)) * scale;
    mx = std::max(mx, s[t]);
  }
  const float sum = exp_shift_sum(s, len, mx);
  __m256 a[NC], b[NC];
  for (int c = 0; c < NC; c++) a[c] = b[c] = _mm256_setzero_ps();
  t = 0;
  for (; t + 2 <= len; t += 2) {
    const float* v0 = vbase + t * stride;
    const float* v1 = v0 + stride;
    const __m256 p0 = _mm256_set1_ps(s[t]), p1 = _mm256_set1_ps(s[t + 1]);
    for (int c = 0; c < NC; c++) {
      a[c] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8 * c), a[c]);
      b[c] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v1 + 8 * c), b[c]);
    }
  }
  if (t < len) {
    const float* v0 = vbase + t * stride;
    const __m256 p0 = _mm256_set1_ps(s[t]);
    for (int c = 0; c < NC; c++) a[c] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8 * c), a[c]);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  for (int c = 0; c < NC; c++)
    _mm256_storeu_ps(o + 8 * c, _mm256_mul_ps(_mm256_add_ps(a[c], b[c]), inv));
}

// One decode query per head (n = 1) for every head of a row, walking the row's cache positions
// in order: position t's keys (values) of all KV heads are one contiguous run of NKV * HD
// floats, so the cache streams through once, sequentially, instead of as NH interleaved strided
// walks. S [len, NH] and acc [NH * HD] are scratch.
template <int NC>
void attend_row_avx2(float* o, const float* q, const float* kbase, const float* vbase, int len,
                     int NH, int NKV, float scale, float* S, float* acc) {
  constexpr int HD = 8 * NC;
  const int group = NH / NKV;
  const size_t stride = (size_t)NKV * HD;
  for (int t = 0; t < len; t++) {
    const float* k = kbase + t * stride;
    float* st = S + (size_t)t * NH;
    int h = 0;
    for (; h + 8 <= NH; h += 8) {
      __m256 d[8];
      for (int j = 0; j < 8; j++) {
        const float* qh = q + (size_t)(h + j) * HD;
        const float* kh = k + (size_t)((h + j) / group) * HD;
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(qh), _mm256_loadu_ps(kh));
        for (int c = 1; c < NC; c++)
          a = _mm256_fmadd_ps(_mm256_loadu_ps(qh + 8 * c), _mm256_loadu_ps(kh + 8 * c), a);
        d[j] = a;
      }
      _mm256_storeu_ps(st + h,
                       _mm256_mul_ps(sum_lanes8(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]),
                                     _mm256_set1_ps(scale)));
    }
    for (; h < NH; h++) {
      const float* qh = q + (size_t)h * HD;
      const float* kh = k + (size_t)(h / group) * HD;
      __m256 a = _mm256_mul_ps(_mm256_loadu_ps(qh), _mm256_loadu_ps(kh));
      for (int c = 1; c < NC; c++)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(qh + 8 * c), _mm256_loadu_ps(kh + 8 * c), a);
      st[h] = sum_lanes(a) * scale;
    }
  }
  // Softmax over t for each head: S is [len][NH], heads as the lanes.
  float* mx = acc;  // acc's first NH and next NH floats hold max and sum until the v walk
  float* sum = acc + NH;
  std::fill(mx, mx + NH, -INFINITY);
  std::fill(sum, sum + NH, 0.f);
  for (int t = 0; t < len; t++)
#pragma omp simd
    for (int h = 0; h < NH; h++) mx[h] = std::max(mx[h], S[(size_t)t * NH + h]);
  for (int t = 0; t < len; t++)
#pragma omp simd
    for (int h = 0; h < NH; h++) {
      const float e = exp_nonpos(S[(size_t)t * NH + h] - mx[h]);
      S[(size_t)t * NH + h] = e;
      sum[h] += e;
    }
  // 1/sum per head into the output's first lane of each head, then the v walk into acc.
  for (int h = 0; h < NH; h++) o[(size_t)h * HD] = 1.0f / sum[h];
  std::fill(acc, acc + (size_t)NH * HD, 0.f);
  for (int t = 0; t < len; t++) {
    const float* v = vbase + t * stride;
    const float* st = S + (size_t)t * NH;
    for (int h = 0; h < NH; h++) {
      const __m256 p = _mm256_set1_ps(st[h]);
      const float* vh = v + (size_t)(h / group) * HD;
      float* ah = acc + (size_t)h * HD;
      for (int c = 0; c < NC; c++)
        _mm256_storeu_ps(ah + 8 * c, _mm256_fmadd_ps(p, _mm256_loadu_ps(vh + 8 * c),
                                                     _mm256_loadu_ps(ah + 8 * c)));
    }
  }
  for (int h = 0; h < NH; h++) {
    const __m256 inv = _mm256_set1_ps(o[(size_t)h * HD]);
    for (int c = 0; c < NC; c++)
      _mm256_storeu_ps(o + (size_t)h * HD + 8 * c,
                       _mm256_mul_ps(_mm256_loadu_ps(acc + (size_t)h * HD + 8 * c), inv));
  }
}
#endif

}  // namespace

void attention_cached(float* out, const float* q, const float* kcache, const float* vcache,
                      const int* slot, const int* pos, int R, int n, int NH, int NKV, int HD,
                      int Tmax) {
  const float scale = 1.0f / std::sqrt((float)HD);
  const int group = NH / NKV;
  const size_t stride = (size_t)NKV * HD;
  using Kernel =
      void (*)(float*, const float*, const float*, const float*, size_t, int, float, float*);
  using RowKernel = void (*)(float*, const float*, const float*, const float*, int, int, int, float,
                             float*, float*);
  Kernel kernel = nullptr;
  RowKernel row_kernel = nullptr;
#ifdef XWIN_ATTN_CACHE_AVX2
  switch (HD) {
    case 8:
      kernel = attend_avx2<1>, row_kernel = attend_row_avx2<1>;
      break;
    case 16:
      kernel = attend_avx2<2>, row_kernel = attend_row_avx2<2>;
      break;
    case 32:
      kernel = attend_avx2<4>, row_kernel = attend_row_avx2<4>;
      break;
    case 64:
      kernel = attend_avx2<8>, row_kernel = attend_row_avx2<8>;
      break;
    case 128:
      kernel = attend_avx2<16>, row_kernel = attend_row_avx2<16>;
      break;
    default:
      break;
  }
#endif
  // Decode steps of many rows: a row (all its heads) per task, the cache streamed in order.
  // Otherwise (prefill, few rows) a (row, head) per task.
  if (row_kernel && n == 1 && R >= 4 * omp_get_max_threads()) {
#pragma omp parallel
    {
      std::vector<float> S((size_t)Tmax * NH), acc(std::max<size_t>((size_t)NH * HD, 2 * NH));
#pragma omp for schedule(dynamic)
      for (int r = 0; r < R; r++) {
        const size_t base = (size_t)slot[r] * Tmax * stride;
        row_kernel(out + (size_t)r * NH * HD, q + (size_t)r * NH * HD, kcache + base, vcache + base,
                   pos[r] + 1, NH, NKV, scale, S.data(), acc.data());
      }
    }
    return;
  }
#pragma omp parallel
  {
    std::vector<float> s(Tmax), acc(HD);
#pragma omp for collapse(2) schedule(dynamic)
    for (int r = 0; r < R; r++)
      for (int h = 0; h < NH; h++) {
        const int kvh = h / group;
        const float* kbase = kcache + ((size_t)slot[r] * Tmax * NKV + kvh) * HD;
        const float* vbase = vcache + ((size_t)slot[r] * Tmax * NKV + kvh) * HD;
        for (int i = 0; i < n; i++) {
          const float* qi = q + (((size_t)r * n + i) * NH + h) * HD;
          float* o = out + (((size_t)r * n + i) * NH + h) * HD;
          const int len = pos[r] + i + 1;
          if (kernel)
            kernel(o, qi, kbase, vbase, stride, len, scale, s.data());
          else
            attend_portable(o, qi, kbase, vbase, stride, len, HD, scale, s.data(), acc.data());
        }
      }
  }
}

}  // namespace xwin::cpu
