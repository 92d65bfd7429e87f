// RoPE (rotate-half) against a double reference with angles pos * theta^(-2i/HD); the backward
// is the transposed rotation, checked by central differences and by undoing the forward.
#include <cmath>
#include <random>
#include <vector>

#include "check.h"
#include "kernels/cpu/rope.h"

namespace xwin::test {
namespace {

constexpr int B = 2, T = 37, NH = 3, HD = 16, kHalf = HD / 2;
constexpr float kTheta = 10000.0f;

double angle(int t, int i) {
  return t * std::pow(double(kTheta), -2.0 * i / HD);
}

std::vector<double> reference(const std::vector<double>& x) {
  static std::vector<double> cos_t, sin_t;
  if (cos_t.empty())
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < kHalf; ++i) {
        cos_t.push_back(std::cos(angle(t, i)));
        sin_t.push_back(std::sin(angle(t, i)));
      }
  std::vector<double> out(x.size());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < NH; ++h) {
        const size_t row = ((size_t(b) * T + t) * NH + h) * HD;
        for (int i = 0; i < kHalf; ++i) {
          const double c = cos_t[t * kHalf + i], s = sin_t[t * kHalf + i];
          const double x1 = x[row + i], x2 = x[row + i + kHalf];
          out[row + i] = x1 * c - x2 * s;
          out[row + i + kHalf] = x2 * c + x1 * s;
        }
      }
  return out;
}

struct Tables {
  std::vector<float> cos, sin;
  Tables() : cos(T * kHalf), sin(T * kHalf) {
    cpu::rope_tables(cos.data(), sin.data(), T, HD, kTheta);
  }
};

TEST(Rope, TablesMatchDoubleAngles) {
  const Tables tab;
  std::vector<double> c(T * kHalf), s(T * kHalf);
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < kHalf; ++i) {
      c[t * kHalf + i] = std::cos(angle(t, i));
      s[t * kHalf + i] = std::sin(angle(t, i));
    }
  expect_close(tab.cos, c, 1e-5, "cos table");
  expect_close(tab.sin, s, 1e-5, "sin table");
}

TEST(Rope, ForwardMatchesDoubleReference) {
  const Tables tab;
  std::mt19937 g(40);
  const std::vector<float> x = randn(size_t(B) * T * NH * HD, g);
  std::vector<float> y = x;
  cpu::rope_forward(y.data(), tab.cos.data(), tab.sin.data(), B, T, NH, HD);
  expect_close(y, reference(to_double(x)), 1e-5, "out");
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  const Tables tab;
  std::mt19937 g(41);
  const std::vector<float> x = randn(size_t(B) * T * NH * HD, g), r = randn(x.size(), g);
  std::vector<float> dx = r;
  cpu::rope_backward(dx.data(), tab.cos.data(), tab.sin.data(), B, T, NH, HD);
  auto loss = [&](const std::vector<double>& v) { return dot(reference(v), r); };
  expect_close(dx, central_diff(loss, to_double(x), 1e-3), 1e-5, "dx");
}

TEST(Rope, BackwardUndoesForward) {
  const Tables tab;
  std::mt19937 g(42);
  const std::vector<float> x = randn(size_t(B) * T * NH * HD, g);
  std::vector<float> y = x;
  cpu::rope_forward(y.data(), tab.cos.data(), tab.sin.data(), B, T, NH, HD);
  cpu::rope_backward(y.data(), tab.cos.data(), tab.sin.data(), B, T, NH, HD);
  expect_close(y, to_double(x), 1e-6, "backward(forward(x))");
}

}  // namespace
}  // namespace xwin::test
