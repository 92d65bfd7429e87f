// GPU sampling against the CPU engine (label gpu; a binary of its own since it needs xwin_lib):
//   attention_cached (decode and prefill rows, GQA, odd head sizes) against cpu::attention_cached
//     within 1e-5 in fp32 (1e-2 in bf16 on bf16-rounded inputs); the cache append exactly;
//   TokenSampler: the kept sets of top-k / top-p (ties by id) exactly on crafted logits; the same
//     tokens as the CPU Sampler from the same uniforms on random logits; drawn frequencies
//     against the (truncated, tempered) softmax by a chi-square test with a fixed seed;
//   GpuSampler: fp32 greedy tokens identical to the CPU Generator's, log-probs within 1e-4,
//     with slot refills, a shared prompt, EOS and the context limit; fp32 top-p sampling from the
//     same keys gives the CPU's responses; bf16 greedy agrees with the CPU's argmax, teacher
//     forced on the GPU's own tokens, on >= 90% of tokens.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/rng.h"
#include "generate/generator.h"
#include "generate/sampler.h"
#include "gpu/sampler_gpu.h"
#include "gpu_check.h"
#include "kernels/cpu/attention_cache.h"
#include "kernels/cuda/attention_cache.h"
#include "kernels/cuda/sampling.h"
#include "model/llama.h"

