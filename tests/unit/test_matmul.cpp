// Linear layer out = inp @ weight^T against a double reference; backward accumulates into dinp
// and dweight and skips whichever is null. The packed forward (decoding) against the same
// reference, overwriting and accumulating, and a row's result independent of the batch.
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

TEST(Matmul, PackedForwardMatchesDoubleReference) {
  // Sizes that leave partial register tiles and a padded last panel; 200 rows span row blocks.
  for (const int rows : {N, 200}) {
    std::mt19937 g(31);
    const int ic = 37, oc = 35;
    const std::vector<float> x = randn(size_t(rows) * ic, g), w = randn(size_t(oc) * ic, g);
    std::vector<float> packed(cpu::matmul_packed_size(ic, oc), 7.0f);
    cpu::matmul_pack(packed.data(), w.data(), ic, oc);
    std::vector<double> ref(size_t(rows) * oc, 0.0);
    for (int n = 0; n < rows; ++n)
      for (int o = 0; o < oc; ++o)
        for (int i = 0; i < ic; ++i) ref[n * oc + o] += double(x[n * ic + i]) * w[o * ic + i];
    std::vector<float> out(size_t(rows) * oc, 7.0f);
    cpu::matmul_forward_packed(out.data(), x.data(), packed.data(), rows, ic, oc, false);
    expect_close(out, ref, 1e-5, "out");
    // accumulate adds to what is there; each row alone gives the same bits as in the batch.
    std::vector<float> acc(size_t(rows) * oc, 1.0f), one(oc);
    cpu::matmul_forward_packed(acc.data(), x.data(), packed.data(), rows, ic, oc, true);
    for (double& v : ref) v += 1.0;
    expect_close(acc, ref, 1e-5, "accumulated out");
    for (int n = 0; n < rows; n += 7) {
      cpu::matmul_forward_packed(one.data(), &x[size_t(n) * ic], packed.data(), 1, ic, oc, false);
      for (int o = 0; o < oc; ++o) ASSERT_EQ(one[o], out[size_t(n) * oc + o]) << n << "," << o;
    }
  }
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
