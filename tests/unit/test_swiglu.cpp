// SwiGLU out = silu(gate) * up against a double reference over ordinary and saturated gates;
// the backward overwrites dgate and dup.
#include <cmath>
#include <random>
#include <vector>

#include "check.h"
#include "kernels/cpu/swiglu.h"

namespace xwin::test {
namespace {

constexpr size_t kN = 203;

double silu(double x) {
  return x / (1.0 + std::exp(-x));
}

struct Data {
  std::vector<float> gate, up, r;
};

Data make_data() {
  std::mt19937 g(50);
  Data d{randn(kN, g, 2.0f), randn(kN, g), randn(kN, g)};
  const float extremes[] = {-90.0f, -30.0f, -12.0f, 12.0f, 30.0f, 90.0f};
  for (size_t i = 0; i < 6; ++i) d.gate[i] = extremes[i];
  return d;
}

TEST(Swiglu, ForwardMatchesDoubleReference) {
  const Data d = make_data();
  std::vector<float> out(kN);
  cpu::swiglu_forward(out.data(), d.gate.data(), d.up.data(), kN);
  std::vector<double> ref(kN);
  for (size_t i = 0; i < kN; ++i) ref[i] = silu(d.gate[i]) * d.up[i];
  expect_close(out, ref, 1e-5, "out");
  for (float o : out) EXPECT_TRUE(std::isfinite(o));
}

TEST(Swiglu, BackwardMatchesFiniteDifferences) {
  const Data d = make_data();
  std::vector<float> dgate(kN, 7.0f), dup(kN, 7.0f);
  cpu::swiglu_backward(dgate.data(), dup.data(), d.r.data(), d.gate.data(), d.up.data(), kN);
  const std::vector<double> gd = to_double(d.gate), ud = to_double(d.up);
  auto loss = [&](const std::vector<double>& gate, const std::vector<double>& up) {
    double L = 0.0;
    for (size_t i = 0; i < kN; ++i) L += d.r[i] * silu(gate[i]) * up[i];
    return L;
  };
  expect_close(dgate, central_diff([&](const auto& v) { return loss(v, ud); }, gd, 1e-6), 1e-4,
               "dgate");
  expect_close(dup, central_diff([&](const auto& v) { return loss(gd, v); }, ud, 1e-6), 1e-4,
               "dup");
  for (float x : dgate) EXPECT_TRUE(std::isfinite(x));
}

}  // namespace
}  // namespace xwin::test
