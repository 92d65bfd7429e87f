// The reward is read at the last real token of each response, never at padding: the index
// helper for both padding sides, and through the model, a reward that does not change when the
// batch's rows are padded further (right padding: causal attention keeps padding invisible).
#include <gtest/gtest.h>

#include "align/rm_objective.h"

using namespace xwin;

TEST(RewardPosition, LastRealTokenForBothPaddingSides) {
  EXPECT_EQ(last_token_index(5, 8, false), 4);  // right-padded: t t t t t p p p
  EXPECT_EQ(last_token_index(5, 8, true), 7);   // left-padded:  p p p t t t t t
  EXPECT_EQ(last_token_index(8, 8, false), 7);
  EXPECT_EQ(last_token_index(12, 8, false), 7);  // cut to T: the last kept token
}

static Llama reward_model() {
  ModelConfig c;
  c.vocab_size = 23, c.d_model = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
  c.d_ff = 40, c.max_seq_len = 32, c.value_head = true;
  Llama m(c);
  m.init_random(8);
  m.params[m.layout.at("value_head.bias").offset] = 0.25f;
  return m;
}

static std::vector<double> rewards_at(Llama& m, std::vector<PreferenceGroup> groups, int T) {
  RmObjective obj(std::move(groups), T, false, 0, 0.0);
  std::vector<int64_t> samples = {0, 1};
  std::vector<int32_t> tokens;
  int B = 0, TT = 0;
  obj.inputs(samples, tokens, B, TT);
  m.forward(tokens.data(), B, TT);
  return obj.rewards(m, samples);
}

TEST(RewardPosition, PaddingAfterTheResponseDoesNotChangeTheReward) {
  Llama m = reward_model();
  PreferenceGroup a, b;
  a.sequences = {{1, 5, 6, 7, 3, 9, 8, 2}, {1, 5, 6, 7, 3, 9, 2}};
  b.sequences = {{1, 4, 3, 10, 2}, {1, 4, 3, 11, 12, 13, 2}};
  a.pairs = b.pairs = {{0, 1, 0.f}};
  const auto tight = rewards_at(m, {a, b}, 8);
  const auto padded = rewards_at(m, {a, b}, 20);
  ASSERT_EQ(tight.size(), 4u);
  for (size_t i = 0; i < 4; i++) EXPECT_NEAR(tight[i], padded[i], 1e-5) << i;
  // Reading one position later (padding) would give a different value.
  RmObjective obj({a, b}, 20, false, 0, 0.0);
  std::vector<int32_t> tokens;
  int B = 0, T = 0;
  obj.inputs({0, 1}, tokens, B, T);
  m.forward(tokens.data(), B, T);
  std::vector<float> v((size_t)B * T);
  m.values(v.data());
  ASSERT_EQ(T, 8);                                  // rows pad only to the batch's longest sequence
  EXPECT_NEAR(v[7], tight[0], 1e-5);                // row 0: 8 tokens, last at index 7
  EXPECT_NEAR(v[T + 6], tight[1], 1e-5);            // row 1: 7 tokens
  EXPECT_GT(std::fabs(v[T + 7] - tight[1]), 1e-4);  // its index 7 is padding
}
