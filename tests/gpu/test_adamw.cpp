// Multi-tensor AdamW against cpu::adamw_update over three steps (more tensors than one launch
// carries, an empty one, sizes that are not multiples of a block, some with a bf16 copy), and the
// clipping pieces: sum of squares in double, scale and add in place.
#include <cuda_runtime.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "gpu_check.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cuda/adamw.h"

namespace xwin::test {
namespace {

using cuda::bf16;

struct Tensor {
  std::vector<float> p, g, m, v;
  std::unique_ptr<Dev<float>> dp, dg, dm, dv;
  std::unique_ptr<Dev<bf16>> dp16;
};

TEST(GpuAdamW, MultiTensorMatchesCpu) {
  const cpu::AdamWHyper h{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
  std::mt19937 g(19);
  std::vector<Tensor> ts(45);
  for (size_t i = 0; i < ts.size(); i++) {
    const size_t n = i == 4 ? 0 : 1 + (i * 977) % 5000;
    Tensor& t = ts[i];
    t.p = randn(n, g);
    t.m = randn(n, g, 0.1f);
    t.v.resize(n);
    for (auto& x : t.v) x = std::abs(x) + 0.01f;
    t.dp = std::make_unique<Dev<float>>(t.p);
    t.dm = std::make_unique<Dev<float>>(t.m);
    t.dv = std::make_unique<Dev<float>>(t.v);
    t.dg = std::make_unique<Dev<float>>(n);
    if (i % 3 == 0) t.dp16 = std::make_unique<Dev<bf16>>(n);
  }
  for (long step = 1; step <= 3; step++) {
    std::vector<cuda::AdamWTensor> list;
    for (Tensor& t : ts) {
      t.g = randn(t.p.size(), g);
      t.dg->upload(t.g);
      cpu::adamw_update(t.p.data(), t.g.data(), t.m.data(), t.v.data(), t.p.size(), h, step);
      list.push_back({t.dp->get(), t.dg->get(), t.dm->get(), t.dv->get(),
                      t.dp16 ? t.dp16->get() : nullptr, t.p.size()});
    }
    cuda::adamw_update(list, h, step);
  }
  for (size_t i = 0; i < ts.size(); i++) {
    const Tensor& t = ts[i];
    if (t.p.empty()) continue;
    const std::string tag = "tensor " + std::to_string(i);
    expect_near_cpu(t.dp->floats(), t.p, kTolF32, tag + " p");
    expect_near_cpu(t.dm->floats(), t.m, kTolF32, tag + " m");
    expect_near_cpu(t.dv->floats(), t.v, kTolF32, tag + " v");
    if (t.dp16) expect_near_cpu(t.dp16->floats(), t.p, kTolBf16, tag + " bf16 copy of p");
  }
  expect_no_cuda_error();
}

TEST(GpuAdamW, SingleTensorOverload) {
  const cpu::AdamWHyper h{1e-2f, 0.8f, 0.99f, 1e-6f, 0.0f};
  std::mt19937 g(23);
  const size_t n = 10007;
  auto p = randn(n, g), gr = randn(n, g);
  std::vector<float> m(n, 0.f), v(n, 0.f);
  Dev<float> dp(p), dg(gr), dm(m), dv(v);
  Dev<bf16> dp16(n);
  cuda::adamw_update(dp, dg, dm, dv, n, h, 1, dp16.get());
  cpu::adamw_update(p.data(), gr.data(), m.data(), v.data(), n, h, 1);
  expect_near_cpu(dp.floats(), p, kTolF32, "p");
  expect_near_cpu(dp16.floats(), p, kTolBf16, "bf16 copy of p");
  expect_no_cuda_error();
}

TEST(GpuClip, SumSquaresScaleAdd) {
  std::mt19937 g(29);
  const size_t n = 1000003;
  auto x = randn(n, g), y = randn(n, g);
  Dev<float> dx(x), dy(y);
  Dev<double> out(1), work(cuda::kSumSquaresParts);
  cuda::sum_squares(out, dx, n, work);
  const double want = cpu::sum_squares(x.data(), n);
  double got = 0;
  cudaDeviceSynchronize();
  cudaMemcpy(&got, out.get(), sizeof got, cudaMemcpyDeviceToHost);
  std::printf("  sum_squares gpu %.17g cpu %.17g\n", got, want);
  EXPECT_LE(std::abs(got - want), 1e-10 * want);  // both in double, in another order
  cuda::scale_inplace(dx, 0.37f, n);
  cpu::scale_inplace(x.data(), 0.37f, n);
  expect_near_cpu(dx.floats(), x, kTolF32, "scale_inplace");
  cuda::add_inplace(dx, dy, n);
  cpu::add_inplace(x.data(), y.data(), n);
  expect_near_cpu(dx.floats(), x, kTolF32, "add_inplace");
  expect_no_cuda_error();
}

}  // namespace
}  // namespace xwin::test
