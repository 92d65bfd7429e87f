// Batches for language-model losses, and the data order. A sample's record is a function of
// (seed, global sample index) only, never of the rank layout (DESIGN.md invariant 1).
#pragma once
#include <cstdint>
#include <vector>

#include "io/tokens.h"

namespace xwin {

// Global sample index -> record index. Without shuffle: g mod n. With shuffle: a fresh
// permutation per epoch, drawn from (seed, epoch).
class DataOrder {
 public:
  DataOrder(size_t n_records, bool shuffle, uint64_t seed);
  size_t record(int64_t global_sample);

 private:
  size_t n_;
  bool shuffle_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<size_t> perm_;
};

// Rows of length T: a record truncated to T and right-padded with token 0. Position t predicts
// row[t+1] and counts (weight 1) iff that token is in the loss mask (every real token when the
// dataset has no mask); position T-1 and padding never count.
struct LmBatch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens, targets;
  std::vector<float> weights;
  int64_t n_loss_tokens = 0;
};

void build_lm_batch(const TokenDataset& data, const std::vector<size_t>& records, int T,
                    LmBatch& out);

}  // namespace xwin
