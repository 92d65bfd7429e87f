#include "align/batch.h"

#include <algorithm>
#include <numeric>

#include "core/rng.h"

namespace xwin {

DataOrder::DataOrder(size_t n_records, bool shuffle, uint64_t seed)
    : n_(n_records), shuffle_(shuffle), seed_(seed) {}

size_t DataOrder::record(int64_t g) {
  const int64_t epoch = g / (int64_t)n_;
  const size_t i = (size_t)(g % (int64_t)n_);
  if (!shuffle_) return i;
  if (epoch != epoch_) {
    perm_.resize(n_);
    std::iota(perm_.begin(), perm_.end(), size_t{0});
    const uint64_t stream = 0x0D474A0000000000ull + (uint64_t)epoch;
    for (size_t k = n_ - 1; k > 0; k--)
      std::swap(perm_[k], perm_[rng_u64(seed_, stream, k) % (k + 1)]);
    epoch_ = epoch;
  }
  return perm_[i];
}

void build_lm_batch(const TokenDataset& data, const std::vector<size_t>& records, int T,
                    LmBatch& out) {
  const int B = (int)records.size();
  // Rows pad only to the longest record of the batch: causal attention makes the padding
  // invisible to real tokens, so a shorter T changes nothing but the work.
  int64_t longest = 1;
  for (size_t r : records) longest = std::max(longest, data.length(r));
  T = (int)std::min<int64_t>(T, longest);
  out.B = B, out.T = T;
  out.tokens.assign((size_t)B * T, 0);
  out.targets.assign((size_t)B * T, 0);
  out.weights.assign((size_t)B * T, 0.f);
  out.n_loss_tokens = 0;
  const bool has_mask = !data.loss_mask.empty();
  for (int b = 0; b < B; b++) {
    const int64_t off = data.offsets[records[b]];
    const int len = (int)std::min<int64_t>(data.length(records[b]), T);
    int32_t* row = &out.tokens[(size_t)b * T];
    std::copy_n(&data.tokens[off], len, row);
    for (int t = 0; t + 1 < len; t++) {
      out.targets[(size_t)b * T + t] = row[t + 1];
      const bool counts = !has_mask || data.loss_mask[off + t + 1];
      out.weights[(size_t)b * T + t] = counts ? 1.f : 0.f;
      out.n_loss_tokens += counts;
    }
  }
}

}  // namespace xwin
