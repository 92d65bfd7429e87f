// Reward-model objective. A sample is a group of sequences (prompt + response) with preference
// pairs among them: a chosen/rejected pair, or K ranked responses (every better/worse pair, the
// ranking loss). The scalar value head reads the final hidden state at the last real token of
// each response (rows are right-padded, so padding never influences it: attention is causal).
// Loss per pair: -log sigmoid(r_better - r_worse - margin), plus an optional reward-centering
// term c * (r_better + r_worse)^2 that keeps rewards near zero.
#pragma once
#include <cstdint>
#include <vector>

#include "align/batch.h"
#include "align/trainer.h"
#include "io/datasets.h"

namespace xwin {

struct PreferenceGroup {
  std::vector<std::vector<int32_t>> sequences;  // prompt + response tokens
  struct Pair {
    int better, worse;
    float margin;
  };
  std::vector<Pair> pairs;
};

// Groups from a pairs dataset (one pair each) or from an Xwin-Set (all ranked pairs of K).
std::vector<PreferenceGroup> groups_from_pairs(const PairsDataset& d, bool use_margin);
std::vector<PreferenceGroup> groups_from_xwin_set(const XwinSetDataset& d);

// Index of the last real token of a row of `len` tokens padded to T on the given side.
int last_token_index(int len, int T, bool left_padded);

class RmObjective : public Objective {
 public:
  RmObjective(std::vector<PreferenceGroup> groups, int seq_len, bool shuffle, uint64_t seed,
              double center_coef);
  int64_t count(const std::vector<int64_t>& samples) override;
  void inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
              int& T) override;
  double head(Llama& model, const std::vector<int64_t>& samples, double scale, bool grad) override;

  // Rewards of every sequence of these samples (after the model's forward of inputs()).
  std::vector<double> rewards(const Llama& model, const std::vector<int64_t>& samples);
  const PreferenceGroup& group(int64_t sample);
  size_t size() const { return groups_.size(); }

 private:
  std::vector<PreferenceGroup> groups_;
  int T_;       // longest row
  int Tb_ = 0;  // the current batch's padded length (inputs())
  DataOrder order_;
  double center_;
  std::vector<int> lengths_;  // of the rows of the last inputs()
};

// Pairwise accuracy and mean reward gap of a reward model on held-out groups (every rank of
// comm scores a share; results are summed).
struct RmEval {
  double accuracy = 0, mean_gap = 0, loss = 0;
  int64_t pairs = 0;
};
RmEval evaluate_rm(Llama& model, RmObjective& heldout, int batch, MPI_Comm comm);

}  // namespace xwin
