// GEMMs on the device through cuBLASLt, with the row-major semantics of cblas_sgemm as the CPU
// kernels call it: C[M, N] = alpha * op(A)[M, K] op(B)[K, N] + beta * C (+ bias[N] added to every
// row, when given). Always fp32 accumulation (CUBLAS_COMPUTE_32F, no TF32): fp32 in and out, or
// bf16 in with bf16 or fp32 out. Also the linear layer of cpu::matmul_* on top of it.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

// A cuBLASLt handle and its workspace; one per device (and per concurrently used stream).
class GemmHandle {
 public:
  explicit GemmHandle(size_t workspace_bytes = size_t(32) << 20);
  ~GemmHandle();
  GemmHandle(const GemmHandle&) = delete;
  GemmHandle& operator=(const GemmHandle&) = delete;
  cublasLtHandle_t lt() const { return lt_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// transa / transb: op(X) = X^T. Leading dimensions are row strides, as for CblasRowMajor.
void gemm(GemmHandle& handle, bool transa, bool transb, int M, int N, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc,
          const float* bias = nullptr, cudaStream_t stream = 0);
void gemm(GemmHandle& handle, bool transa, bool transb, int M, int N, int K, float alpha,
          const bf16* A, int lda, const bf16* B, int ldb, float beta, bf16* C, int ldc,
          const bf16* bias = nullptr, cudaStream_t stream = 0);
void gemm(GemmHandle& handle, bool transa, bool transb, int M, int N, int K, float alpha,
          const bf16* A, int lda, const bf16* B, int ldb, float beta, float* C, int ldc,
          const float* bias = nullptr, cudaStream_t stream = 0);

// Linear layer, as cpu::matmul_*: out[N, OC] = inp[N, IC] @ weight[OC, IC]^T (overwritten).
void matmul_forward(GemmHandle& handle, float* out, const float* inp, const float* weight, int N,
                    int IC, int OC, cudaStream_t stream = 0);
void matmul_forward(GemmHandle& handle, bf16* out, const bf16* inp, const bf16* weight, int N,
                    int IC, int OC, cudaStream_t stream = 0);
// dinp += dout @ weight (skipped when null); dweight += dout^T @ inp (skipped when null). In the
// bf16 overload dweight stays fp32 (the gradient of the fp32 master weights).
void matmul_backward(GemmHandle& handle, float* dinp, float* dweight, const float* dout,
                     const float* inp, const float* weight, int N, int IC, int OC,
                     cudaStream_t stream = 0);
void matmul_backward(GemmHandle& handle, bf16* dinp, float* dweight, const bf16* dout,
                     const bf16* inp, const bf16* weight, int N, int IC, int OC,
                     cudaStream_t stream = 0);

}  // namespace xwin::cuda
