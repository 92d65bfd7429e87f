// Sampler and generator: greedy at temperature 0, the KV-cache generator reproduces tokens and
// log-probs of the no-cache forward pass, frequencies follow the softmax (chi-square), top-k
// and top-p keep exactly the specified sets, and a sample depends only on its id.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "generate/generator.h"

using namespace xwin;

static ModelConfig small_model() {
  ModelConfig c;
  c.vocab_size = 29, c.d_model = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
  c.d_ff = 40, c.max_seq_len = 40;
  return c;
}

// log_softmax of the last position's logits, by the full forward pass over `seq`.
static std::vector<double> full_logp(Llama& m, const std::vector<int32_t>& seq) {
  const int T = (int)seq.size(), V = m.cfg.vocab_size;
  m.forward(seq.data(), 1, T);
  std::vector<float> lg((size_t)T * V);
  m.logits(lg.data());
  const float* l = &lg[(size_t)(T - 1) * V];
  double mx = l[0], z = 0;
  for (int v = 1; v < V; v++) mx = std::max(mx, (double)l[v]);
  for (int v = 0; v < V; v++) z += std::exp(l[v] - mx);
  std::vector<double> out(V);
  for (int v = 0; v < V; v++) out[v] = l[v] - mx - std::log(z);
  return out;
}

TEST(Generator, CachedGenerationMatchesFullForward) {
  Llama model(small_model());
  model.init_random(21);
  for (float temp : {0.0f, 1.0f}) {
    SamplingParams p;
    p.temperature = temp, p.max_new_tokens = 12, p.eos_id = 2, p.seed = 9;
    Generator gen(model, 3, p);  // fewer slots than requests: slots are reused
    std::vector<GenRequest> reqs;
    for (int i = 0; i < 5; i++) {
      GenRequest r;
      r.sample_id = 100 + i;
      for (int t = 0; t < 3 + 2 * i; t++) r.prompt.push_back(3 + (t * 7 + i) % 25);
      reqs.push_back(r);
    }
    std::vector<GenOutput> outs(reqs.size());
    gen.run(reqs, [&](size_t i, GenOutput&& o) { outs[i] = std::move(o); });
    for (size_t i = 0; i < reqs.size(); i++) {
      ASSERT_FALSE(outs[i].tokens.empty());
      std::vector<int32_t> seq = reqs[i].prompt;
      for (size_t j = 0; j < outs[i].tokens.size(); j++) {
        const std::vector<double> lp = full_logp(model, seq);
        const int32_t tok = outs[i].tokens[j];
        EXPECT_NEAR(outs[i].logp[j], lp[tok], 1e-5) << "request " << i << " token " << j;
        if (temp == 0) {
          EXPECT_EQ(tok, std::max_element(lp.begin(), lp.end()) - lp.begin());
        }
        seq.push_back(tok);
      }
    }
  }
}

TEST(Generator, SampleDependsOnlyOnItsId) {
  Llama model(small_model());
  model.init_random(4);
  SamplingParams p;
  p.max_new_tokens = 10, p.seed = 3;
  GenRequest r{{1, 5, 6, 7}, 77};
  GenOutput alone, batched;
  Generator(model, 1, p).run({r}, [&](size_t, GenOutput&& o) { alone = o; });
  std::vector<GenRequest> many = {{{1, 9}, 1}, r, {{1, 4, 4, 4, 4}, 2}};
  Generator(model, 2, p).run(many, [&](size_t i, GenOutput&& o) {
    if (i == 1) batched = o;
  });
  EXPECT_EQ(alone.tokens, batched.tokens);
}

// One Generator keeps its KV cache between runs: a run after a longer one (its cache already
// filled with other sequences) gives what a fresh Generator gives, token for token.
TEST(Generator, ReusedCacheGivesTheSameResponses) {
  Llama model(small_model());
  model.init_random(5);
  SamplingParams p;
  p.max_new_tokens = 10, p.seed = 8;
  const std::vector<GenRequest> long_reqs = {{{1, 4, 4, 4, 4, 4, 4, 4, 4}, 1}, {{1, 9}, 2}};
  const std::vector<GenRequest> short_reqs = {{{1, 5, 6}, 3}, {{1, 7}, 4}, {{1, 5, 6}, 5}};
  std::vector<GenOutput> reused(3), fresh(3);
  Generator gen(model, 2, p);
  gen.run(long_reqs, [](size_t, GenOutput&&) {});
  gen.run(short_reqs, [&](size_t i, GenOutput&& o) { reused[i] = o; });
  Generator(model, 2, p).run(short_reqs, [&](size_t i, GenOutput&& o) { fresh[i] = o; });
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(reused[i].tokens, fresh[i].tokens) << "request " << i;
    EXPECT_EQ(reused[i].logp, fresh[i].logp) << "request " << i;
  }
}

