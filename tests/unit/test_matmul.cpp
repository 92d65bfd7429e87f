// Linear layer out = inp @ weight^T against a double reference; backward accumulates into dinp
// and dweight and skips whichever is null.
#include <random>
#include <vector>

#include "check.h"
#include "kernels/cpu/matmul.h"

namespace xwin::test {
namespace {

constexpr int N = 5, IC = 19, OC = 23;

std::vector<double> reference(const std::vector<double>& x, const std::vector<double>& w) {
  std::vector<double> out(size_t(N) * OC, 0.0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o)
      for (int i = 0; i < IC; ++i) out[n * OC + o] += x[n * IC + i] * w[o * IC + i];
  return out;
}

struct Data {
  std::vector<float> x, w, r, dx0, dw0;
};

Data make_data() {
  std::mt19937 g(30);
  return {randn(N * IC, g), randn(OC * IC, g), randn(N * OC, g), randn(N * IC, g),
          randn(OC * IC, g)};
}

TEST(Matmul, ForwardMatchesDoubleReference) {
  const Data d = make_data();
  std::vector<float> out(N * OC, 7.0f);
  cpu::matmul_forward(out.data(), d.x.data(), d.w.data(), N, IC, OC);
  expect_close(out, reference(to_double(d.x), to_double(d.w)), 1e-5, "out");
}

TEST(Matmul, BackwardMatchesFiniteDifferences) {
  const Data d = make_data();
  std::vector<float> dx = d.dx0, dw = d.dw0;
  cpu::matmul_backward(dx.data(), dw.data(), d.r.data(), d.x.data(), d.w.data(), N, IC, OC);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] -= d.dx0[i];
  for (size_t i = 0; i < dw.size(); ++i) dw[i] -= d.dw0[i];
  const std::vector<double> xd = to_double(d.x), wd = to_double(d.w);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& w) {
    const std::vector<double> o = reference(x, w);
    double L = 0.0;
    for (size_t i = 0; i < o.size(); ++i) L += d.r[i] * o[i];
    return L;
  };
  expect_close(dx, central_diff([&](const auto& v) { return loss(v, wd); }, xd, 1e-3), 1e-5,
               "dinp (accumulated)");
  expect_close(dw, central_diff([&](const auto& v) { return loss(xd, v); }, wd, 1e-3), 1e-5,
               "dweight (accumulated)");
}

TEST(Matmul, BackwardSkipsNullGradients) {
  const Data d = make_data();
  std::vector<float> dx = d.dx0, dw = d.dw0, dx_only = d.dx0, dw_only = d.dw0;
  cpu::matmul_backward(dx.data(), dw.data(), d.r.data(), d.x.data(), d.w.data(), N, IC, OC);
  cpu::matmul_backward(dx_only.data(), nullptr, d.r.data(), d.x.data(), d.w.data(), N, IC, OC);
  cpu::matmul_backward(nullptr, dw_only.data(), d.r.data(), d.x.data(), d.w.data(), N, IC, OC);
  EXPECT_EQ(dx_only, dx);
  EXPECT_EQ(dw_only, dw);
}

}  // namespace
}  // namespace xwin::test
