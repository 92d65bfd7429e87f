// Tiled attention against a naive double softmax(Q K^T / sqrt(HD) + causal mask) V, for GQA
// groups of 1, 2 and 4 and lengths that are not powers of two and span several tiles (T = 600
// spans three of the forward's key blocks, so the online softmax rescales).
#include <cmath>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "kernels/cpu/attention.h"

namespace xwin::test {
namespace {

struct Shape {
  int B, T, NH, NKV, HD;
  float qscale;  // > 1 sharpens the softmax, so the running max moves often
};

std::string to_string(const Shape& s) {
  return "B" + std::to_string(s.B) + "_T" + std::to_string(s.T) + "_NH" + std::to_string(s.NH) +
         "_NKV" + std::to_string(s.NKV) + "_HD" + std::to_string(s.HD);
}
std::string name(const testing::TestParamInfo<Shape>& info) {
  return to_string(info.param);
}
void PrintTo(const Shape& s, std::ostream* os) {
  *os << to_string(s);
}

struct Inputs {
  std::vector<float> q, k, v, dout;
};

Inputs make_inputs(const Shape& s, unsigned seed) {
  std::mt19937 g(seed);
  const size_t nq = size_t(s.B) * s.T * s.NH * s.HD, nkv = size_t(s.B) * s.T * s.NKV * s.HD;
  return {randn(nq, g, s.qscale), randn(nkv, g), randn(nkv, g), randn(nq, g)};
}

// Naive attention in double; also returns the probabilities for the backward reference.
void reference_forward(std::vector<double>& out, std::vector<double>& lse, std::vector<double>* P,
                       const std::vector<double>& q, const std::vector<double>& k,
                       const std::vector<double>& v, const Shape& s) {
  const int T = s.T, HD = s.HD, group = s.NH / s.NKV;
  const double scale = 1.0 / std::sqrt(double(HD));
  out.assign(q.size(), 0.0);
  lse.assign(size_t(s.B) * s.NH * T, 0.0);
  if (P) P->assign(size_t(s.B) * s.NH * T * T, 0.0);
  std::vector<double> sc(T);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.NH; ++h)
      for (int i = 0; i < T; ++i) {
        const double* qi = &q[((size_t(b) * T + i) * s.NH + h) * HD];
        double m = -std::numeric_limits<double>::infinity();
        for (int j = 0; j <= i; ++j) {
          const double* kj = &k[((size_t(b) * T + j) * s.NKV + h / group) * HD];
          double d = 0.0;
          for (int e = 0; e < HD; ++e) d += qi[e] * kj[e];
          sc[j] = d * scale;
          m = std::max(m, sc[j]);
        }
        double l = 0.0;
        for (int j = 0; j <= i; ++j) l += std::exp(sc[j] - m);
        lse[(size_t(b) * s.NH + h) * T + i] = m + std::log(l);
        double* oi = &out[((size_t(b) * T + i) * s.NH + h) * HD];
        for (int j = 0; j <= i; ++j) {
          const double p = std::exp(sc[j] - m) / l;
          if (P) (*P)[((size_t(b) * s.NH + h) * T + i) * T + j] = p;
          const double* vj = &v[((size_t(b) * T + j) * s.NKV + h / group) * HD];
          for (int e = 0; e < HD; ++e) oi[e] += p * vj[e];
        }
      }
}

// Textbook backward in double: dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(P dP)).
void reference_backward(std::vector<double>& dq, std::vector<double>& dk, std::vector<double>& dv,
                        const std::vector<double>& dout, const std::vector<double>& q,
                        const std::vector<double>& k, const std::vector<double>& v,
                        const Shape& s) {
  std::vector<double> out, lse, P;
  reference_forward(out, lse, &P, q, k, v, s);
  const int T = s.T, HD = s.HD, group = s.NH / s.NKV;
  const double scale = 1.0 / std::sqrt(double(HD));
  dq.assign(q.size(), 0.0);
  dk.assign(k.size(), 0.0);
  dv.assign(v.size(), 0.0);
  std::vector<double> dP(T);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.NH; ++h)
      for (int i = 0; i < T; ++i) {
        const size_t qrow = ((size_t(b) * T + i) * s.NH + h) * HD;
        const double* p = &P[((size_t(b) * s.NH + h) * T + i) * T];
        double rowsum = 0.0;
        for (int j = 0; j <= i; ++j) {
          const size_t kvrow = ((size_t(b) * T + j) * s.NKV + h / group) * HD;
          dP[j] = 0.0;
          for (int e = 0; e < HD; ++e) {
            dP[j] += dout[qrow + e] * v[kvrow + e];
            dv[kvrow + e] += p[j] * dout[qrow + e];
          }
          rowsum += p[j] * dP[j];
        }
        for (int j = 0; j <= i; ++j) {
          const size_t kvrow = ((size_t(b) * T + j) * s.NKV + h / group) * HD;
          const double ds = p[j] * (dP[j] - rowsum) * scale;
          for (int e = 0; e < HD; ++e) {
            dq[qrow + e] += ds * k[kvrow + e];
            dk[kvrow + e] += ds * q[qrow + e];
          }
        }
      }
}

class AttentionTest : public testing::TestWithParam<Shape> {};

