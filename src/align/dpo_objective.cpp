#include "align/dpo_objective.h"

#include <algorithm>

#include "core/error.h"
#include "io/datasets.h"
#include "parallel/grid.h"

namespace xwin {

DpoObjective::DpoObjective(std::vector<DpoPair> pairs, int seq_len, bool shuffle, uint64_t seed,
                           const DpoConfig& cfg)
    : pairs_(std::move(pairs)), T_(seq_len), order_(pairs_.size(), shuffle, seed), cfg_(cfg) {
  require(!pairs_.empty(), "dpo: no pairs to train on");
}

int64_t DpoObjective::count(const std::vector<int64_t>& samples) {
  return (int64_t)samples.size();
}

// Row = prompt + response, keeping the response whole when it must be cut to T (prompt tokens
// go first). Position t predicts token t+1; response tokens are the targets with weight 1.
void DpoObjective::inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
                          int& T) {
  size_t longest = 1;  // pad only to the batch's longest row (see build_lm_batch)
  for (int64_t s : samples)
    longest = std::max(
        longest, pair(s).prompt.size() + std::max(pair(s).chosen.size(), pair(s).rejected.size()));
  B = 2 * (int)samples.size(), T = (int)std::min<size_t>(longest, (size_t)T_);
  batch_.B = B, batch_.T = T;
  batch_.tokens.assign((size_t)B * T, 0);
  batch_.targets.assign((size_t)B * T, 0);
  batch_.weights.assign((size_t)B * T, 0.f);
  response_tokens_.assign(B, 0);
  int row = 0;
  for (int64_t s : samples) {
    const DpoPair& p = pair(s);
    for (const auto* resp : {&p.chosen, &p.rejected}) {
      std::vector<int32_t> seq(p.prompt);
      seq.insert(seq.end(), resp->begin(), resp->end());
      const int n = (int)std::min<size_t>(seq.size(), (size_t)T);
      const int resp_start = std::max<int>(1, n - (int)resp->size());
      std::copy(seq.end() - n, seq.end(), &batch_.tokens[(size_t)row * T]);
      for (int t = 0; t + 1 < n; t++) {
        batch_.targets[(size_t)row * T + t] = batch_.tokens[(size_t)row * T + t + 1];
        if (t + 1 >= resp_start) batch_.weights[(size_t)row * T + t] = 1.f, response_tokens_[row]++;
      }
      row++;
    }
  }
  tokens = batch_.tokens;
}

std::vector<double> DpoObjective::logp_sums(Llama& model) {
  std::vector<float> lp(batch_.tokens.size());
  model.lm_loss(batch_.targets.data(), batch_.weights.data(), false, lp.data());
  std::vector<double> sums(batch_.B, 0.0);
  for (int r = 0; r < batch_.B; r++)
    for (int t = 0; t < batch_.T; t++)
      if (batch_.weights[(size_t)r * batch_.T + t] != 0) sums[r] += lp[(size_t)r * batch_.T + t];
  return sums;
}

double DpoObjective::head(Llama& model, const std::vector<int64_t>& samples, double scale,
                          bool grad) {
  const std::vector<double> sums = logp_sums(model);
  std::vector<float> w(batch_.weights.size(), 0.f);
  double loss = 0;
  for (size_t i = 0; i < samples.size(); i++) {
    const DpoPair& p = pair(samples[i]);
    const PairGrad g =
        dpo(cfg_.loss, cfg_.beta, sums[2 * i], sums[2 * i + 1], p.ref_chosen, p.ref_rejected);
    const int nc = std::max(1, response_tokens_[2 * i]);
    loss += scale * (g.loss - cfg_.sft_alpha * sums[2 * i] / nc);
    // lm_loss computes sum_t w_t * (-logp_t): w = -dL/dlogp_sum gives dL on every token.
    const float wc = (float)(scale * (-g.d_chosen + cfg_.sft_alpha / nc));
    const float wr = (float)(scale * -g.d_rejected);
    for (int t = 0; t < batch_.T; t++) {
      const size_t c = (2 * i) * batch_.T + t, r = (2 * i + 1) * batch_.T + t;
      if (batch_.weights[c] != 0) w[c] = wc;
      if (batch_.weights[r] != 0) w[r] = wr;
    }
  }
  if (grad) model.lm_loss(batch_.targets.data(), w.data(), true, nullptr);
  return loss;
}

