// The GPU engine (src/gpu) against the CPU engine on small validation-like models: GQA
// (n_kv_heads < n_heads), tied and untied heads, T = 37 (not a power of two), vocabularies not
// a multiple of 64, padded rows and a loss mask. Checked, with the closeness of tests/unit/check.h
// (norm-relative and max-relative error both within the tolerance):
//   fp32: logits, loss and every parameter's gradient within 1e-5 of the CPU Llama;
//   bf16: the same within 1e-2 (both engines start from bf16-representable weights, so only the
//         bf16 activations differ);
//   10 training steps (clipping, AdamW, warmup + cosine) against the real CPU Trainer: each
//         step's loss within 1e-2 relative in bf16 and 1e-4 in fp32.
// Every comparison also prints a line "PARITY <kind> <what> norm_rel <e> max_rel <e>" that
// validation/gpu_check.sh collects into its summary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../gpu_check.h"
#include "align/trainer.h"
#include "gpu/llama_gpu.h"
#include "model/llama.h"

namespace xwin::test {
namespace {

constexpr double kTolTrainF32 = 1e-4;  // AdamW's sign-like first steps amplify rounding a little

ModelConfig small_config(bool tied) {
  ModelConfig c;
  c.vocab_size = tied ? 131 : 203;
  c.d_model = tied ? 48 : 64;
  c.n_layers = 2;
  c.n_heads = tied ? 6 : 4;
  c.n_kv_heads = 2;
  c.d_ff = tied ? 80 : 100;
  c.max_seq_len = 64;
  c.tie_embeddings = tied;
  return c;
}

// Random weights with some spread: matrices of std 0.1 (so attention is far from uniform) and
// norm weights around 1. With bf16, every weight is rounded to a bf16 value.
void init_weights(Llama& m, uint64_t seed, bool bf16) {
  m.init_random(seed);
  std::mt19937 g((unsigned)seed);
  std::normal_distribution<float> noise(0.f, 0.1f);
  for (const TensorInfo& t : m.layout.tensors) {
    float* p = m.params.data() + t.offset;
    for (size_t i = 0; i < t.numel; i++) p[i] = t.init_one ? 1.f + noise(g) : 5.f * p[i];
  }
  if (bf16) m.params = round_bf16(m.params);
}

// A micro-batch as LmObjective builds one: targets are the next tokens; row 1 is padded (its
// tail has token 0 and weight 0); the mask skips every fifth position as a prompt would.
struct Batch {
  int B = 2, T = 37;
  std::vector<int32_t> tokens, targets;
  std::vector<float> mask;
  int64_t count = 0;
};

Batch make_batch(const ModelConfig& cfg, uint64_t seed) {
  Batch b;
  const int N = b.B * b.T;
  std::mt19937 g((unsigned)seed);
  std::uniform_int_distribution<int> tok(0, cfg.vocab_size - 1);
  b.tokens.assign(N, 0), b.targets.assign(N, 0), b.mask.assign(N, 0.f);
  for (int r = 0; r < b.B; r++) {
    const int len = r == 1 ? b.T - 6 : b.T;
    for (int t = 0; t < len; t++) b.tokens[r * b.T + t] = tok(g);
    b.tokens[r * b.T + 1] = cfg.vocab_size - 1;  // the last vocabulary row is used
    for (int t = 0; t + 1 < len; t++) {
      b.targets[r * b.T + t] = b.tokens[r * b.T + t + 1];
      const bool counts = t % 5 != 0;
      b.mask[r * b.T + t] = counts ? 1.f : 0.f;
      b.count += counts;
    }
  }
  return b;
}

std::vector<float> scaled(const std::vector<float>& mask, double scale) {
  std::vector<float> w(mask);
  for (float& x : w) x *= (float)scale;
  return w;
}

// check.h's closeness test (expect_close), plus the PARITY line with both errors.
void compare(const float* got, const float* want, size_t n, double tol, const std::string& kind,
             const std::string& what) {
  std::vector<double> ref(want, want + n);
  double err2 = 0, ref2 = 0, max_err = 0, max_ref = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = std::abs(got[i] - ref[i]);
    err2 += e * e, ref2 += ref[i] * ref[i];
    max_err = std::max(max_err, e), max_ref = std::max(max_ref, std::abs(ref[i]));
  }
  const double norm_rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  const double max_rel = max_ref > 0 ? max_err / max_ref : max_err;
  std::printf("PARITY %s %s norm_rel %.3e max_rel %.3e\n", kind.c_str(), what.c_str(), norm_rel,
              max_rel);
  expect_close(got, ref, tol, kind + " " + what);
}

void compare_scalar(double got, double want, double tol, const std::string& kind,
                    const std::string& what) {
  const double rel = std::abs(got - want) / std::max(std::abs(want), 1e-30);
  std::printf("PARITY %s %s norm_rel %.3e max_rel %.3e (gpu %.9g cpu %.9g)\n", kind.c_str(),
              what.c_str(), rel, rel, got, want);
  EXPECT_LE(rel, tol) << kind << " " << what << ": gpu " << got << " cpu " << want;
}

// One forward + loss + backward on both engines; logits, loss and every gradient compared.
void gradient_case(bool tied, GpuPrecision precision) {
  const bool bf16 = precision == GpuPrecision::bf16;
  const double tol = bf16 ? kTolBf16 : kTolF32;
  const std::string kind = std::string(to_string(precision)) + (tied ? "_tied" : "_untied");
  const ModelConfig cfg = small_config(tied);
  Llama cpu(cfg);
  init_weights(cpu, tied ? 11 : 12, bf16);
  const Batch b = make_batch(cfg, 5);
  const std::vector<float> w = scaled(b.mask, 1.0 / (double)b.count);
  const size_t N = (size_t)b.B * b.T;

  cpu.zero_grad();
  cpu.forward(b.tokens.data(), b.B, b.T);
  std::vector<float> want_logits(N * cfg.vocab_size);
  cpu.logits(want_logits.data());
  const double want_loss = cpu.lm_loss(b.targets.data(), w.data(), true, nullptr);
  cpu.backward(b.tokens.data());

  GpuLlama gpu(cfg, precision, (int)N, b.T);
  gpu.upload(cpu);
  gpu.zero_grad();
  gpu.forward(b.tokens.data(), b.B, b.T);
  std::vector<float> logits(N * cfg.vocab_size);
  gpu.logits(logits.data());
  const double loss = gpu.lm_loss(b.targets.data(), w.data(), true);
  gpu.backward();
  Llama got(cfg);
  gpu.download(got);

  compare(logits.data(), want_logits.data(), logits.size(), tol, kind, "logits");
  compare_scalar(loss, want_loss, tol, kind, "loss");
  EXPECT_EQ(got.params, cpu.params) << "download returns the uploaded parameters";
  for (const TensorInfo& t : cpu.layout.tensors)
    compare(got.grads.data() + t.offset, cpu.grads.data() + t.offset, t.numel, tol, kind,
            "grad:" + t.name);
  expect_no_cuda_error();
}

TEST(GpuLlama, Fp32MatchesCpuUntied) {
  gradient_case(false, GpuPrecision::fp32);
}
TEST(GpuLlama, Fp32MatchesCpuTied) {
  gradient_case(true, GpuPrecision::fp32);
}
TEST(GpuLlama, Bf16MatchesCpuUntied) {
  gradient_case(false, GpuPrecision::bf16);
}
TEST(GpuLlama, Bf16MatchesCpuTied) {
  gradient_case(true, GpuPrecision::bf16);
}

// The CPU side of the training comparison: the real Trainer, fed step s's batch.
class FixedBatches : public Objective {
 public:
  explicit FixedBatches(const ModelConfig& cfg) : cfg_(cfg) {}
  const Batch& batch(const std::vector<int64_t>& samples) {
    const int64_t step = samples.at(0) / 2;
    if (step != step_) b_ = make_batch(cfg_, 100 + (uint64_t)step), step_ = step;
    return b_;
  }
  int64_t count(const std::vector<int64_t>& samples) override { return batch(samples).count; }
  void inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
              int& T) override {
    const Batch& b = batch(samples);
    tokens = b.tokens, B = b.B, T = b.T;
  }
  double head(Llama& model, const std::vector<int64_t>& samples, double scale, bool grad) override {
    const Batch& b = batch(samples);
    const std::vector<float> w = scaled(b.mask, scale);
    return model.lm_loss(b.targets.data(), w.data(), grad, nullptr);
  }

