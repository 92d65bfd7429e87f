// Fused LM head + masked cross-entropy on the GPU against cpu::lm_head_ce: V not a multiple of 64,
// several chunks with a partial last one, and skipped rows (weight 0) spread over the batch.
#include <cuda_runtime.h>

#include <cmath>
#include <random>
#include <string>

#include "gpu_check.h"
#include "kernels/cpu/crossentropy.h"
#include "kernels/cuda/crossentropy.h"

namespace xwin::test {
namespace {

using cuda::bf16;

template <typename T>
void lm_head_case(double tol, const char* tag) {
  const bool half = std::is_same<T, bf16>::value;
  const int N = 50, C = 40, V = 203, chunk = 16;
  std::mt19937 g(11);
  auto x = randn((size_t)N * C, g), W = randn((size_t)V * C, g, 0.5f);
  auto dW = randn((size_t)V * C, g);
  std::vector<int> targets(N);
  std::vector<float> weights(N);
  std::uniform_int_distribution<int> tok(0, V - 1);
  std::uniform_real_distribution<float> wt(0.5f, 1.5f);
  for (int n = 0; n < N; n++) {
    targets[n] = n == 3 ? V - 1 : tok(g);
    weights[n] = n % 5 == 1 || (n >= 20 && n < 27) ? 0.f : wt(g);  // skipped rows
  }
  if (half) x = round_bf16(x), W = round_bf16(W);

  std::vector<float> scratch((size_t)chunk * V), dx((size_t)N * C), logp(N);
  cpu::LmHeadCE c{x.data(), W.data(),       targets.data(), weights.data(), N,       C,
                  V,        scratch.data(), chunk,          dx.data(),      nullptr, logp.data()};
  Dev<float> d_dW(dW);
  c.dW = dW.data();
  const double loss = cpu::lm_head_ce(c);

  Dev<T> d_x(x), d_W(W), d_dx((size_t)N * C);
  Dev<int> d_targets(targets);
  Dev<float> d_weights(weights), d_logp(N);
  const size_t ws_bytes = cuda::lm_head_ce_workspace(N, C, V, chunk, half);
  Dev<char> d_ws(ws_bytes);
  cuda::GemmHandle handle;
  cuda::LmHeadCE<T> a{d_x.get(), d_W.get(),  d_targets, d_weights,  N,    C,
                      V,         d_ws.get(), chunk,     d_dx.get(), d_dW, d_logp};
  const double got = cuda::lm_head_ce(a, handle);
  std::printf("  %s loss gpu %.9g cpu %.9g\n", tag, got, loss);
  EXPECT_LE(std::abs(got - loss), tol * std::abs(loss)) << tag << " loss";
  expect_near_cpu(d_logp.floats(), logp, tol, std::string(tag) + " lm_head_ce logp");
  expect_near_cpu(d_dx.floats(), dx, tol, std::string(tag) + " lm_head_ce dx");
  expect_near_cpu(d_dW.floats(), dW, tol, std::string(tag) + " lm_head_ce dW (+=)");

  // Loss only: no gradients requested, same loss and log-probs.
  cuda::LmHeadCE<T> b = a;
  b.dx = nullptr;
  b.dW = nullptr;
  const double got2 = cuda::lm_head_ce(b, handle);
  EXPECT_LE(std::abs(got2 - loss), tol * std::abs(loss)) << tag << " loss without gradients";
  expect_no_cuda_error();
}

TEST(GpuLmHeadCE, Fp32) {
  lm_head_case<float>(kTolF32, "fp32");
}
TEST(GpuLmHeadCE, Bf16) {
  lm_head_case<bf16>(kTolBf16, "bf16");
}

}  // namespace
}  // namespace xwin::test