static std::vector<int32_t> record(const TokenDataset& d, size_t i) {
  return {d.tokens.begin() + d.offsets[i], d.tokens.begin() + d.offsets[i + 1]};
}

void write_dpo_pairs(const std::string& path, const std::vector<DpoPair>& pairs,
                     const DatasetInfo& from) {
  TokenDataset prompt, chosen, rejected;
  std::vector<float> rc, rr;
  for (const auto& p : pairs) {
    prompt.append(p.prompt, {}), chosen.append(p.chosen, {}), rejected.append(p.rejected, {});
    rc.push_back(p.ref_chosen), rr.push_back(p.ref_rejected);
  }
  DatasetWriter w(path, MPI_COMM_SELF);
  w.ragged("prompt", prompt, false);
  w.ragged("chosen", chosen, false);
  w.ragged("rejected", rejected, false);
  w.rows("ref_logp_chosen", rc);
  w.rows("ref_logp_rejected", rr);
  DatasetInfo info = from;
  info.schema = kSchemaPairs;
  info.n_kept = (int64_t)pairs.size(), info.n_truncated = 0, info.n_dropped = 0;
  info.source = "xwin dpo pairs from " + from.source;
  w.info(info);
  w.commit();
}

std::vector<DpoPair> read_dpo_pairs(const std::string& path) {
  PairsDataset d = PairsDataset::load(path);
  h5::File f(path, 'r');
  const auto rc = f.read_all<float>("/ref_logp_chosen"),
             rr = f.read_all<float>("/ref_logp_rejected");
  require(rc.size() == d.size() && rr.size() == d.size(), path,
          ": reference log-probs do not match the pairs; delete the file to recompute them");
  std::vector<DpoPair> out(d.size());
  for (size_t i = 0; i < d.size(); i++)
    out[i] = {record(d.prompt, i), record(d.chosen, i), record(d.rejected, i), rc[i], rr[i]};
  return out;
}

nlohmann::json evaluate_dpo(Llama& model, DpoObjective& heldout, int batch, double beta,
                            MPI_Comm comm) {
  int rank = 0, size = 1;
  if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank), MPI_Comm_size(comm, &size);
  double correct = 0, margin = 0, chosen = 0, rejected = 0;
  int64_t n = 0;
  std::vector<int32_t> tokens;
  for (int64_t s0 = (int64_t)rank * batch; s0 < (int64_t)heldout.size();
       s0 += (int64_t)size * batch) {
    std::vector<int64_t> samples;
    for (int64_t s = s0; s < std::min<int64_t>(s0 + batch, heldout.size()); s++)
      samples.push_back(s);
    int B = 0, T = 0;
    heldout.inputs(samples, tokens, B, T);
    model.forward(tokens.data(), B, T);
    const std::vector<double> sums = heldout.logp_sums(model);
    for (size_t i = 0; i < samples.size(); i++) {
      const DpoPair& p = heldout.pair(samples[i]);
      const double rc = beta * (sums[2 * i] - p.ref_chosen);
      const double rr = beta * (sums[2 * i + 1] - p.ref_rejected);
      correct += rc > rr, margin += rc - rr, chosen += rc, rejected += rr, n++;
    }
  }
  const double total = std::max<int64_t>(1, allreduce_sum(n, comm));
  return {{"reward_accuracy", allreduce_sum(correct, comm) / total},
          {"reward_margin", allreduce_sum(margin, comm) / total},
          {"chosen_reward", allreduce_sum(chosen, comm) / total},
          {"rejected_reward", allreduce_sum(rejected, comm) / total},
          {"pairs", (int64_t)total}};
}

}  // namespace xwin
