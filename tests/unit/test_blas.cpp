// sgemm_rows (C's rows split over OpenMP threads, one single-threaded sgemm per block) against a
// double reference for every transposition, with beta 0 and 1, row counts that leave a short
// last block, and 1-3 threads; the same result on a rerun at the same thread count (the blocks'
// edge rows take other register kernels than in one call, so across thread counts only to
// rounding); inside a parallel region one call per caller; the thread settings restored after.
#include <omp.h>

#include <random>
#include <vector>

#include "check.h"
#include "kernels/cpu/blas.h"

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);

namespace xwin::test {
namespace {

struct Case {
  bool ta, tb;
  int M, N, K;
};

// C = alpha op(A) op(B) + beta C0 in double; A, B stored as sgemm reads them (row-major).
std::vector<double> reference(const Case& c, const std::vector<float>& A,
                              const std::vector<float>& B, const std::vector<float>& C0,
                              float alpha, float beta) {
  const long lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
  std::vector<double> out(size_t(c.M) * c.N);
  for (int i = 0; i < c.M; ++i)
    for (int j = 0; j < c.N; ++j) {
      double s = 0.0;
      for (int k = 0; k < c.K; ++k)
        s += (double)(c.ta ? A[k * lda + i] : A[i * lda + k]) *
             (double)(c.tb ? B[j * ldb + k] : B[k * ldb + j]);
      out[size_t(i) * c.N + j] = alpha * s + beta * (double)C0[size_t(i) * c.N + j];
    }
  return out;
}

std::vector<float> run(const Case& c, const std::vector<float>& A, const std::vector<float>& B,
                       std::vector<float> C, float alpha, float beta, int threads, bool rows) {
  const long lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  if (rows)
    cpu::sgemm_rows(c.ta, c.tb, c.M, c.N, c.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(),
                    c.N);
  else
    cpu::sgemm(c.ta, c.tb, c.M, c.N, c.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), c.N);
  EXPECT_EQ(openblas_get_num_threads(), threads) << "OpenBLAS's thread count not restored";
  EXPECT_EQ(omp_get_max_threads(), threads) << "OpenMP's thread count not restored";
  omp_set_num_threads(saved);
  openblas_set_num_threads(saved);
  return C;
}

TEST(SgemmRows, MatchesDoubleReferenceAndRepeats) {
  std::mt19937 g(41);
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const int M : {300, 130, 40}) {  // 3 x 100 rows; 2 blocks of 80 + 50; one call
        const Case c{ta, tb, M, 37, 53};
        const std::vector<float> A = randn(size_t(M) * c.K, g), B = randn(size_t(c.K) * c.N, g),
                                 C0 = randn(size_t(M) * c.N, g);
        for (const float beta : {0.0f, 1.0f}) {
          const std::string what = std::string("ta ") + (ta ? "T" : "N") + " tb " +
                                   (tb ? "T" : "N") + " M " + std::to_string(M) + " beta " +
                                   std::to_string(beta);
          const auto want = reference(c, A, B, C0, 0.5f, beta);
          const auto one = run(c, A, B, C0, 0.5f, beta, 1, false);
          expect_close(one.data(), want, 1e-5, what + " (one sgemm)");
          for (const int threads : {1, 2, 3}) {
            const auto got = run(c, A, B, C0, 0.5f, beta, threads, true);
            expect_close(got.data(), want, 1e-5, what + " threads " + std::to_string(threads));
            EXPECT_EQ(got, run(c, A, B, C0, 0.5f, beta, threads, true))
                << what << " threads " << threads << ": a rerun differs";
          }
        }
      }
}

TEST(SgemmRows, InsideAParallelRegionOneCallPerCaller) {
  std::mt19937 g(42);
  const Case c{false, true, 256, 32, 48};
  const std::vector<float> A = randn(size_t(c.M) * c.K, g), B = randn(size_t(c.N) * c.K, g),
                           C0(size_t(c.M) * c.N, 0.f);
  const auto want = reference(c, A, B, C0, 1.0f, 0.0f);
  std::vector<std::vector<float>> out(2, C0);
  cpu::BlasSingleThreaded blas1;
#pragma omp parallel num_threads(2)
  {
    auto& C = out[omp_get_thread_num()];
    cpu::sgemm_rows(false, true, c.M, c.N, c.K, 1.0f, A.data(), c.K, B.data(), c.K, 0.0f, C.data(),
                    c.N);
  }
  for (const auto& C : out) expect_close(C.data(), want, 1e-5, "per-thread product");
}

}  // namespace
}  // namespace xwin::test
