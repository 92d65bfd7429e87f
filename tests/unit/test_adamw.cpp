// AdamW against a double transcription of torch.optim.AdamW (the formula in adamw.h), plus the
// reduction helpers the optimizer uses for gradient clipping.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "kernels/cpu/adamw.h"

namespace xwin::test {
namespace {

constexpr size_t kN = 1001;  // not a multiple of any vector width

struct DoubleAdamW {
  std::vector<double> p, m, v;
  void step(const std::vector<float>& g, const cpu::AdamWHyper& h, long t) {
    const double b1 = h.beta1, b2 = h.beta2, lr = h.lr;
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] -= lr * double(h.weight_decay) * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * double(g[i]) * g[i];
      const double mhat = m[i] / (1 - std::pow(b1, t)), vhat = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * mhat / (std::sqrt(vhat) + h.eps);
    }
  }
};

TEST(AdamW, ThreeStepsMatchTorchFormulaInDouble) {
  const cpu::AdamWHyper h{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
  std::mt19937 g(70);
  std::vector<float> p = randn(kN, g), m(kN, 0.0f), v(kN, 0.0f);
  DoubleAdamW ref{to_double(p), std::vector<double>(kN, 0.0), std::vector<double>(kN, 0.0)};
  for (long t = 1; t <= 3; ++t) {
    SCOPED_TRACE("step " + std::to_string(t));
    const std::vector<float> grad = randn(kN, g, 0.1f);
    cpu::adamw_update(p.data(), grad.data(), m.data(), v.data(), kN, h, t);
    ref.step(grad, h, t);
    expect_close(p, ref.p, 1e-6, "p");
    expect_close(m, ref.m, 1e-6, "m");
    expect_close(v, ref.v, 1e-6, "v");
  }
}

// With m = v = 0 and no decay, bias correction makes the first step lr * g / (|g| + eps): lr in
// magnitude whatever the gradient's scale, as long as |g| >> eps.
TEST(AdamW, FirstStepMovesEachParameterByLr) {
  const cpu::AdamWHyper h{1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f};
  std::vector<float> grad(kN), p(kN, 1.0f), m(kN, 0.0f), v(kN, 0.0f);
  for (size_t i = 0; i < kN; ++i) grad[i] = (i % 2 ? 1.0f : -1.0f) * std::pow(10.0f, i % 7 - 4.0f);
  cpu::adamw_update(p.data(), grad.data(), m.data(), v.data(), kN, h, 1);
  for (size_t i = 0; i < kN; ++i) {
    const double step = double(p[i]) - 1.0, g = grad[i];
    ASSERT_NEAR(step, -h.lr * g / (std::abs(g) + h.eps), 1e-4 * h.lr) << "element " << i;
    ASSERT_NEAR(std::abs(step), h.lr, 2e-4 * h.lr) << "element " << i;
  }
}

TEST(AdamW, ReductionHelpers) {
  std::mt19937 g(71);
  const size_t n = 10007;  // several blocks and a partial one
  const std::vector<float> a = randn(n, g), b = randn(n, g);
  double ref = 0.0;
  for (float x : a) ref += double(x) * x;
  EXPECT_NEAR(cpu::sum_squares(a.data(), n), ref, 1e-12 * ref);
  EXPECT_EQ(cpu::sum_squares(a.data(), 0), 0.0);

  std::vector<float> s = a, sum = a;
  cpu::scale_inplace(s.data(), 0.5f, n);
  cpu::add_inplace(sum.data(), b.data(), n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(s[i], a[i] * 0.5f);
    ASSERT_EQ(sum[i], a[i] + b[i]);
  }
}

}  // namespace
}  // namespace xwin::test