namespace xwin::test {
namespace {

using cuda::bf16;

template <typename X>
std::vector<X> download(const X* d, size_t n) {
  std::vector<X> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), d, sizeof(X) * n, cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

// ---- attention_cached and the cache append ----

struct CacheShape {
  int R, n, NH, NKV, HD, Tmax;
};

template <typename T>
void attention_cache_case(const CacheShape& s, double tol, const std::string& tag) {
  const bool half = std::is_same<T, bf16>::value;
  const int slots = s.R + 1, KD = s.NKV * s.HD;
  std::mt19937 g(11 + s.HD + s.n);
  const size_t nq = (size_t)s.R * s.n * s.NH * s.HD, nc = (size_t)slots * s.Tmax * KD;
  auto q = randn(nq, g, 1.5f), kc = randn(nc, g), vc = randn(nc, g);
  if (half) q = round_bf16(q), kc = round_bf16(kc), vc = round_bf16(vc);
  // Rows in slots in reverse order, at positions from the first to the last the cache allows.
  std::vector<int> slot(s.R), pos(s.R);
  std::uniform_int_distribution<int> at(0, s.Tmax - s.n);
  for (int r = 0; r < s.R; r++) slot[r] = slots - 1 - r, pos[r] = at(g);
  pos[0] = 0, pos[s.R - 1] = s.Tmax - s.n;
  std::vector<float> out(nq);
  cpu::attention_cached(out.data(), q.data(), kc.data(), vc.data(), slot.data(), pos.data(), s.R,
                        s.n, s.NH, s.NKV, s.HD, s.Tmax);
  Dev<T> d_q(q), d_k(kc), d_v(vc), d_out(nq);
  Dev<int> d_slot(slot), d_pos(pos);
  cuda::attention_cached(d_out.get(), d_q.get(), d_k.get(), d_v.get(), d_slot, d_pos, s.R, s.n,
                         s.NH, s.NKV, s.HD, s.Tmax);
  expect_near_cpu(d_out.floats(), out, tol, tag + " attention_cached");
  expect_no_cuda_error();
}

class GpuAttentionCache : public testing::TestWithParam<CacheShape> {};

TEST_P(GpuAttentionCache, Fp32) {
  attention_cache_case<float>(GetParam(), kTolF32, "fp32");
}
TEST_P(GpuAttentionCache, Bf16) {
  attention_cache_case<bf16>(GetParam(), kTolBf16, "bf16");
}

// Decode steps (n = 1; 64 rows: the CPU's row-at-a-time path), prefills (n > 1), GQA groups 1
// to 4, head sizes from 16 to the kernel's 256 and one that is not a multiple of 32.
INSTANTIATE_TEST_SUITE_P(Shapes, GpuAttentionCache,
                         testing::Values(CacheShape{3, 1, 4, 2, 16, 40},
                                         CacheShape{64, 1, 4, 4, 64, 50},
                                         CacheShape{5, 1, 3, 1, 40, 70},
                                         CacheShape{2, 5, 8, 2, 128, 300},
                                         CacheShape{2, 33, 2, 1, 256, 80}));

TEST(GpuKvCacheAppend, WritesEachRowsPositions) {
  const int R = 3, n = 4, KD = 24, Tmax = 10, slots = 4;
  std::mt19937 g(3);
  auto k = randn((size_t)R * n * KD, g), v = randn((size_t)R * n * KD, g);
  auto kc = randn((size_t)slots * Tmax * KD, g), vc = randn((size_t)slots * Tmax * KD, g);
  const std::vector<int> slot = {2, 0, 3}, pos = {0, 6, 3};
  Dev<float> d_k(k), d_v(v), d_kc(kc), d_vc(vc);
  Dev<int> d_slot(slot), d_pos(pos);
  cuda::kv_cache_append(d_kc.get(), d_vc.get(), d_k.get(), d_v.get(), d_slot, d_pos, R, n, KD,
                        Tmax);
  for (int r = 0; r < R; r++)
    for (int i = 0; i < n; i++)
      for (int c = 0; c < KD; c++) {
        const size_t dst = ((size_t)slot[r] * Tmax + pos[r] + i) * KD + c;
        kc[dst] = k[((size_t)r * n + i) * KD + c], vc[dst] = v[((size_t)r * n + i) * KD + c];
      }
  EXPECT_EQ(d_kc.floats(), kc);
  EXPECT_EQ(d_vc.floats(), vc);
  expect_no_cuda_error();
}

// ---- TokenSampler ----

struct GpuDraws {
  std::vector<int32_t> token, order;
  std::vector<float> logp;
  std::vector<int> keep;
};

GpuDraws gpu_draws(const std::vector<float>& logits, int R, int V, const std::vector<double>& u,
                   float temperature, int top_k, float top_p) {
  cuda::TokenSampler sampler(R, V);
  Dev<float> d_logits(logits), d_logp(R);
  Dev<double> d_u(u);
  Dev<int32_t> d_token(R);
  Dev<int> d_keep(R);
  sampler.sample(d_token, d_logp, d_logits, d_u, R, temperature, top_k, top_p, 0, d_keep);
  GpuDraws d;
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  d.token = download(d_token.get(), R);
  d.logp = download(d_logp.get(), R);
  d.keep = download(d_keep.get(), R);
  d.order = download(sampler.order(), (size_t)R * V);
  return d;
}

// Crafted distributions with a tie (0.20 twice), the tokens permuted differently in each row;
// the kept counts follow from the cumulative sums 0.30, 0.50, 0.70, 0.85, 0.95, 1.00 with
// margins far above rounding.
TEST(GpuTokenSampler, TopKTopPSetsExact) {
  const std::vector<double> p = {0.30, 0.20, 0.20, 0.15, 0.10, 0.05};
  const int V = 6, R = 3;
  const std::vector<std::vector<int>> perm = {
      {0, 1, 2, 3, 4, 5}, {5, 4, 3, 2, 1, 0}, {3, 0, 5, 1, 4, 2}};
  std::vector<float> logits((size_t)R * V);
  for (int r = 0; r < R; r++)
    for (int c = 0; c < V; c++) logits[(size_t)r * V + perm[r][c]] = (float)std::log(p[c]) + 0.7f;
  struct Case {
    float temperature;
    int top_k;
    float top_p;
    int keep;
  };
  // Temperature 0.5 squares the probabilities: 0.439, 0.195, 0.195, 0.110, ... after
  // normalisation, so top-p 0.45 keeps two.
  const std::vector<Case> cases = {{1, 2, 1, 2},        {1, 0, 0.45f, 2}, {1, 0, 0.72f, 4},
                                   {1, 3, 0.8f, 3},     {1, 3, 0.6f, 2},  {1, 1, 1, 1},
                                   {0.5f, 0, 0.45f, 2}, {1, 0, 0.999f, 6}};
  for (const Case& c : cases) {
    const std::string what = "T " + std::to_string(c.temperature) + " top_k " +
                             std::to_string(c.top_k) + " top_p " + std::to_string(c.top_p);
    const GpuDraws d =
        gpu_draws(logits, R, V, {0.001, 0.5, 0.999}, c.temperature, c.top_k, c.top_p);
    for (int r = 0; r < R; r++) {
      // Descending probability, ties by ascending token id.
      std::vector<int> want(V);
      std::iota(want.begin(), want.end(), 0);
      std::stable_sort(want.begin(), want.end(), [&](int a, int b) {
        return logits[(size_t)r * V + a] > logits[(size_t)r * V + b];
      });
      EXPECT_EQ(d.keep[r], c.keep) << what << ", row " << r;
      const int keep = std::clamp(d.keep[r], 0, V);
      const std::vector<int> kept(d.order.begin() + (size_t)r * V,
                                  d.order.begin() + (size_t)r * V + keep);
      EXPECT_EQ(kept, std::vector<int>(want.begin(), want.begin() + c.keep))
          << what << ", row " << r;
      EXPECT_NE(std::find(kept.begin(), kept.end(), d.token[r]), kept.end()) << what;
      const int c_of =
          (int)(std::find(perm[r].begin(), perm[r].end(), d.token[r]) - perm[r].begin());
      ASSERT_LT(c_of, V) << what << ": token " << d.token[r] << " outside the vocabulary";
      EXPECT_NEAR(d.logp[r], std::log(p[c_of]), 1e-5) << what << ", row " << r;
    }
  }
  // Greedy: the most likely token, the first of a tie.
  const GpuDraws d = gpu_draws(logits, R, V, {0.5, 0.5, 0.5}, 0, 0, 1);
  for (int r = 0; r < R; r++) {
    EXPECT_EQ(d.token[r], perm[r][0]);
    EXPECT_EQ(d.keep[r], 1);
  }
  std::vector<float> tie(V, 0.f);
  const GpuDraws t = gpu_draws(tie, 1, V, {0.5}, 0, 0, 1);
  EXPECT_EQ(t.token[0], 0) << "greedy on a tie takes the lowest id, as the CPU's scan";
  expect_no_cuda_error();
}

// The CPU Sampler and the GPU turn the same uniform into the same token (up to float rounding at
// a boundary, which 1000 tokens of random logits almost never hit).
TEST(GpuTokenSampler, SameDrawsAsCpuSampler) {
  const int R = 256, V = 1000, position = 17;
  std::mt19937 g(5);
  const auto logits = randn((size_t)R * V, g, 2.0f);
  struct Case {
    float temperature;
    int top_k;
    float top_p;
  };
  for (const Case& c :
       std::vector<Case>{{0, 0, 1}, {1, 0, 1}, {0.7f, 0, 0.9f}, {1, 50, 1}, {1.3f, 100, 0.8f}}) {
    SamplingParams p;
    p.temperature = c.temperature, p.top_k = c.top_k, p.top_p = c.top_p, p.seed = 99;
    Sampler cpu(p);
    std::vector<double> u(R);
    for (int r = 0; r < R; r++) u[r] = rng_uniform(p.seed, (uint64_t)r, position);
    const GpuDraws d = gpu_draws(logits, R, V, u, c.temperature, c.top_k, c.top_p);
    int differ = 0;
    double logp_err = 0;
    for (int r = 0; r < R; r++) {
      const Draw want = cpu.draw(&logits[(size_t)r * V], V, (uint64_t)r, position);
      if (want.token != d.token[r]) {
        differ++;
        continue;
      }
      logp_err = std::max(logp_err, (double)std::fabs(want.logp - d.logp[r]));
    }
    std::printf("  T %.1f top_k %d top_p %.2f: %d of %d draws differ, max |dlogp| %.2e\n",
                c.temperature, c.top_k, c.top_p, differ, R, logp_err);
    EXPECT_LE(differ, c.temperature == 0 ? 0 : 2);
    EXPECT_LE(logp_err, 1e-4);
  }
  expect_no_cuda_error();
}

// Frequencies of 20000 draws (uniforms from the counter RNG, seed 3) against the distribution
// the chain defines; chi-square below the 0.1% critical value for its degrees of freedom.
TEST(GpuTokenSampler, FrequenciesMatchSoftmax) {
  const int V = 6, R = 20000;
  const std::vector<float> row = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f};
  std::vector<float> logits;
  for (int r = 0; r < R; r++) logits.insert(logits.end(), row.begin(), row.end());
  std::vector<double> u(R);
  for (int r = 0; r < R; r++) u[r] = rng_uniform(3, (uint64_t)r, 0);
  const double crit[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52};  // chi2 0.999 quantile, df 1..5
  struct Case {
    float temperature;
    int top_k;
    float top_p;
  };
  for (const Case& c : std::vector<Case>{{1, 0, 1}, {0.7f, 4, 1}, {1, 0, 0.8f}, {1.5f, 3, 0.9f}}) {
    // The kept set and its renormalised probabilities, on the host in double.
    std::vector<int> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
    std::vector<double> q(V);
    for (int v = 0; v < V; v++) q[v] = std::exp(row[v] / c.temperature);
    int keep = c.top_k > 0 ? c.top_k : V;
    double mass = 0, cum = 0;
    for (int i = 0; i < keep; i++) mass += q[order[i]];
    int n = 0;
    while (n < keep && cum < c.top_p * mass) cum += q[order[n++]];
    keep = n;
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += q[order[i]];
    const GpuDraws d = gpu_draws(logits, R, V, u, c.temperature, c.top_k, c.top_p);
    std::vector<int> count(V, 0);
    for (int t : d.token) count[t]++;
    double chi2 = 0;
    for (int i = 0; i < keep; i++) {
      const double e = R * q[order[i]] / kept;
      chi2 += (count[order[i]] - e) * (count[order[i]] - e) / e;
    }
    for (int i = keep; i < V; i++) EXPECT_EQ(count[order[i]], 0) << "a token outside the kept set";
    std::printf("  T %.1f top_k %d top_p %.2f: %d kept, chi2 %.2f (df %d, 0.1%% critical %.2f)\n",
                c.temperature, c.top_k, c.top_p, keep, chi2, keep - 1, crit[keep - 1]);
    ASSERT_GE(keep, 2);
    EXPECT_LT(chi2, crit[keep - 1]);
  }
  expect_no_cuda_error();
}

// ---- GpuSampler against the CPU Generator ----

ModelConfig small_model() {
  ModelConfig c;
  c.vocab_size = 97, c.d_model = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
  c.d_ff = 96, c.max_seq_len = 48;
  return c;
}

// Eight prompts for three slots (refills), lengths 1 to 30 (the 30-token one reaches the
// 48-position context before max_new_tokens), request 3 the same prompt as request 2.
std::vector<GenRequest> requests(int V) {
  const int len[] = {1, 5, 9, 9, 17, 30, 3, 12};
  std::mt19937 g(8);
  std::vector<GenRequest> reqs(8);
  for (int i = 0; i < 8; i++) {
    reqs[i].sample_id = 100 + i;
    reqs[i].prompt.resize(len[i]);
    for (auto& t : reqs[i].prompt) t = (int32_t)(g() % V);
  }
  reqs[3].prompt = reqs[2].prompt;
  return reqs;
}

struct Responses {
  std::vector<GenOutput> out;
  int64_t generated = 0;
};

Responses run_cpu(Llama& model, int batch, const SamplingParams& p,
                  const std::vector<GenRequest>& reqs) {
  Generator gen(model, batch, p);
  Responses r;
  r.out.resize(reqs.size());
  gen.run(reqs, [&](size_t i, GenOutput&& o) { r.out[i] = std::move(o); });
  r.generated = gen.generated_tokens();
  return r;
}

Responses run_gpu(const Llama& model, int batch, const SamplingParams& p,
                  const std::vector<GenRequest>& reqs, GpuSampler::Precision precision) {
  GpuSampler gen(model, batch, p, precision);
  Responses r;
  r.out.resize(reqs.size());
  gen.run(reqs, [&](size_t i, GenOutput&& o) { r.out[i] = std::move(o); });
  r.generated = gen.generated_tokens();
  return r;
}

// Positions at which two responses agree, and the length of the longer.
std::pair<int, int> agreement(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int same = 0;
  for (size_t t = 0; t < std::min(a.size(), b.size()); t++) same += a[t] == b[t];
  return {same, (int)std::max(a.size(), b.size())};
}

TEST(GpuSampler, GreedyFp32MatchesCpuGenerator) {
  Llama model(small_model());
  model.init_random(27);  // top-1 leads top-2 by >= 1.9e-3 at every greedy step
  const auto reqs = requests(model.cfg.vocab_size);
  SamplingParams p;
  p.temperature = 0, p.max_new_tokens = 24, p.eos_id = -1;
  // Without EOS, then with an EOS that request 0 produces (rows finish early, slots refill).
  for (int pass = 0; pass < 2; pass++) {
    const Responses cpu = run_cpu(model, 3, p, reqs);
    const Responses gpu = run_gpu(model, 3, p, reqs, GpuSampler::Precision::fp32);
    EXPECT_EQ(gpu.generated, cpu.generated) << "pass " << pass;
    double logp_err = 0;
    for (size_t i = 0; i < reqs.size(); i++) {
      EXPECT_EQ(gpu.out[i].tokens, cpu.out[i].tokens) << "pass " << pass << ", request " << i;
      EXPECT_EQ(gpu.out[i].eos, cpu.out[i].eos) << "pass " << pass << ", request " << i;
      ASSERT_EQ(gpu.out[i].logp.size(), gpu.out[i].tokens.size());
      for (size_t t = 0; t < std::min(gpu.out[i].logp.size(), cpu.out[i].logp.size()); t++)
        logp_err = std::max(logp_err, (double)std::fabs(gpu.out[i].logp[t] - cpu.out[i].logp[t]));
    }
    std::printf("  pass %d: %lld tokens, max |dlogp| %.2e\n", pass, (long long)cpu.generated,
                logp_err);
    EXPECT_LE(logp_err, 1e-4);
    if (pass == 0) {
      EXPECT_EQ(cpu.out[5].tokens.size(), 48u - 30u + 1) << "the context limit stops request 5";
      p.eos_id = cpu.out[0].tokens[3];
    }
  }
}

TEST(GpuSampler, TopPFp32SameResponsesAsCpuGenerator) {
  Llama model(small_model());
  model.init_random(22);
  const auto reqs = requests(model.cfg.vocab_size);
  SamplingParams p;
  p.temperature = 0.8f, p.top_p = 0.9f, p.max_new_tokens = 20, p.eos_id = -1, p.seed = 5;
  const Responses cpu = run_cpu(model, 4, p, reqs);
  const Responses gpu = run_gpu(model, 4, p, reqs, GpuSampler::Precision::fp32);
  int same = 0;
  for (size_t i = 0; i < reqs.size(); i++) same += gpu.out[i].tokens == cpu.out[i].tokens;
  std::printf("  %d of %zu responses identical to the CPU's\n", same, reqs.size());
  EXPECT_GE(same, (int)reqs.size() - 1);
  EXPECT_EQ(gpu.generated, cpu.generated);
}

TEST(GpuSampler, GreedyBf16AgreesWithCpuArgmax) {
  Llama model(small_model());
  model.init_random(23);
  const int V = model.cfg.vocab_size;
  const auto reqs = requests(V);
  SamplingParams p;
  p.temperature = 0, p.max_new_tokens = 16, p.eos_id = -1;
  const Responses gpu = run_gpu(model, 3, p, reqs, GpuSampler::Precision::bf16);
  const Responses cpu = run_cpu(model, 3, p, reqs);
  // Teacher forced: the CPU's fp32 forward over prompt + the GPU's response; its argmax at each
  // response position against the GPU's token (no divergence cascade after a near-tie).
  int agree = 0, total = 0, free_same = 0, free_total = 0;
  double logp_err = 0;
  for (size_t i = 0; i < reqs.size(); i++) {
    const auto& y = gpu.out[i].tokens;
    std::vector<int32_t> seq = reqs[i].prompt;
    seq.insert(seq.end(), y.begin(), y.end() - 1);
    const int P = (int)reqs[i].prompt.size(), T = (int)seq.size();
    model.forward(seq.data(), 1, T);
    std::vector<float> logits((size_t)T * V);
    model.logits(logits.data());
    for (size_t t = 0; t < y.size(); t++) {
      const float* l = &logits[(size_t)(P - 1 + t) * V];
      const int arg = (int)(std::max_element(l, l + V) - l);
      const float mx = l[arg];
      double z = 0;
      for (int v = 0; v < V; v++) z += std::exp((double)l[v] - mx);
      const double cpu_logp = l[y[t]] - mx - std::log(z);
      logp_err = std::max(logp_err, std::fabs(cpu_logp - gpu.out[i].logp[t]));
      agree += arg == y[t], total++;
    }
    const auto [same, n] = agreement(y, cpu.out[i].tokens);
    free_same += same, free_total += n;
  }
  std::printf(
      "  bf16 greedy: %d of %d tokens are the CPU's argmax (teacher forced); free "
      "running, %d of %d positions equal the CPU's greedy tokens; max |dlogp| %.3f\n",
      agree, total, free_same, free_total, logp_err);
  EXPECT_GE(agree, 0.9 * total);
  EXPECT_LE(logp_err, 0.1);
}

}  // namespace
}  // namespace xwin::test
