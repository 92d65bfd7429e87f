#include "align/rm_objective.h"

#include <algorithm>
#include <cstring>

#include "align/losses.h"
#include "core/error.h"
#include "parallel/grid.h"

namespace xwin {

static std::vector<int32_t> concat(const TokenDataset& a, size_t i, const TokenDataset& b,
                                   size_t j) {
  std::vector<int32_t> s(a.tokens.begin() + a.offsets[i], a.tokens.begin() + a.offsets[i + 1]);
  s.insert(s.end(), b.tokens.begin() + b.offsets[j], b.tokens.begin() + b.offsets[j + 1]);
  return s;
}

std::vector<PreferenceGroup> groups_from_pairs(const PairsDataset& d, bool use_margin) {
  std::vector<PreferenceGroup> out(d.size());
  for (size_t i = 0; i < d.size(); i++) {
    out[i].sequences = {concat(d.prompt, i, d.chosen, i), concat(d.prompt, i, d.rejected, i)};
    const float m = use_margin && !d.margin.empty() ? d.margin[i] : 0.f;
    out[i].pairs = {{0, 1, m}};
  }
  return out;
}

std::vector<PreferenceGroup> groups_from_xwin_set(const XwinSetDataset& d) {
  std::vector<PreferenceGroup> out(d.size());
  const int64_t K = d.K;
  for (size_t p = 0; p < d.size(); p++) {
    for (int64_t k = 0; k < K; k++)
      out[p].sequences.push_back(concat(d.prompt, p, d.responses, p * K + k));
    for (int64_t a = 0; a < K; a++)
      for (int64_t b = 0; b < K; b++)
        if (d.scores[p * K + a] > d.scores[p * K + b])
          out[p].pairs.push_back({(int)a, (int)b, 0.f});
  }
  return out;
}

int last_token_index(int len, int T, bool left_padded) {
  const int n = std::min(len, T);
  return left_padded ? T - 1 : n - 1;
}

RmObjective::RmObjective(std::vector<PreferenceGroup> groups, int seq_len, bool shuffle,
                         uint64_t seed, double center_coef)
    : groups_(std::move(groups)),
      T_(seq_len),
      order_(groups_.size(), shuffle, seed),
      center_(center_coef) {
  require(!groups_.empty(), "reward model: no preference groups to train on");
}

const PreferenceGroup& RmObjective::group(int64_t sample) {
  return groups_[order_.record(sample)];
}

int64_t RmObjective::count(const std::vector<int64_t>& samples) {
  int64_t n = 0;
  for (int64_t s : samples) n += (int64_t)group(s).pairs.size();
  return n;
}

// Rows keep the end of a sequence longer than T (the response), dropping prompt tokens first.
void RmObjective::inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
                         int& T) {
  B = 0;
  for (int64_t s : samples) B += (int)group(s).sequences.size();
  size_t longest = 1;  // pad only to the batch's longest row (see build_lm_batch)
  for (int64_t s : samples)
    for (const auto& seq : group(s).sequences) longest = std::max(longest, seq.size());
  T = Tb_ = (int)std::min<size_t>(longest, (size_t)T_);
  tokens.assign((size_t)B * T, 0);
  lengths_.clear();
  int row = 0;
  for (int64_t s : samples)
    for (const auto& seq : group(s).sequences) {
      const int n = (int)std::min<size_t>(seq.size(), (size_t)T);
      std::copy(seq.end() - n, seq.end(), &tokens[(size_t)row * T]);
      lengths_.push_back(n);
      row++;
    }
}

std::vector<double> RmObjective::rewards(const Llama& model, const std::vector<int64_t>& samples) {
  const float* h = model.hidden();
  const int C = model.cfg.d_model;
  const float* w = model.params.data() + model.layout.at("value_head.weight").offset;
  const float b = model.params[model.layout.at("value_head.bias").offset];
  std::vector<double> r(lengths_.size());
  for (size_t row = 0; row < lengths_.size(); row++) {
    const float* x = h + ((size_t)row * Tb_ + last_token_index(lengths_[row], Tb_, false)) * C;
    double acc = b;
    for (int c = 0; c < C; c++) acc += (double)x[c] * w[c];
    r[row] = acc;
  }
  return r;
}

double RmObjective::head(Llama& model, const std::vector<int64_t>& samples, double scale,
                         bool grad) {
  require(model.cfg.value_head, "reward model training needs a model with a value head");
  const std::vector<double> r = rewards(model, samples);
  std::vector<double> dr(r.size(), 0.0);
  double loss = 0;
  size_t base = 0;
  for (int64_t s : samples) {
    const PreferenceGroup& g = group(s);
    for (const auto& p : g.pairs) {
      const PairGrad bt = bradley_terry(r[base + p.better], r[base + p.worse], p.margin);
      const double sum = r[base + p.better] + r[base + p.worse];
      loss += scale * (bt.loss + center_ * sum * sum);
      dr[base + p.better] += scale * (bt.d_chosen + 2 * center_ * sum);
      dr[base + p.worse] += scale * (bt.d_rejected + 2 * center_ * sum);
    }
    base += g.sequences.size();
  }
  if (!grad) return loss;
  const int C = model.cfg.d_model;
  float* dh = model.dhidden();
  std::fill_n(dh, lengths_.size() * (size_t)Tb_ * C, 0.f);
  const float* h = model.hidden();
  const float* w = model.params.data() + model.layout.at("value_head.weight").offset;
  float* dw = model.grad("value_head.weight");
  float* db = model.grad("value_head.bias");
  for (size_t row = 0; row < r.size(); row++) {
    const size_t at = (size_t)row * Tb_ + last_token_index(lengths_[row], Tb_, false);
    const float d = (float)dr[row];
    for (int c = 0; c < C; c++) {
      dh[at * C + c] = d * w[c];
      dw[c] += d * h[at * C + c];
    }
    *db += d;
  }
  return loss;
}

RmEval evaluate_rm(Llama& model, RmObjective& heldout, int batch, MPI_Comm comm) {
  int rank = 0, size = 1;
  if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank), MPI_Comm_size(comm, &size);
  double correct = 0, gap = 0, loss = 0;
  int64_t pairs = 0;
  std::vector<int32_t> tokens;
  for (int64_t s0 = (int64_t)rank * batch; s0 < (int64_t)heldout.size();
       s0 += (int64_t)size * batch) {
    std::vector<int64_t> samples;
    for (int64_t s = s0; s < std::min<int64_t>(s0 + batch, heldout.size()); s++)
      samples.push_back(s);
    int B = 0, T = 0;
    heldout.inputs(samples, tokens, B, T);
    model.forward(tokens.data(), B, T);
    const std::vector<double> r = heldout.rewards(model, samples);
    size_t base = 0;
    for (int64_t s : samples) {
      const PreferenceGroup& g = heldout.group(s);
      for (const auto& p : g.pairs) {
        const double d = r[base + p.better] - r[base + p.worse];
        correct += d > 0, gap += d, pairs++;
        loss += bradley_terry(r[base + p.better], r[base + p.worse], p.margin).loss;
      }
      base += g.sequences.size();
    }
  }
  RmEval e;
  e.pairs = allreduce_sum(pairs, comm);
  const double n = std::max<int64_t>(1, e.pairs);
  e.accuracy = allreduce_sum(correct, comm) / n;
  e.mean_gap = allreduce_sum(gap, comm) / n;
  e.loss = allreduce_sum(loss, comm) / n;
  return e;
}

}  // namespace xwin
