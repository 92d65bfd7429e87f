// Embedding, RMSNorm, RoPE, SwiGLU and the value head on the GPU against kernels/cpu, in fp32
// (tolerance kTolF32) and bf16 (kTolBf16, CPU fed the same bf16-rounded inputs). Sizes are
// deliberately awkward: C not a multiple of 32 or of the block size, repeated tokens.
#include <cuda_runtime.h>

#include <random>

#include "gpu_check.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"
#include "kernels/cuda/value_head.h"

namespace xwin::test {
namespace {

using cuda::bf16;

std::vector<int32_t> random_tokens(int N, int V, std::mt19937& g) {
  std::uniform_int_distribution<int> d(0, V - 1);
  std::vector<int32_t> t(N);
  for (auto& x : t) x = d(g);
  t[1] = t[0];  // a repeat next to its twin, and V - 1 (the last row)
  t[N - 1] = V - 1;
  return t;
}

template <typename T>
void embedding_case(double tol, const char* tag) {
  const int V = 37, C = 67, N = 150;
  std::mt19937 g(1);
  const auto tokens = random_tokens(N, V, g);
  const bool half = std::is_same<T, bf16>::value;
  auto wte = randn((size_t)V * C, g), dout = randn((size_t)N * C, g),
       dwte = randn((size_t)V * C, g);
  if (half) wte = round_bf16(wte), dout = round_bf16(dout);
  std::vector<float> out((size_t)N * C);
  cpu::embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
  Dev<int32_t> d_tok(tokens);
  Dev<T> d_wte(wte), d_out((size_t)N * C), d_dout(dout);
  Dev<float> d_dwte(dwte);
  cuda::embedding_forward(d_out.get(), d_tok, d_wte.get(), N, C);
  cuda::embedding_backward(d_dwte, d_dout.get(), d_tok, N, C);
  cpu::embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C);
  expect_near_cpu(d_out.floats(), out, tol, std::string(tag) + " embedding out");
  expect_near_cpu(d_dwte.floats(), dwte, tol, std::string(tag) + " embedding dwte (+=)");
  expect_no_cuda_error();
}

TEST(GpuEmbedding, Fp32) {
  embedding_case<float>(kTolF32, "fp32");
}
TEST(GpuEmbedding, Bf16) {
  embedding_case<bf16>(kTolBf16, "bf16");
}

template <typename T>
void rmsnorm_case(double tol, const char* tag) {
  const int N = 37, C = 300;
  const float eps = 1e-5f;
  std::mt19937 g(2);
  const bool half = std::is_same<T, bf16>::value;
  auto inp = randn((size_t)N * C, g, 2.0f), w = randn(C, g), dout = randn((size_t)N * C, g);
  auto dinp = randn((size_t)N * C, g), dw = randn(C, g);
  if (half)
    inp = round_bf16(inp), w = round_bf16(w), dout = round_bf16(dout), dinp = round_bf16(dinp);
  Dev<T> d_inp(inp), d_w(w), d_out((size_t)N * C), d_dout(dout), d_dinp(dinp);
  Dev<float> d_rstd(N), d_dw(dw);
  cuda::rmsnorm_forward(d_out.get(), d_rstd, d_inp.get(), d_w.get(), N, C, eps);
  std::vector<float> out((size_t)N * C), rstd(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), N, C, eps);
  expect_near_cpu(d_out.floats(), out, tol, std::string(tag) + " rmsnorm out");
  expect_near_cpu(d_rstd.floats(), rstd, tol, std::string(tag) + " rmsnorm rstd");
  // The backward reads the CPU's rstd so that it is checked on its own.
  d_rstd.upload(rstd);
  cuda::rmsnorm_backward(d_dinp.get(), d_dw, d_dout.get(), d_inp.get(), d_w.get(), d_rstd, N, C);
  cpu::rmsnorm_backward(dinp.data(), dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N,
                        C);
  expect_near_cpu(d_dinp.floats(), dinp, tol, std::string(tag) + " rmsnorm dinp (+=)");
  expect_near_cpu(d_dw.floats(), dw, tol, std::string(tag) + " rmsnorm dweight (+=)");
  expect_no_cuda_error();
}

TEST(GpuRmsnorm, Fp32) {
  rmsnorm_case<float>(kTolF32, "fp32");
}
TEST(GpuRmsnorm, Bf16) {
  rmsnorm_case<bf16>(kTolBf16, "bf16");
}

