#include "align/lm_objective.h"

namespace xwin {

LmObjective::LmObjective(Llama& model, const TokenDataset& data, int seq_len, bool shuffle,
                         uint64_t seed)
    : model_(model), data_(data), T_(seq_len), order_(data.size(), shuffle, seed) {}

const LmBatch& LmObjective::build(const std::vector<int64_t>& samples) {
  if (samples != built_for_) {
    std::vector<size_t> records;
    for (int64_t g : samples) records.push_back(order_.record(g));
    build_lm_batch(data_, records, T_, batch_);
    built_for_ = samples;
  }
  return batch_;
}

int64_t LmObjective::count(const std::vector<int64_t>& samples) {
  return build(samples).n_loss_tokens;
}

int64_t LmObjective::tokens(const std::vector<int64_t>& samples) {
  const LmBatch& b = build(samples);
  return (int64_t)b.B * b.T;
}

double LmObjective::run(const std::vector<int64_t>& samples, double scale) {
  build(samples);
  std::vector<float> w(batch_.weights);
  for (float& x : w) x *= (float)scale;
  model_.forward(batch_.tokens.data(), batch_.B, batch_.T);
  double loss = model_.lm_loss(batch_.targets.data(), w.data(), true, nullptr);
  model_.backward(batch_.tokens.data());
  return loss;
}

}  // namespace xwin
