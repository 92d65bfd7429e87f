// Masked next-token cross-entropy on a token dataset: the objective of SFT and of rejection-
// sampling finetuning (DESIGN.md "loss_mask": 1 on assistant tokens and their end-of-turn).
#pragma once
#include "align/batch.h"
#include "align/trainer.h"

namespace xwin {

class LmObjective : public Objective {
 public:
  LmObjective(Llama& model, const TokenDataset& data, int seq_len, bool shuffle, uint64_t seed);
  int64_t count(const std::vector<int64_t>& samples) override;
  double run(const std::vector<int64_t>& samples, double scale) override;
  int64_t tokens(const std::vector<int64_t>& samples) override;

 private:
  Llama& model_;
  const TokenDataset& data_;
  int T_;
  DataOrder order_;
  LmBatch batch_;
  std::vector<int64_t> built_for_;
  const LmBatch& build(const std::vector<int64_t>& samples);
};

}  // namespace xwin
