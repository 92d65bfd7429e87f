// Embedding: the forward is an exact gather; the backward scatter-adds into dwte, including
// tokens that repeat, and keeps what dwte held before.
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "kernels/cpu/embedding.h"

namespace xwin::test {
namespace {

TEST(Embedding, ForwardGathersRowsAndBackwardMatchesFiniteDifferences) {
  const int V = 11, N = 40, C = 70;  // C spans a partial channel block
  std::mt19937 g(10);
  const std::vector<float> wte = randn(size_t(V) * C, g), r = randn(size_t(N) * C, g);
  std::vector<int32_t> tokens(N);
  std::uniform_int_distribution<int32_t> tok(0, V - 1);
  for (auto& t : tokens) t = tok(g);
  tokens[1] = tokens[0];  // a guaranteed repeat

  std::vector<float> out(size_t(N) * C);
  cpu::embedding_forward(out.data(), tokens.data(), wte.data(), N, C);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      ASSERT_EQ(out[size_t(n) * C + c], wte[size_t(tokens[n]) * C + c]) << n << "," << c;

  const std::vector<float> dwte0 = randn(wte.size(), g);
  std::vector<float> dwte = dwte0;
  cpu::embedding_backward(dwte.data(), r.data(), tokens.data(), N, C);
  std::vector<float> grad(dwte.size());
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = dwte[i] - dwte0[i];
  auto loss = [&](const std::vector<double>& w) {
    double L = 0.0;
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) L += r[size_t(n) * C + c] * w[size_t(tokens[n]) * C + c];
    return L;
  };
  expect_close(grad, central_diff(loss, to_double(wte), 1e-3), 1e-5, "dwte (accumulated)");
}

}  // namespace
}  // namespace xwin::test
