// RMSNorm against a double reference; backward against central differences of that reference,
// checking that dinp and dweight accumulate.
#include <cmath>
#include <random>
#include <vector>

#include "check.h"
#include "kernels/cpu/rmsnorm.h"

namespace xwin::test {
namespace {

constexpr int N = 7, C = 67;
constexpr float kEps = 1e-5f;

std::vector<double> reference(const std::vector<double>& x, const std::vector<double>& w,
                              std::vector<double>* rstd) {
  std::vector<double> out(x.size());
  for (int n = 0; n < N; ++n) {
    double ss = 0.0;
    for (int c = 0; c < C; ++c) ss += x[n * C + c] * x[n * C + c];
    const double r = 1.0 / std::sqrt(ss / C + kEps);
    if (rstd) rstd->push_back(r);
    for (int c = 0; c < C; ++c) out[n * C + c] = x[n * C + c] * r * w[c];
  }
  return out;
}

TEST(RmsNorm, ForwardMatchesDoubleReference) {
  std::mt19937 g(20);
  std::vector<float> x = randn(N * C, g, 2.0f), w = randn(C, g);
  x[3] = 40.0f;  // one large entry per row is typical of hidden states
  std::vector<float> out(N * C), rstd(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, kEps);
  std::vector<double> ref_rstd;
  const std::vector<double> ref = reference(to_double(x), to_double(w), &ref_rstd);
  expect_close(out, ref, 1e-5, "out");
  expect_close(rstd, ref_rstd, 1e-5, "rstd");
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  std::mt19937 g(21);
  const std::vector<float> x = randn(N * C, g, 2.0f), w = randn(C, g), r = randn(N * C, g);
  std::vector<float> out(N * C), rstd(N);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, kEps);
  const std::vector<float> dx0 = randn(N * C, g), dw0 = randn(C, g);
  std::vector<float> dx = dx0, dw = dw0;
  cpu::rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
  for (size_t i = 0; i < dw.size(); ++i) dw[i] -= dw0[i];

  const std::vector<double> rd = to_double(r), xd = to_double(x), wd = to_double(w);
  auto loss = [&](const std::vector<double>& xx, const std::vector<double>& ww) {
    const std::vector<double> o = reference(xx, ww, nullptr);
    double L = 0.0;
    for (size_t i = 0; i < o.size(); ++i) L += rd[i] * o[i];
    return L;
  };
  expect_close(dx, central_diff([&](const auto& v) { return loss(v, wd); }, xd, 1e-6), 1e-4,
               "dinp (accumulated)");
  expect_close(dw, central_diff([&](const auto& v) { return loss(xd, v); }, wd, 1e-6), 1e-4,
               "dweight (accumulated)");
}

}  // namespace
}  // namespace xwin::test