template <typename T>
void rope_case(double tol, const char* tag) {
  const int B = 2, T_ = 37, NH = 3, HD = 24, Tmax = T_ + 16;
  const float theta = 10000.0f;
  std::mt19937 g(3);
  const bool half = std::is_same<T, bf16>::value;
  std::vector<float> cos((size_t)Tmax * HD / 2), sin((size_t)Tmax * HD / 2);
  cpu::rope_tables(cos.data(), sin.data(), Tmax, HD, theta);
  Dev<float> d_cos(cos.size()), d_sin(sin.size());
  cuda::rope_upload_tables(d_cos, d_sin, cos.data(), sin.data(), Tmax, HD);
  const size_t n = (size_t)B * T_ * NH * HD;
  auto x = randn(n, g), dx = randn(n, g);
  if (half) x = round_bf16(x), dx = round_bf16(dx);
  Dev<T> d_x(x), d_dx(dx);
  cuda::rope_forward(d_x.get(), d_cos, d_sin, B, T_, NH, HD);
  cuda::rope_backward(d_dx.get(), d_cos, d_sin, B, T_, NH, HD);
  cpu::rope_forward(x.data(), cos.data(), sin.data(), B, T_, NH, HD);
  cpu::rope_backward(dx.data(), cos.data(), sin.data(), B, T_, NH, HD);
  expect_near_cpu(d_x.floats(), x, tol, std::string(tag) + " rope forward");
  expect_near_cpu(d_dx.floats(), dx, tol, std::string(tag) + " rope backward");
  // KV-cache positions: R rows of n tokens starting at pos0[r].
  const int R = 3, len = 5;
  const std::vector<int> pos0 = {0, 7, Tmax - len};
  auto xa = randn((size_t)R * len * NH * HD, g);
  if (half) xa = round_bf16(xa);
  Dev<T> d_xa(xa);
  Dev<int> d_pos0(pos0);
  cuda::rope_forward_at(d_xa.get(), d_cos, d_sin, d_pos0, R, len, NH, HD);
  for (int r = 0; r < R; r++)  // the CPU decode path rotates token by token
    for (int i = 0; i < len; i++) {
      float* row = xa.data() + ((size_t)r * len + i) * NH * HD;
      cpu::rope_token(row, row, cos.data(), sin.data(), pos0[r] + i, NH, HD);
    }
  expect_near_cpu(d_xa.floats(), xa, tol, std::string(tag) + " rope forward_at");
  expect_no_cuda_error();
}

TEST(GpuRope, Fp32) {
  rope_case<float>(kTolF32, "fp32");
}
TEST(GpuRope, Bf16) {
  rope_case<bf16>(kTolBf16, "bf16");
}

template <typename T>
void swiglu_case(double tol, const char* tag) {
  const size_t n = 3 * 1024 + 7;
  std::mt19937 g(4);
  const bool half = std::is_same<T, bf16>::value;
  auto gate = randn(n, g, 4.0f), up = randn(n, g), dout = randn(n, g);
  if (half) gate = round_bf16(gate), up = round_bf16(up), dout = round_bf16(dout);
  Dev<T> d_gate(gate), d_up(up), d_out(n), d_dout(dout), d_dgate(n), d_dup(n);
  cuda::swiglu_forward(d_out.get(), d_gate.get(), d_up.get(), n);
  cuda::swiglu_backward(d_dgate.get(), d_dup.get(), d_dout.get(), d_gate.get(), d_up.get(), n);
  std::vector<float> out(n), dgate(n), dup(n);
  cpu::swiglu_forward(out.data(), gate.data(), up.data(), n);
  cpu::swiglu_backward(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);
  expect_near_cpu(d_out.floats(), out, tol, std::string(tag) + " swiglu out");
  expect_near_cpu(d_dgate.floats(), dgate, tol, std::string(tag) + " swiglu dgate");
  expect_near_cpu(d_dup.floats(), dup, tol, std::string(tag) + " swiglu dup");
  expect_no_cuda_error();
}

TEST(GpuSwiglu, Fp32) {
  swiglu_case<float>(kTolF32, "fp32");
}
TEST(GpuSwiglu, Bf16) {
  swiglu_case<bf16>(kTolBf16, "bf16");
}

// Reference: the CPU model's value head, matmul_forward(out, h, w, N, C, 1) + b; backward via
// matmul_backward into zeroed dh (so += is =) and sum(dout) for the bias.
template <typename T>
void value_head_case(double tol, const char* tag) {
  const int N = 45, C = 130;
  std::mt19937 g(5);
  const bool half = std::is_same<T, bf16>::value;
  auto h = randn((size_t)N * C, g), w = randn(C, g), b = randn(1, g), dout = randn(N, g);
  auto dw = randn(C, g), db = randn(1, g);
  for (int n = 0; n < N; n += 3) dout[n] = 0.f;  // rows without a reward
  if (half) h = round_bf16(h), w = round_bf16(w), b = round_bf16(b);
  Dev<T> d_h(h), d_w(w), d_b(b), d_dh((size_t)N * C);
  Dev<float> d_out(N), d_dout(dout), d_dw(dw), d_db(db);
  cuda::value_head_forward(d_out, d_h.get(), d_w.get(), d_b.get(), N, C);
  cuda::value_head_backward(d_dh.get(), d_dw, d_db, d_dout, d_h.get(), d_w.get(), N, C);
  std::vector<float> out(N), dh((size_t)N * C, 0.f);
  cpu::matmul_forward(out.data(), h.data(), w.data(), N, C, 1);
  for (auto& o : out) o += b[0];
  cpu::matmul_backward(dh.data(), dw.data(), dout.data(), h.data(), w.data(), N, C, 1);
  for (float d : dout) db[0] += d;
  expect_near_cpu(d_out.floats(), out, tol, std::string(tag) + " value head out");
  expect_near_cpu(d_dh.floats(), dh, tol, std::string(tag) + " value head dh");
  expect_near_cpu(d_dw.floats(), dw, tol, std::string(tag) + " value head dw (+=)");
  expect_near_cpu(d_db.floats(), db, tol, std::string(tag) + " value head db (+=)");
  expect_no_cuda_error();
}

TEST(GpuValueHead, Fp32) {
  value_head_case<float>(kTolF32, "fp32");
}
TEST(GpuValueHead, Bf16) {
  value_head_case<bf16>(kTolBf16, "bf16");
}

}  // namespace
}  // namespace xwin::test