 private:
  ModelConfig cfg_;
  Batch b_;
  int64_t step_ = -1;
};

void training_case(bool tied, GpuPrecision precision) {
  const bool bf16 = precision == GpuPrecision::bf16;
  const double tol = bf16 ? kTolBf16 : kTolTrainF32;
  const std::string kind =
      std::string("train_") + to_string(precision) + (tied ? "_tied" : "_untied");
  const ModelConfig cfg = small_config(tied);
  TrainConfig tc;
  tc.steps = 10, tc.batch_size = 2, tc.micro_batch_size = 2, tc.warmup_steps = 3;
  tc.lr = 3e-3, tc.min_lr = 3e-4, tc.weight_decay = 0.1, tc.grad_clip = 1.0;
  Llama cpu(cfg);
  init_weights(cpu, 21, bf16);
  GpuLlama gpu(cfg, precision, 2 * 37, 37);
  gpu.upload(cpu);
  Trainer trainer(cpu, tc, "/tmp/xwin_gpu_engine_trainer");
  FixedBatches data(cfg);
  for (int64_t s = 0; s < tc.steps; s++) {
    const StepStats want = trainer.step(data, s);
    const Batch& b = data.batch({2 * s});
    const GpuStepStats got =
        gpu.train_step(b.tokens.data(), b.targets.data(), b.mask.data(), b.B, b.T, tc, s);
    std::printf("  step %2lld  loss gpu %.6f cpu %.6f  grad norm gpu %.5f cpu %.5f  lr %.3e\n",
                (long long)s + 1, got.loss, want.loss, got.grad_norm, want.grad_norm, got.lr);
    EXPECT_DOUBLE_EQ(got.lr, want.lr);
    compare_scalar(got.loss, want.loss, tol, kind, "loss_step" + std::to_string(s + 1));
  }
  expect_no_cuda_error();
}

