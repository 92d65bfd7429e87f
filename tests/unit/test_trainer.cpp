// Schedule, data order, LM batches and the optimizer step of the shared Trainer (clipping,
// decay only on matrices), each against values computed here from the formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "align/batch.h"
#include "align/trainer.h"
#include "core/error.h"

using namespace xwin;

TEST(Schedule, WarmupThenCosine) {
  TrainConfig tc;
  tc.steps = 110, tc.warmup_steps = 10, tc.lr = 1e-3, tc.min_lr = 1e-4;
  EXPECT_DOUBLE_EQ(lr_at(tc, 0), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(tc, 4), 5e-4);
  EXPECT_DOUBLE_EQ(lr_at(tc, 9), 1e-3);
  EXPECT_DOUBLE_EQ(lr_at(tc, 10), 1e-3);
  EXPECT_NEAR(lr_at(tc, 60), 1e-4 + 0.5 * 9e-4, 1e-15);  // halfway through the decay
  EXPECT_NEAR(lr_at(tc, 110), 1e-4, 1e-15);
  for (int s = 11; s < 110; s++) EXPECT_LT(lr_at(tc, s), lr_at(tc, s - 1));
}

TEST(Schedule, NoWarmup) {
  TrainConfig tc;
  tc.steps = 5, tc.warmup_steps = 0, tc.lr = 2.0, tc.min_lr = 0.0;
  EXPECT_DOUBLE_EQ(lr_at(tc, 0), 2.0);
  EXPECT_NEAR(lr_at(tc, 5), 0.0, 1e-15);
}

TEST(TrainConfig, RejectsContradictions) {
  TrainConfig tc;
  tc.batch_size = 6, tc.micro_batch_size = 4;
  EXPECT_THROW(tc.validate(), Error);
  tc.micro_batch_size = 3;
  EXPECT_NO_THROW(tc.validate());
  tc.min_lr = 1.0, tc.lr = 0.5;
  EXPECT_THROW(tc.validate(), Error);
}

TEST(DataOrder, PermutationPerEpochAndSeeded) {
  DataOrder plain(7, false, 1);
  for (int g = 0; g < 20; g++) EXPECT_EQ(plain.record(g), (size_t)(g % 7));
  DataOrder a(100, true, 42), b(100, true, 42), c(100, true, 43);
  std::set<size_t> e0, e1;
  bool differs_seed = false, differs_epoch = false;
  for (int g = 0; g < 100; g++) {
    size_t r = a.record(g);
    e0.insert(r);
    EXPECT_EQ(r, b.record(g));
    differs_seed |= r != c.record(g);
  }
  for (int g = 100; g < 200; g++) e1.insert(a.record(g));
  DataOrder a2(100, true, 42);
  for (int g = 0; g < 100; g++) differs_epoch |= a2.record(g) != a2.record(g + 100);
  EXPECT_EQ(e0.size(), 100u);
  EXPECT_EQ(e1.size(), 100u);
  EXPECT_TRUE(differs_seed);
  EXPECT_TRUE(differs_epoch);
  // Random access gives the same answer as sequential access (resume, rank layouts).
  DataOrder d(100, true, 42);
  EXPECT_EQ(d.record(150), a.record(150));
}

TEST(LmBatch, TargetsWeightsPaddingTruncation) {
  TokenDataset d;
  d.append({1, 5, 6, 7, 2}, {0, 0, 1, 1, 1});
  d.append({1, 8, 2}, {0, 1, 1});
  LmBatch b;
  build_lm_batch(d, {0, 1}, 4, b);
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{1, 5, 6, 7, 1, 8, 2, 0}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{5, 6, 7, 0, 8, 2, 0, 0}));
  EXPECT_EQ(b.weights, (std::vector<float>{0, 1, 1, 0, 1, 1, 0, 0}));
  EXPECT_EQ(b.n_loss_tokens, 4);
}

