// Test helpers: seeded random tensors, central differences, and a closeness check that reports
// the error it measured. Gradients are checked against central differences of a double-precision
// reference forward, so the tolerance only has to absorb the fp32 error of the kernel.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace xwin::test {

inline std::vector<float> randn(size_t n, std::mt19937& g, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> x(n);
  for (auto& e : x) e = dist(g);
  return x;
}

inline std::vector<double> to_double(const std::vector<float>& x) {
  return std::vector<double>(x.begin(), x.end());
}

inline double dot(const std::vector<double>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Gradient of f at x by central differences. The step is the one the type actually takes, so
// a float x is perturbed by representable amounts.
template <typename T, typename F>
std::vector<double> central_diff(F&& f, std::vector<T> x, double eps) {
  std::vector<double> grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const T x0 = x[i];
    const T xp = static_cast<T>(x0 + eps), xm = static_cast<T>(x0 - eps);
    x[i] = xp;
    const double fp = f(x);
    x[i] = xm;
    const double fm = f(x);
    x[i] = x0;
    grad[i] = (fp - fm) / (static_cast<double>(xp) - static_cast<double>(xm));
  }
  return grad;
}

// Passes when ||got - want|| <= tol ||want|| and every |got - want| <= tol max|want|.
inline void expect_close(const float* got, const std::vector<double>& want, double tol,
                         const std::string& what) {
  double err2 = 0.0, ref2 = 0.0, max_err = 0.0, max_ref = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(got[i] - want[i]);
    err2 += e * e;
    ref2 += want[i] * want[i];
    if (e > max_err) max_err = e, worst = i;
    max_ref = std::max(max_ref, std::abs(want[i]));
  }
  const double rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  const double scale = max_ref > 0 ? max_ref : 1.0;
  std::printf("  %-28s rel_norm %.2e  max_abs %.2e (of max %.2e)\n", what.c_str(), rel, max_err,
              max_ref);
  EXPECT_LE(rel, tol) << what << ": norm-wise relative error";
  EXPECT_LE(max_err, tol * scale) << what << ": worst element " << worst << " got " << got[worst]
                                  << " want " << want[worst];
}

inline void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  expect_close(got.data(), want, tol, what);
}

}  // namespace xwin::test
