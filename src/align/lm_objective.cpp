#include "align/lm_objective.h"

namespace xwin {

LmObjective::LmObjective(const TokenDataset& data, int seq_len, bool shuffle, uint64_t seed)
    : data_(data), T_(seq_len), order_(data.size(), shuffle, seed) {}

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

void LmObjective::inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens,
                         int& B, int& T) {
  const LmBatch& b = build(samples);
  tokens = b.tokens;
  B = b.B, T = b.T;
}

double LmObjective::head(Llama& model, const std::vector<int64_t>& samples, double scale,
                         bool grad) {
  const LmBatch& b = build(samples);
  std::vector<float> w(b.weights);
  for (float& x : w) x *= (float)scale;
  return model.lm_loss(b.targets.data(), w.data(), grad, nullptr);
}

}  // namespace xwin