TEST(LmBatch, PadsOnlyToTheLongestRecord) {
  TokenDataset d;
  d.append({1, 5, 6, 7, 2}, {0, 0, 1, 1, 1});
  d.append({1, 8, 2}, {0, 1, 1});
  LmBatch b;
  build_lm_batch(d, {1}, 16, b);  // one 3-token record: T shrinks from 16 to 3
  EXPECT_EQ(b.T, 3);
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{1, 8, 2}));
  build_lm_batch(d, {1, 0}, 16, b);
  EXPECT_EQ(b.T, 5);
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{1, 8, 2, 0, 0, 1, 5, 6, 7, 2}));
  EXPECT_EQ(b.weights, (std::vector<float>{1, 1, 0, 0, 0, 0, 1, 1, 1, 0}));
}

// An objective that plants a known gradient, to check clipping and AdamW end to end.
class PlantedGradient : public Objective {
 public:
  explicit PlantedGradient(Llama& m) : m_(m) {}
  int64_t count(const std::vector<int64_t>&) override { return 1; }
  void inputs(const std::vector<int64_t>&, std::vector<int32_t>& tokens, int& B, int& T) override {
    tokens.assign(4, 1);
    B = 1, T = 4;
  }
  // Plants the gradient and leaves dhidden zero, so backward() adds nothing to it.
  double head(Llama& model, const std::vector<int64_t>&, double, bool) override {
    std::fill_n(model.dhidden(), 4 * model.cfg.d_model, 0.f);
    for (size_t i = 0; i < m_.grads.size(); i++) m_.grads[i] += 0.5f * std::sin(0.1 * i + 1);
    return 1.0;
  }

 private:
  Llama& m_;
};

TEST(Trainer, ClipsGlobalNormAndDecaysOnlyMatrices) {
  ModelConfig cfg;
  cfg.vocab_size = 11, cfg.d_model = 8, cfg.n_layers = 1, cfg.n_heads = 2, cfg.n_kv_heads = 1;
  cfg.d_ff = 12, cfg.max_seq_len = 8;
  Llama model(cfg);
  model.init_random(3);
  const std::vector<float> p0 = model.params;
  TrainConfig tc;
  tc.steps = 2, tc.batch_size = 2, tc.micro_batch_size = 1, tc.warmup_steps = 0;
  tc.lr = 0.01, tc.min_lr = 0.01, tc.weight_decay = 0.5, tc.grad_clip = 0.25;
  tc.beta1 = 0.9, tc.beta2 = 0.99, tc.eps = 1e-8;
  Trainer trainer(model, tc, "/tmp/xwin_unit_trainer");
  PlantedGradient obj(model);
  StepStats st = trainer.step(obj, 0);
  // Two micro-batches each add the planted gradient.
  double norm = 0;
  for (size_t i = 0; i < p0.size(); i++) norm += std::pow(2 * 0.5f * std::sin(0.1 * i + 1), 2);
  norm = std::sqrt(norm);
  EXPECT_NEAR(st.grad_norm, norm, 1e-6 * norm);
  const double clip = tc.grad_clip / (norm + 1e-6);
  for (const auto& t : model.layout.tensors) {
    for (size_t k = 0; k < t.numel; k += 7) {
      const size_t i = t.offset + k;
      const double g = 2 * 0.5f * std::sin(0.1 * i + 1) * clip;
      const double m = 0.1 * g, v = 0.01 * g * g;
      const double mhat = m / 0.1, vhat = v / 0.01;
      const double wd = t.decay ? 0.5 : 0.0;
      const double want = p0[i] * (1 - 0.01 * wd) - 0.01 * mhat / (std::sqrt(vhat) + 1e-8);
      EXPECT_NEAR(model.params[i], want, 2e-6) << t.name << "[" << k << "]";
    }
  }
  EXPECT_FALSE(model.layout.at("model.norm.weight").decay);
  EXPECT_TRUE(model.layout.at("lm_head.weight").decay);
}
