// DPO on pairs from the Xwin-Set. Each sample is a pair: two rows, prompt + chosen and
// prompt + rejected. The head needs the policy's log-prob sums of both responses first, so it
// makes two passes over the LM head: one without gradient to get the sums, then one with
// per-row weights -dL/dlogp_sum (the loss is linear in each token's log-prob given the sums),
// plus alpha / |chosen| on chosen tokens for optional SFT mixing. Reference log-prob sums are
// data: computed once by the starting policy and stored beside the pairs.
#pragma once
#include <cstdint>
#include <vector>

#include "align/batch.h"
#include "align/losses.h"
#include "align/trainer.h"
#include "io/datasets.h"

namespace xwin {

struct DpoPair {
  std::vector<int32_t> prompt, chosen, rejected;
  float ref_chosen = 0, ref_rejected = 0;  // reference log-prob sums of the responses
};

struct DpoConfig {
  DpoLoss loss = DpoLoss::Sigmoid;
  double beta = 0.1;
  double sft_alpha = 0.0;  // weight of the chosen response's mean NLL added to the loss
};

class DpoObjective : public Objective {
 public:
  DpoObjective(std::vector<DpoPair> pairs, int seq_len, bool shuffle, uint64_t seed,
               const DpoConfig& cfg);
  int64_t count(const std::vector<int64_t>& samples) override;
  void inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
              int& T) override;
  double head(Llama& model, const std::vector<int64_t>& samples, double scale, bool grad) override;

  // Response log-prob sums of each row of the last inputs() (after the model's forward).
  std::vector<double> logp_sums(Llama& model);
  const DpoPair& pair(int64_t sample) { return pairs_[order_.record(sample)]; }
  size_t size() const { return pairs_.size(); }

 private:
  std::vector<DpoPair> pairs_;
  int T_;
  DataOrder order_;
  DpoConfig cfg_;
  LmBatch batch_;  // weights mark each row's response tokens
  std::vector<int> response_tokens_;
};

// Pairs with their reference log-prob sums: a pairs dataset (schema xwin.pairs) plus
// /ref_logp_chosen and /ref_logp_rejected [n]. Written atomically by one rank.
void write_dpo_pairs(const std::string& path, const std::vector<DpoPair>& pairs,
                     const DatasetInfo& from);
std::vector<DpoPair> read_dpo_pairs(const std::string& path);

// Reward accuracy, margin and mean implicit rewards beta * (policy - reference) on held-out
// pairs, summed over the ranks of comm.
nlohmann::json evaluate_dpo(Llama& model, DpoObjective& heldout, int batch, double beta,
                            MPI_Comm comm);

}  // namespace xwin