TEST(GpuLlama, TrainingFp32MatchesCpuTrainer) {
  training_case(false, GpuPrecision::fp32);
}
TEST(GpuLlama, TrainingBf16MatchesCpuTrainerUntied) {
  training_case(false, GpuPrecision::bf16);
}
TEST(GpuLlama, TrainingBf16MatchesCpuTrainerTied) {
  training_case(true, GpuPrecision::bf16);
}

TEST(GpuLlama, CountsItsMemoryAndRefusesOversizedBatches) {
  const ModelConfig cfg = small_config(false);
  GpuLlama gpu(cfg, GpuPrecision::bf16, 64, 32);
  const GpuMemory m = gpu.memory();
  EXPECT_GE(m.engine_bytes, 16 * gpu.layout.total + 2 * gpu.layout.total);
  EXPECT_GE(m.device_used_peak, m.device_used_before);
  std::vector<int32_t> tokens(3 * 33, 1);
  EXPECT_THROW(gpu.forward(tokens.data(), 3, 33), Error);  // T > max_T
  EXPECT_THROW(gpu.forward(tokens.data(), 3, 32), Error);  // more than 64 tokens
  tokens[5] = cfg.vocab_size;
  EXPECT_THROW(gpu.forward(tokens.data(), 2, 32), Error);  // outside the vocabulary
}

}  // namespace
}  // namespace xwin::test
