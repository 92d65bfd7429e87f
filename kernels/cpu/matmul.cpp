// Linear layers as three sgemm calls on row-major data, threaded by splitting the rows of the
// result (sgemm_rows, kernels/cpu/blas.h): of out and dinp the N token rows, of dweight its OC
// rows.
//
// The packed forward: a tile is RB rows x one panel of 16 outputs, its 2 * RB accumulators in
// registers (RB = 6: 12 accumulators, 2 weight vectors and a broadcast input fill the 16 ymm
// registers); per input channel it loads the panel's 16 weights and broadcasts each row's input.
// Rows go in blocks small enough that a block's inputs stay in L2 while every panel passes over
// them; the weights then stream from memory once per block (once per call when decoding).
#include "kernels/cpu/matmul.h"

#include <algorithm>

#include "kernels/cpu/blas.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define XWIN_MATMUL_AVX2 1
#endif

namespace xwin::cpu {

void matmul_forward(float* out, const float* inp, const float* weight, int N, int IC, int OC) {
  sgemm_rows(false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC);
}

void matmul_forward_acc(float* out, const float* inp, const float* weight, int N, int IC, int OC) {
  sgemm_rows(false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 1.0f, out, OC);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int N, int IC, int OC) {
  if (dinp) sgemm_rows(false, false, N, IC, OC, 1.0f, dout, OC, weight, IC, 1.0f, dinp, IC);
  if (dweight) sgemm_rows(true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
}

namespace {

constexpr int kPanel = 16;      // output channels per panel
constexpr int kTileRows = 6;    // rows per register tile
constexpr int kBlockRows = 96;  // rows per block (a multiple of kTileRows)

// Writes (or adds) the first n of a tile row's 16 results; n < 16 only in a padded last panel.
inline void store_row(float* o, const float* acc, int n, bool accumulate) {
  for (int j = 0; j < n; j++) o[j] = accumulate ? o[j] + acc[j] : acc[j];
}

#ifdef XWIN_MATMUL_AVX2
// RB rows of x (ldx apart) against one panel; results to out (ldo apart), n valid columns.
template <int RB>
void tile(float* out, size_t ldo, const float* x, size_t ldx, const float* panel, int IC, int n,
          bool accumulate) {
  __m256 a[RB][2];
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++) a[r][0] = a[r][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int k = 0; k < IC; k++) {
    const __m256 w0 = _mm256_loadu_ps(panel + (size_t)k * kPanel);
    const __m256 w1 = _mm256_loadu_ps(panel + (size_t)k * kPanel + 8);
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++) {
      const __m256 xv = _mm256_broadcast_ss(x + r * ldx + k);
      a[r][0] = _mm256_fmadd_ps(xv, w0, a[r][0]);
      a[r][1] = _mm256_fmadd_ps(xv, w1, a[r][1]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RB; r++) {
    float* o = out + r * ldo;
    if (n == kPanel) {
      if (accumulate) {
        a[r][0] = _mm256_add_ps(a[r][0], _mm256_loadu_ps(o));
        a[r][1] = _mm256_add_ps(a[r][1], _mm256_loadu_ps(o + 8));
      }
      _mm256_storeu_ps(o, a[r][0]);
      _mm256_storeu_ps(o + 8, a[r][1]);
    } else {
      float acc[kPanel];
      _mm256_storeu_ps(acc, a[r][0]);
      _mm256_storeu_ps(acc + 8, a[r][1]);
      store_row(o, acc, n, accumulate);
    }
  }
}

void tiles(float* out, size_t ldo, const float* x, size_t ldx, const float* panel, int IC, int n,
           int rows, bool accumulate) {
  int r = 0;
  for (; r + kTileRows <= rows; r += kTileRows)
    tile<kTileRows>(out + r * ldo, ldo, x + r * ldx, ldx, panel, IC, n, accumulate);
  out += r * ldo, x += r * ldx;
  switch (rows - r) {
    case 5:
      return tile<5>(out, ldo, x, ldx, panel, IC, n, accumulate);
    case 4:
      return tile<4>(out, ldo, x, ldx, panel, IC, n, accumulate);
    case 3:
      return tile<3>(out, ldo, x, ldx, panel, IC, n, accumulate);
    case 2:
      return tile<2>(out, ldo, x, ldx, panel, IC, n, accumulate);
    case 1:
      return tile<1>(out, ldo, x, ldx, panel, IC, n, accumulate);
    default:
      return;
  }
}
#else
// Portable: one row at a time, the 16 accumulators of a panel as a vectorisable array.
void tiles(float* out, size_t ldo, const float* x, size_t ldx, const float* panel, int IC, int n,
           int rows, bool accumulate) {
  for (int r = 0; r < rows; r++) {
    float acc[kPanel] = {};
    const float* xr = x + r * ldx;
    for (int k = 0; k < IC; k++)
#pragma omp simd
      for (int j = 0; j < kPanel; j++) acc[j] += xr[k] * panel[(size_t)k * kPanel + j];
    store_row(out + r * ldo, acc, n, accumulate);
  }
}
#endif

}  // namespace

size_t matmul_packed_size(int IC, int OC) {
  return (size_t)(OC + kPanel - 1) / kPanel * kPanel * IC;
}

void matmul_pack(float* packed, const float* weight, int IC, int OC) {
  const int np = (OC + kPanel - 1) / kPanel;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < np; p++) {
    float* panel = packed + (size_t)p * IC * kPanel;
    for (int k = 0; k < IC; k++)
      for (int j = 0; j < kPanel; j++) {
        const int o = p * kPanel + j;
        panel[(size_t)k * kPanel + j] = o < OC ? weight[(size_t)o * IC + k] : 0.f;
      }
  }
}

void matmul_forward_packed(float* out, const float* inp, const float* packed, int N, int IC, int OC,
                           bool accumulate) {
  const int np = (OC + kPanel - 1) / kPanel, nb = (N + kBlockRows - 1) / kBlockRows;
  // Small products (a few decode rows of a tiny model) are not worth waking the threads for.
  const bool parallel = (size_t)N * IC * OC >= (size_t(1) << 20);
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int b = 0; b < nb; b++)
    for (int p = 0; p < np; p++) {
      const int r0 = b * kBlockRows, rows = std::min(kBlockRows, N - r0);
      const int n = std::min(kPanel, OC - p * kPanel);
      tiles(out + (size_t)r0 * OC + p * kPanel, OC, inp + (size_t)r0 * IC, IC,
            packed + (size_t)p * IC * kPanel, IC, n, rows, accumulate);
    }
}

}  // namespace xwin::cpu