TEST_P(AttentionTest, ForwardMatchesNaiveDouble) {
  const Shape s = GetParam();
  const Inputs in = make_inputs(s, 1);
  std::vector<float> out(in.q.size()), lse(size_t(s.B) * s.NH * s.T);
  cpu::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T,
                         s.NH, s.NKV, s.HD);
  std::vector<double> ref_out, ref_lse;
  reference_forward(ref_out, ref_lse, nullptr, to_double(in.q), to_double(in.k), to_double(in.v),
                    s);
  expect_close(out, ref_out, 2e-6, "out");
  expect_close(lse, ref_lse, 2e-6, "lse");
}

TEST_P(AttentionTest, BackwardMatchesNaiveDouble) {
  const Shape s = GetParam();
  const Inputs in = make_inputs(s, 2);
  std::vector<float> out(in.q.size()), lse(size_t(s.B) * s.NH * s.T);
  cpu::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T,
                         s.NH, s.NKV, s.HD);
  // Garbage in the outputs checks that backward overwrites rather than accumulates.
  std::vector<float> dq(in.q.size(), 7.0f), dk(in.k.size(), 7.0f), dv(in.v.size(), 7.0f);
  cpu::attention_backward(dq.data(), dk.data(), dv.data(), in.dout.data(), out.data(), lse.data(),
                          in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.NH, s.NKV, s.HD);
  std::vector<double> rdq, rdk, rdv;
  reference_backward(rdq, rdk, rdv, to_double(in.dout), to_double(in.q), to_double(in.k),
                     to_double(in.v), s);
  expect_close(dq, rdq, 1e-5, "dq");
  expect_close(dk, rdk, 1e-5, "dk");
  expect_close(dv, rdv, 1e-5, "dv");
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest,
                         testing::Values(Shape{2, 37, 4, 2, 16, 1.0f}, Shape{1, 37, 4, 1, 16, 1.0f},
                                         Shape{1, 150, 4, 2, 32, 3.0f},
                                         Shape{1, 150, 4, 1, 8, 1.0f},
                                         Shape{2, 130, 2, 2, 24, 2.0f},
                                         Shape{1, 600, 4, 2, 16, 3.0f}),
                         name);

// The analytic gradient of L = sum(r * out) against central differences of the double forward,
// independently of the textbook backward above. T = 70 crosses a tile boundary.
TEST(Attention, BackwardMatchesFiniteDifferences) {
  for (const Shape s : {Shape{1, 37, 4, 2, 8, 1.0f}, Shape{1, 70, 2, 1, 4, 2.0f}}) {
    SCOPED_TRACE(to_string(s));
    const Inputs in = make_inputs(s, 3);
    const std::vector<double> r = to_double(in.dout);
    std::vector<float> out(in.q.size()), lse(size_t(s.B) * s.NH * s.T);
    cpu::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T,
                           s.NH, s.NKV, s.HD);
    std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
    cpu::attention_backward(dq.data(), dk.data(), dv.data(), in.dout.data(), out.data(), lse.data(),
                            in.q.data(), in.k.data(), in.v.data(), s.B, s.T, s.NH, s.NKV, s.HD);
    std::vector<double> q = to_double(in.q), k = to_double(in.k), v = to_double(in.v);
    auto loss = [&](const std::vector<double>& qq, const std::vector<double>& kk,
                    const std::vector<double>& vv) {
      std::vector<double> o, l;
      reference_forward(o, l, nullptr, qq, kk, vv, s);
      double sum = 0.0;
      for (size_t i = 0; i < o.size(); ++i) sum += r[i] * o[i];
      return sum;
    };
    const double eps = 1e-5;
    expect_close(dq, central_diff([&](const auto& x) { return loss(x, k, v); }, q, eps), 1e-5,
                 "dq vs finite differences");
    expect_close(dk, central_diff([&](const auto& x) { return loss(q, x, v); }, k, eps), 1e-5,
                 "dk vs finite differences");
    expect_close(dv, central_diff([&](const auto& x) { return loss(q, k, x); }, v, eps), 1e-5,
                 "dv vs finite differences");
  }
}

// A NaN in one key must reach every output row that attends to it, not vanish as exp(NaN) = 0.
// (Rows before it in the same tile may see it too, through 0 * NaN; NaN is fatal either way.)
TEST(Attention, NanInAKeyPropagates) {
  const Shape s{1, 70, 2, 1, 8, 1.0f};
  const int t_nan = 50;
  for (const float nan : {std::nanf(""), -std::nanf("")}) {  // x86 makes negative NaNs
    Inputs in = make_inputs(s, 4);
    in.k[size_t(t_nan) * s.NKV * s.HD] = nan;
    std::vector<float> out(in.q.size()), lse(size_t(s.B) * s.NH * s.T);
    cpu::attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), s.B, s.T,
                           s.NH, s.NKV, s.HD);
    for (int t = t_nan; t < s.T; ++t)
      for (int h = 0; h < s.NH; ++h)
        EXPECT_TRUE(std::isnan(out[(size_t(t) * s.NH + h) * s.HD])) << "t " << t << " h " << h;
  }
}

}  // namespace
}  // namespace xwin::test
