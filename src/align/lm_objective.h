// Masked next-token cross-entropy on a token dataset: the objective of SFT and of rejection-
// sampling finetuning (DESIGN.md "loss_mask": 1 on assistant tokens and their end-of-turn).
#pragma once
#include "align/batch.h"
#include "align/trainer.h"

namespace xwin {

class LmObjective : public Objective {
 public:
  LmObjective(const TokenDataset& data, int seq_len, bool shuffle, uint64_t seed);
  int64_t count(const std::vector<int64_t>& samples) override;
  void inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
              int& T) override;
  double head(Llama& model, const std::vector<int64_t>& samples, double scale, bool grad) override;

 private:
  const TokenDataset& data_;
  int T_;
  DataOrder order_;
  LmBatch batch_;
  std::vector<int64_t> built_for_;
  const LmBatch& build(const std::vector<int64_t>& samples);
};

// Mean masked cross-entropy (nats per loss token) of a held-out dataset; ranks of comm score
// interleaved batches and the sums are reduced.
double evaluate_lm(Llama& model, LmObjective& heldout, size_t records, int batch, MPI_Comm comm);

}  // namespace xwin