// Draws many samples from fixed logits and compares counts to the expected distribution.
static std::map<int, int> histogram(const SamplingParams& p, const std::vector<float>& logits,
                                    int n) {
  Sampler s(p);
  std::map<int, int> h;
  for (int i = 0; i < n; i++) h[s.draw(logits.data(), (int)logits.size(), i, 0).token]++;
  return h;
}

TEST(Sampler, FrequenciesMatchSoftmaxChiSquare) {
  const std::vector<float> logits = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, -1.0f, 1.5f, 0.2f};
  SamplingParams p;
  p.temperature = 0.8f, p.seed = 12345;
  const int n = 40000;
  auto h = histogram(p, logits, n);
  double z = 0;
  for (float l : logits) z += std::exp(l / 0.8);
  double chi2 = 0;
  for (size_t v = 0; v < logits.size(); v++) {
    const double expect = n * std::exp(logits[v] / 0.8) / z;
    chi2 += std::pow(h[(int)v] - expect, 2) / expect;
  }
  // 7 degrees of freedom: the 99.9% quantile is 24.3.
  EXPECT_LT(chi2, 24.3);
}

TEST(Sampler, TopKAndTopPKeepExactlyTheSpecifiedSets) {
  // Probabilities (temperature 1) proportional to 8, 4, 2, 1, 1 (sum 16).
  const std::vector<float> logits = {std::log(8.f), std::log(4.f), std::log(2.f), 0.f, 0.f};
  SamplingParams p;
  p.top_k = 2;
  auto h = histogram(p, logits, 6000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[0] / 6000.0, 2.0 / 3.0, 0.03);
  p.top_k = 0, p.top_p = 0.7f;  // 8/16 = 0.5 < 0.7 <= 12/16: tokens {0, 1}
  h = histogram(p, logits, 6000);
  EXPECT_EQ(h.size(), 2u);
  p.top_p = 0.76f;  // needs 14/16: tokens {0, 1, 2}
  h = histogram(p, logits, 6000);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.count(3) + h.count(4), 0u);
  p.top_k = 3, p.top_p = 0.6f;  // within {0,1,2} (sum 14): 8/14 < 0.6 -> {0, 1}
  h = histogram(p, logits, 6000);
  EXPECT_EQ(h.size(), 2u);
  p.top_k = 0, p.top_p = 1.0f, p.temperature = 0;
  h = histogram(p, logits, 50);
  EXPECT_EQ(h[0], 50);
}

// The returned log-prob is log_softmax(logits)[token] to float precision at any temperature,
// over logits spread far enough that most terms underflow (the sampler's own exp is a
// polynomial, so it is checked here against libm in double).
TEST(Sampler, LogProbMatchesDoubleLogSoftmax) {
  std::mt19937 gen(7);
  std::normal_distribution<float> n(0.f, 12.f);
  for (int V : {5, 4096, 32000}) {
    std::vector<float> logits(V);
    for (float& x : logits) x = n(gen);
    const double mx = *std::max_element(logits.begin(), logits.end());
    double z = 0;
    for (float x : logits) z += std::exp((double)x - mx);
    for (float t : {0.f, 0.7f, 1.f}) {
      SamplingParams p;
      p.temperature = t;
      p.top_p = 0.9f;
      Sampler s(p);
      for (uint64_t id = 0; id < 20; id++) {
        const Draw d = s.draw(logits.data(), V, id, 0);
        ASSERT_GE(d.token, 0);
        ASSERT_LT(d.token, V);
        const double want = logits[d.token] - mx - std::log(z);
        EXPECT_NEAR(d.logp, want, 2e-5 * std::max(1.0, std::abs(want))) << "V " << V << " t " << t;
      }
    }
  }
}
