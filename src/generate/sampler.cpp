#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace xwin {

void SamplingParams::validate() const {
  require(temperature >= 0, "temperature must be >= 0 (0 is greedy)");
  require(top_p > 0 && top_p <= 1, "top_p must lie in (0, 1]");
  require(top_k >= 0, "top_k must be >= 0 (0 keeps every token)");
  require(max_new_tokens > 0, "max_new_tokens must be positive");
}

Draw Sampler::draw(const float* logits, int V, uint64_t sample_id, int position) {
  float mx = logits[0];
  int arg = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > mx) mx = logits[v], arg = v;
  double z = 0;
  for (int v = 0; v < V; v++) z += std::exp((double)(logits[v] - mx));
  const float lse = mx + (float)std::log(z);
  if (p_.temperature == 0) return {arg, logits[arg] - lse};

  // Tempered probabilities, unnormalised.
  prob_.resize(V);
  const float inv_t = 1.0f / p_.temperature;
  for (int v = 0; v < V; v++) prob_[v] = std::exp((logits[v] - mx) * inv_t);
  // Candidates in descending probability: only as many as top-k / top-p need, found by partial
  // sorts of growing prefixes instead of a full sort of the vocabulary.
  idx_.resize(V);
  std::iota(idx_.begin(), idx_.end(), 0);
  double total = 0;
  for (int v = 0; v < V; v++) total += prob_[v];
  const auto by_prob = [&](int32_t a, int32_t b) {
    return prob_[a] > prob_[b] || (prob_[a] == prob_[b] && a < b);
  };
  // HF order: top-k first, then top-p on the renormalised top-k set.
  const int limit = p_.top_k > 0 ? std::min(p_.top_k, V) : V;
  int keep = V;
  if (limit < V) {
    std::partial_sort(idx_.begin(), idx_.begin() + limit, idx_.end(), by_prob);
    keep = limit;
    if (p_.top_p < 1.0f) {
      double mass = 0, cum = 0;
      for (int i = 0; i < keep; i++) mass += prob_[idx_[i]];
      int n = 0;
      while (n < keep && cum < p_.top_p * mass) cum += prob_[idx_[n++]];
      keep = std::max(n, 1);
    }
  } else if (p_.top_p < 1.0f) {
    for (int k = std::min(V, 64);; k = std::min(V, k * 4)) {
      std::partial_sort(idx_.begin(), idx_.begin() + k, idx_.end(), by_prob);
      double cum = 0;
      int n = 0;
      while (n < k && cum < p_.top_p * total) cum += prob_[idx_[n++]];
      if (cum >= p_.top_p * total || k == V) {
        keep = std::max(n, 1);
        break;
      }
    }
  }
  double kept = 0;
  for (int i = 0; i < keep; i++) kept += prob_[idx_[i]];
  const double u = rng_uniform(p_.seed, sample_id, (uint64_t)position) * kept;
  double cum = 0;
  int32_t tok = idx_[keep - 1];
  for (int i = 0; i < keep; i++) {
    cum += prob_[idx_[i]];
    if (u < cum) {
      tok = idx_[i];
      break;
    }
  }
  return {tok, logits[tok] - lse};
}

}  // namespace xwin
