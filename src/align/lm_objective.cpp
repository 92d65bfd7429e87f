#include "align/lm_objective.h"

#include <algorithm>

#include "parallel/grid.h"

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

void LmObjective::inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
                         int& T) {
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

double evaluate_lm(Llama& model, LmObjective& heldout, size_t records, int batch, MPI_Comm comm) {
  int rank = 0, size = 1;
  if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank), MPI_Comm_size(comm, &size);
  double loss = 0;
  int64_t units = 0;
  std::vector<int32_t> tokens;
  for (size_t s0 = (size_t)rank * batch; s0 < records; s0 += (size_t)size * batch) {
    std::vector<int64_t> samples;
    for (size_t s = s0; s < std::min(records, s0 + batch); s++) samples.push_back((int64_t)s);
    int B = 0, T = 0;
    heldout.inputs(samples, tokens, B, T);
    model.forward(tokens.data(), B, T);
    loss += heldout.head(model, samples, 1.0, false);
    units += heldout.count(samples);
  }
  return allreduce_sum(loss, comm) / std::max<int64_t>(1, allreduce_sum(units, comm));
}

}  // namespace xwin
