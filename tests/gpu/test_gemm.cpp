// cuBLASLt GEMM wrapper against cblas_sgemm (row-major) for every transpose pair, padded leading
// dimensions, alpha/beta and the bias epilogue; the linear layer against cpu::matmul_*.
#include <cblas.h>
#include <cuda_runtime.h>

#include <random>
#include <string>

#include "gpu_check.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/gemm.h"

namespace xwin::test {
namespace {

using cuda::bf16;

// C = alpha op(A) op(B) + beta C (+ bias) on the CPU, then the same on the GPU with inputs of
// type In and output of type Out.
template <typename In, typename Out>
void gemm_case(bool ta, bool tb, bool with_bias, double tol, const std::string& tag) {
  const bool half_in = std::is_same<In, bf16>::value, half_out = std::is_same<Out, bf16>::value;
  const int M = 37, N = 53, K = 29;
  const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
  const float alpha = 0.7f, beta = 0.3f;
  std::mt19937 g(13);
  auto A = randn((size_t)(ta ? K : M) * lda, g), B = randn((size_t)(tb ? N : K) * ldb, g);
  auto C = randn((size_t)M * ldc, g), bias = randn(N, g);
  if (half_in) A = round_bf16(A), B = round_bf16(B);
  if (half_out) C = round_bf16(C), bias = round_bf16(bias);
  Dev<In> d_A(A), d_B(B);
  Dev<Out> d_C(C), d_bias(bias);
  cuda::GemmHandle handle;
  cuda::gemm(handle, ta, tb, M, N, K, alpha, d_A.get(), lda, d_B.get(), ldb, beta, d_C.get(), ldc,
             with_bias ? d_bias.get() : nullptr);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
              K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  if (with_bias)
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++) C[(size_t)m * ldc + n] += bias[n];
  expect_near_cpu(d_C.floats(), C, tol, tag);
  expect_no_cuda_error();
}

template <typename In, typename Out>
void all_transposes(double tol, const char* tag) {
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      gemm_case<In, Out>(ta, tb, false, tol,
                         std::string(tag) + (ta ? " T" : " N") + (tb ? "T" : "N"));
  gemm_case<In, Out>(false, true, true, tol, std::string(tag) + " NT + bias");
}

TEST(GpuGemm, Fp32) {
  all_transposes<float, float>(kTolF32, "fp32");
}
TEST(GpuGemm, Bf16ToBf16) {
  all_transposes<bf16, bf16>(kTolBf16, "bf16->bf16");
}
TEST(GpuGemm, Bf16ToFp32) {
  all_transposes<bf16, float>(kTolBf16, "bf16->fp32");
}

template <typename T>
void matmul_case(double tol, const char* tag) {
  const bool half = std::is_same<T, bf16>::value;
  const int N = 45, IC = 70, OC = 33;
  std::mt19937 g(17);
  auto inp = randn((size_t)N * IC, g), w = randn((size_t)OC * IC, g),
       dout = randn((size_t)N * OC, g);
  auto dinp = randn((size_t)N * IC, g), dw = randn((size_t)OC * IC, g);
  if (half)
    inp = round_bf16(inp), w = round_bf16(w), dout = round_bf16(dout), dinp = round_bf16(dinp);
  Dev<T> d_inp(inp), d_w(w), d_dout(dout), d_out((size_t)N * OC), d_dinp(dinp);
  Dev<float> d_dw(dw);
  cuda::GemmHandle handle;
  cuda::matmul_forward(handle, d_out.get(), d_inp.get(), d_w.get(), N, IC, OC);
  cuda::matmul_backward(handle, d_dinp.get(), d_dw, d_dout.get(), d_inp.get(), d_w.get(), N, IC,
                        OC);
  std::vector<float> out((size_t)N * OC);
  cpu::matmul_forward(out.data(), inp.data(), w.data(), N, IC, OC);
  cpu::matmul_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), N, IC, OC);
  expect_near_cpu(d_out.floats(), out, tol, std::string(tag) + " matmul out");
  expect_near_cpu(d_dinp.floats(), dinp, tol, std::string(tag) + " matmul dinp (+=)");
  expect_near_cpu(d_dw.floats(), dw, tol, std::string(tag) + " matmul dweight (+=)");
  expect_no_cuda_error();
}

TEST(GpuMatmul, Fp32) {
  matmul_case<float>(kTolF32, "fp32");
}
TEST(GpuMatmul, Bf16) {
  matmul_case<bf16>(kTolBf16, "bf16");
}

}  // namespace
}  // namespace xwin::test
