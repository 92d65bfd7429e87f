// Fused LM head + masked cross-entropy against a double reference: the loss, log p(target), and
// the gradients by central differences, with skipped rows, fractional weights, a row count that
// is not a multiple of the chunk and a vocabulary that is not a multiple of 64.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "kernels/cpu/crossentropy.h"

namespace xwin::test {
namespace {

struct Data {
  int N, C, V;
  std::vector<float> x, W, weights;
  std::vector<int> targets;
  std::vector<float> scratch;

  Data(int N, int C, int V, unsigned seed) : N(N), C(C), V(V), weights(N, 1.0f), targets(N) {
    std::mt19937 g(seed);
    x = randn(size_t(N) * C, g);
    W = randn(size_t(V) * C, g, 0.5f);
    std::uniform_int_distribution<int> tok(0, V - 1);
    for (auto& t : targets) t = tok(g);
  }
  cpu::LmHeadCE args(int chunk) {
    scratch.assign(size_t(chunk) * V, 0.0f);
    cpu::LmHeadCE a{};
    a.x = x.data();
    a.W = W.data();
    a.targets = targets.data();
    a.weights = weights.data();
    a.N = N, a.C = C, a.V = V;
    a.scratch = scratch.data();
    a.chunk = chunk;
    return a;
  }
};

const int kSkipped[] = {0, 5, 6, 11};

Data small_data() {
  Data d(13, 24, 77, 60);
  d.targets[4] = d.V - 1;
  for (int n : kSkipped) d.weights[n] = 0.0f;
  d.weights[2] = 0.5f;
  d.weights[7] = 2.0f;
  d.weights[12] = 0.25f;
  return d;
}

// Per-row log p(target) in double (0 on skipped rows); the loss is sum_n weights[n] * -logp[n].
std::vector<double> reference_logp(const std::vector<double>& x, const std::vector<double>& W,
                                   const Data& d) {
  std::vector<double> logp(d.N, 0.0), logits(d.V);
  for (int n = 0; n < d.N; ++n) {
    if (d.weights[n] == 0.0f) continue;
    double mx = -INFINITY;
    for (int v = 0; v < d.V; ++v) {
      logits[v] = 0.0;
      for (int c = 0; c < d.C; ++c) logits[v] += x[size_t(n) * d.C + c] * W[size_t(v) * d.C + c];
      mx = std::max(mx, logits[v]);
    }
    double sum = 0.0;
    for (int v = 0; v < d.V; ++v) sum += std::exp(logits[v] - mx);
    logp[n] = logits[d.targets[n]] - mx - std::log(sum);
  }
  return logp;
}

double reference_loss(const std::vector<double>& x, const std::vector<double>& W, const Data& d) {
  const std::vector<double> logp = reference_logp(x, W, d);
  double loss = 0.0;
  for (int n = 0; n < d.N; ++n) loss -= d.weights[n] * logp[n];
  return loss;
}

TEST(LmHeadCE, LossLogpAndGradientsMatchDoubleReference) {
  Data d = small_data();
  const std::vector<double> xd = to_double(d.x), Wd = to_double(d.W);
  const double ref_loss = reference_loss(xd, Wd, d);
  const std::vector<double> ref_dx =
      central_diff([&](const auto& v) { return reference_loss(v, Wd, d); }, xd, 1e-6);
  const std::vector<double> ref_dW =
      central_diff([&](const auto& v) { return reference_loss(xd, v, d); }, Wd, 1e-6);
  std::mt19937 g(61);
  for (int chunk : {4, 1, 64}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    std::vector<float> dx(d.x.size(), 7.0f), logp(d.N, 7.0f);
    const std::vector<float> dW0 = randn(d.W.size(), g);
    std::vector<float> dW = dW0;
    cpu::LmHeadCE a = d.args(chunk);
    a.dx = dx.data();
    a.dW = dW.data();
    a.logp = logp.data();
    const double loss = cpu::lm_head_ce(a);
    std::printf("  chunk %-2d loss %.9f ref %.9f rel %.2e\n", chunk, loss, ref_loss,
                std::abs(loss - ref_loss) / std::abs(ref_loss));
    EXPECT_NEAR(loss, ref_loss, 1e-5 * std::abs(ref_loss));
    expect_close(logp, reference_logp(xd, Wd, d), 1e-5, "logp");
    for (size_t i = 0; i < dW.size(); ++i) dW[i] -= dW0[i];
    expect_close(dx, ref_dx, 1e-4, "dx");
    expect_close(dW, ref_dW, 1e-4, "dW (accumulated)");
    for (int n : kSkipped) {
      EXPECT_EQ(logp[n], 0.0f) << "skipped row " << n;
      for (int c = 0; c < d.C; ++c) EXPECT_EQ(dx[n * d.C + c], 0.0f) << "skipped row " << n;
    }
  }
}

TEST(LmHeadCE, OptionalOutputsDoNotChangeTheLoss) {
  Data d = small_data();
  std::vector<float> dW(d.W.size(), 0.0f);
  cpu::LmHeadCE a = d.args(4);
  const double bare = cpu::lm_head_ce(a);
  a.dW = dW.data();
  EXPECT_EQ(cpu::lm_head_ce(a), bare);
  const double ref = reference_loss(to_double(d.x), to_double(d.W), d);
  EXPECT_NEAR(bare, ref, 1e-5 * std::abs(ref));
}

// The header promises row sums in double: then log p is as exact as the fp32 logits, well under
// 2e-6 nats, where a float sum over 50000 terms drifts by several times that.
TEST(LmHeadCE, LogpAccurateWithLargeVocabulary) {
  Data d(3, 16, 50000, 62);
  d.targets = {0, 12345, d.V - 1};
  std::vector<float> logp(d.N);
  cpu::LmHeadCE a = d.args(2);
  a.logp = logp.data();
  const double loss = cpu::lm_head_ce(a);
  const std::vector<double> xd = to_double(d.x), Wd = to_double(d.W);
  const std::vector<double> ref = reference_logp(xd, Wd, d);
  double max_err = 0.0;
  for (int n = 0; n < d.N; ++n) max_err = std::max(max_err, std::abs(logp[n] - ref[n]));
  std::printf("  logp, V = %d: max_abs %.2e nats\n", d.V, max_err);
  EXPECT_LE(max_err, 2e-6) << "log p(target) error with V = " << d.V;
  EXPECT_NEAR(loss, reference_loss(xd, Wd, d), 2e-6 * d.N);
}

}  // namespace
}  // namespace xwin::test
