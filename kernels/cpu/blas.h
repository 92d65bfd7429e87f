// sgemm with our own threading. OpenBLAS threads each call by itself; on the small products of
// a small model (a 2048 x 128 x 128 projection) its 2-thread call reached 1.25-1.4x its 1-thread
// rate inside a training step, where two single-threaded calls on halves of the rows reach ~1.9x
// (bench/xwin_bench --phases). sgemm_rows splits the rows of C over the OpenMP threads, each
// block one single-threaded sgemm over the whole K: no sum is split, and a given thread count
// gives the same result on every run (other thread counts: to rounding, as before).
#pragma once

namespace xwin::cpu {

// OpenBLAS single-threaded for the guard's lifetime, restored after. Debian's OpenBLAS 0.3.21
// does not notice it is called from inside an OpenMP region: it takes its threaded path, whose
// callers spin on one shared buffer, and ran 5-10x slower than one thread per call. The number
// of threads of our own region is taken before (OpenBLAS's OpenMP build sets OpenMP's as well).
// Inside someone else's parallel region OpenBLAS's settings are left alone (they are global).
class BlasSingleThreaded {
 public:
  BlasSingleThreaded();
  ~BlasSingleThreaded();
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;
  int threads() const { return omp_; }

 private:
  int omp_, blas_;
};

// C[M, N] = alpha op(A) op(B) + beta C, row-major (op = transpose when ta / tb): one cblas_sgemm.
void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, long lda,
           const float* B, long ldb, float beta, float* C, long ldc);

// As sgemm, with C's rows in one block per OpenMP thread (blocks of at least 64 rows, a multiple
// of 16). Inside a parallel region, or when the rows make one block, one plain sgemm.
void sgemm_rows(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, long lda,
                const float* B, long ldb, float beta, float* C, long ldc);

}  // namespace xwin::cpu
