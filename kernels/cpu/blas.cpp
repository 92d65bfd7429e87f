#include "kernels/cpu/blas.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

// OpenBLAS extensions (Debian's cblas.h does not declare them).
extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);

namespace xwin::cpu {

BlasSingleThreaded::BlasSingleThreaded()
    : omp_(omp_get_max_threads()), blas_(omp_in_parallel() ? 1 : openblas_get_num_threads()) {
  if (blas_ > 1) openblas_set_num_threads(1);
}

BlasSingleThreaded::~BlasSingleThreaded() {
  if (blas_ > 1) openblas_set_num_threads(blas_);
  omp_set_num_threads(omp_);
}

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, long lda,
           const float* B, long ldb, float beta, float* C, long ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

namespace {
constexpr int kMinRows = 64;  // fewer rows per thread: one call (OpenBLAS threads it or not)
}  // namespace

void sgemm_rows(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, long lda,
                const float* B, long ldb, float beta, float* C, long ldc) {
  const int P = omp_in_parallel() ? 1 : std::min(omp_get_max_threads(), M / kMinRows);
  if (P <= 1) return sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const int per = (M / P + 15) / 16 * 16;  // rows per block, a multiple of 16
  const BlasSingleThreaded blas1;
#pragma omp parallel for num_threads(P) schedule(static)
  for (int p = 0; p < P; p++) {
    const int r0 = std::min(M, p * per), rows = std::min(M, r0 + per) - r0;
    if (rows > 0)
      sgemm(ta, tb, rows, N, K, alpha, ta ? A + r0 : A + r0 * lda, lda, B, ldb, beta, C + r0 * ldc,
            ldc);
  }
}

}  // namespace xwin::cpu
