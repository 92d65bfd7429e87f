// Row-major GEMM on cuBLASLt, which is column-major: a row-major C[M, N] is a column-major
// C^T[N, M], and C^T = op(B)^T op(A)^T, so the call swaps the operands (B first) and keeps each
// one's transpose flag; a row-major X with row stride ld is the column-major X^T with the same
// ld. The bias epilogue adds a vector along the rows of the column-major D, i.e. bias[N] to
// every row of the row-major C. Descriptors and the heuristic query are made per call (a few
// microseconds of host time); the algorithm is the heuristic's first choice, with the pointers'
// actual alignment declared so that offset pointers never get an algorithm that needs more.
#include <cstdint>

#include "kernels/cuda/gemm.h"

namespace xwin::cuda {
namespace {

// Largest power of two (at most 256) dividing the address.
uint32_t alignment(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

struct Layouts {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t x = nullptr, y = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Layouts() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (y) cublasLtMatrixLayoutDestroy(y);
    if (x) cublasLtMatrixLayoutDestroy(x);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

void gemm_lt(GemmHandle& handle, bool transa, bool transb, int M, int N, int K, float alpha,
             const void* A, int lda, const void* B, int ldb, float beta, void* C, int ldc,
             const void* bias, cudaDataType_t ab_type, cudaDataType_t c_type, cudaStream_t stream) {
  if (M == 0 || N == 0 || (K == 0 && beta == 1.0f && !bias)) return;  // nothing to add
  require(K > 0, "cuda gemm: K = ", K, " (M ", M, ", N ", N, ")");
  Layouts l;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&l.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  // Column-major D[N, M] = op(X)[N, K] op(Y)[K, M] with X = B, Y = A.
  const cublasOperation_t opx = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opy = transa ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(l.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opx, sizeof opx));
  CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(l.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opy, sizeof opy));
  if (bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(l.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(l.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof bias));
  }
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l.x, ab_type, transb ? K : N, transb ? N : K, ldb));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l.y, ab_type, transa ? M : K, transa ? K : M, lda));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l.c, c_type, N, M, ldc));

  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&l.pref));
  const size_t ws = handle.workspace_bytes();
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      l.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  const uint32_t al_x = alignment(B), al_y = alignment(A), al_c = alignment(C);
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      l.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_x, sizeof al_x));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      l.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_y, sizeof al_y));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      l.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      l.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle.lt(), l.desc, l.x, l.y, l.c, l.c, l.pref, 1,
                                              &result, &found));
  require(found > 0, "cuda gemm: cuBLASLt has no algorithm for M ", M, " N ", N, " K ", K,
          " (transa ", transa, ", transb ", transb, ", lda ", lda, ", ldb ", ldb, ", ldc ", ldc,
          ")");
  CUBLAS_CHECK(cublasLtMatmul(handle.lt(), l.desc, &alpha, B, l.x, A, l.y, &beta, C, l.c, C, l.c,
                              &result.algo, handle.workspace(), ws, stream));
}

}  // namespace

GemmHandle::GemmHandle(size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  if (workspace_bytes_ > 0) CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

GemmHandle::~GemmHandle() {
  cudaFree(workspace_);
  cublasLtDestroy(lt_);
}

void gemm(GemmHandle& handle, bool transa, bool transb, int M, int N, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc,
          const float* bias, cudaStream_t stream) {
  gemm_lt(handle, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, CUDA_R_32F,
          CUDA_R_32F, stream);
}
void gemm(GemmHandle& handle, bool transa, bool transb, int M, int N, int K, float alpha,
          const bf16* A, int lda, const bf16* B, int ldb, float beta, bf16* C, int ldc,
          const bf16* bias, cudaStream_t stream) {
  gemm_lt(handle, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, CUDA_R_16BF,
          CUDA_R_16BF, stream);
}
void gemm(GemmHandle& handle, bool transa, bool transb, int M, int N, int K, float alpha,
          const bf16* A, int lda, const bf16* B, int ldb, float beta, float* C, int ldc,
          const float* bias, cudaStream_t stream) {
  gemm_lt(handle, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, CUDA_R_16BF,
          CUDA_R_32F, stream);
}

void matmul_forward(GemmHandle& handle, float* out, const float* inp, const float* weight, int N,
                    int IC, int OC, cudaStream_t stream) {
  gemm(handle, false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC, nullptr, stream);
}
void matmul_forward(GemmHandle& handle, bf16* out, const bf16* inp, const bf16* weight, int N,
                    int IC, int OC, cudaStream_t stream) {
  gemm(handle, false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC, nullptr, stream);
}

void matmul_backward(GemmHandle& handle, float* dinp, float* dweight, const float* dout,
                     const float* inp, const float* weight, int N, int IC, int OC,
                     cudaStream_t stream) {
  if (dinp)
    gemm(handle, false, false, N, IC, OC, 1.0f, dout, OC, weight, IC, 1.0f, dinp, IC, nullptr,
         stream);
  if (dweight)
    gemm(handle, true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dweight, IC, nullptr,
         stream);
}
void matmul_backward(GemmHandle& handle, bf16* dinp, float* dweight, const bf16* dout,
                     const bf16* inp, const bf16* weight, int N, int IC, int OC,
                     cudaStream_t stream) {
  if (dinp)
    gemm(handle, false, false, N, IC, OC, 1.0f, dout, OC, weight, IC, 1.0f, dinp, IC, nullptr,
         stream);
  if (dweight)
    gemm(handle, true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dweight, IC, nullptr,
         stream);
}

}  // namespace xwin::cuda
