// The KV-cache decode path computes what the full forward pass computes: prefill + one token at
// a time, with rows at different positions in different cache slots, gives the same logits;
// with the weights packed for the decode kernels and with sgemm on the parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/llama.h"

using namespace xwin;

static ModelConfig tiny_gqa() {
  ModelConfig c;
  c.vocab_size = 37, c.d_model = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
  c.d_ff = 48, c.max_seq_len = 24;
  return c;
}

static void check_against_full_forward(size_t pack_limit) {
  Llama model(tiny_gqa());
  model.init_random(11);
  const int B = 3, T = 19, V = model.cfg.vocab_size;
  std::mt19937 rng(5);
  std::vector<int32_t> toks(B * T);
  for (auto& t : toks) t = rng() % V;
  model.forward(toks.data(), B, T);
  std::vector<float> full((size_t)B * T * V);
  model.logits(full.data());

  // Rows in slots 2, 0, 1 with prompts of different lengths, then decode to T together.
  KvCache cache = model.make_cache(3, T, pack_limit);
  EXPECT_EQ(cache.packed.empty(), pack_limit == 0);
  const int slot[B] = {2, 0, 1}, prompt[B] = {5, 1, 9};
  std::vector<float> out(V);
  double worst = 0, scale = 0;
  auto check = [&](int b, int t, const float* got) {
    for (int v = 0; v < V; v++) {
      const float want = full[((size_t)b * T + t) * V + v];
      worst = std::max(worst, (double)std::fabs(got[v] - want));
      scale = std::max(scale, (double)std::fabs(want));
    }
  };
  for (int b = 0; b < B; b++) {
    const int p0 = 0;
    model.forward_cached(&toks[b * T], 1, prompt[b], &slot[b], &p0, cache, out.data());
    check(b, prompt[b] - 1, out.data());
  }
  std::vector<int> pos(prompt, prompt + B);
  std::vector<float> logits((size_t)B * V);
  for (int step = 0; step < T; step++) {
    std::vector<int32_t> next;
    std::vector<int> rows, slots, at;
    for (int b = 0; b < B; b++)
      if (pos[b] < T)
        next.push_back(toks[b * T + pos[b]]), rows.push_back(b), slots.push_back(slot[b]),
            at.push_back(pos[b]);
    if (rows.empty()) break;
    model.forward_cached(next.data(), (int)rows.size(), 1, slots.data(), at.data(), cache,
                         logits.data());
    for (size_t i = 0; i < rows.size(); i++) check(rows[i], pos[rows[i]], &logits[i * V]);
    for (int b : rows) pos[b]++;
  }
  EXPECT_LT(worst / scale, 1e-5) << "max abs diff " << worst << " of " << scale;
}

TEST(KvCache, PrefillAndDecodeMatchFullForward) {
  check_against_full_forward(Llama::kPackLimit);
}

TEST(KvCache, UnpackedWeightsMatchFullForward) {
  check_against_full_forward(0);
}

TEST(KvCache, OverflowIsAnError) {
  Llama model(tiny_gqa());
  KvCache cache = model.make_cache(1, 4);
  std::vector<int32_t> toks(5, 1);
  std::vector<float> out(model.cfg.vocab_size);
  const int slot = 0, pos = 0;
  EXPECT_THROW(model.forward_cached(toks.data(), 1, 5, &slot, &pos, cache, out.data()),
               std::exception);
  EXPECT_THROW(model.make_cache(1, 25), std::exception);
}
