#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/vexp.h"

namespace xwin {

void SamplingParams::validate() const {
  require(temperature >= 0, "temperature must be >= 0 (0 is greedy)");
  require(top_p > 0 && top_p <= 1, "top_p must lie in (0, 1]");
  require(top_k >= 0, "top_k must be >= 0 (0 keeps every token)");
  require(max_new_tokens > 0, "max_new_tokens must be positive");
}

// Candidate order: descending probability, ties by ascending token id (a strict total order, so
// every correct sort gives the same sequence). Probabilities lie in [0, 1], where a float's bit
// pattern orders like its value; the sort key is kOne - bits, ascending, and a stable LSD radix
// sort over token ids fed in ascending order breaks ties by id.
namespace {

constexpr uint32_t kOne = 0x3F800000u;   // bits of 1.0f, the largest probability
constexpr int kDigit = 10, kDigits = 3;  // 30-bit keys (kOne < 2^30) in three 10-bit digits
constexpr int kBuckets = 1 << kDigit;

inline uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// Sorts the m tokens ids[0..m) (ascending) by (probability desc, id asc) into out[0..m);
// key/id arrays k0/i0/k1/i1 of m entries are scratch.
void sort_candidates(const float* prob, const int32_t* ids, int m, int32_t* out, uint32_t* k0,
                     int32_t* i0, uint32_t* k1, int32_t* i1) {
  int count[kDigits][kBuckets] = {};
  for (int j = 0; j < m; j++) {
    const uint32_t k = kOne - bits_of(prob[ids[j]]);
    k0[j] = k, i0[j] = ids[j];
    for (int d = 0; d < kDigits; d++) count[d][(k >> (d * kDigit)) & (kBuckets - 1)]++;
  }
  for (int d = 0; d < kDigits; d++) {
    int* c = count[d];
    if (c[(k0[0] >> (d * kDigit)) & (kBuckets - 1)] == m) continue;  // one digit value: no-op
    int at = 0;
    for (int b = 0; b < kBuckets; b++) {
      const int n = c[b];
      c[b] = at, at += n;
    }
    for (int j = 0; j < m; j++) {
      const int dst = c[(k0[j] >> (d * kDigit)) & (kBuckets - 1)]++;
      k1[dst] = k0[j], i1[dst] = i0[j];
    }
    std::swap(k0, k1), std::swap(i0, i1);
  }
  std::copy_n(i0, m, out);
}

}  // namespace

Draw Sampler::draw(const float* logits, int V, uint64_t sample_id, int position) {
  float mx = logits[0];
  int arg = 0;
  for (int v = 1; v < V; v++)
    if (logits[v] > mx) mx = logits[v], arg = v;
  // exp(logit - max) in float (the kernels' vectorised polynomial), summed in double: the
  // log-partition for the log-prob, and at temperature 1 also the unnormalised probabilities and
  // their total.
  prob_.resize(V);
  float* e = prob_.data();
  auto exps = [&](float scale) {
#pragma omp simd
    for (int v = 0; v < V; v++) e[v] = cpu::exp_nonpos((logits[v] - mx) * scale);
    double sum = 0;
    for (int v = 0; v < V; v++) sum += e[v];
    return sum;
  };
  const double z = exps(1.0f);
  const float lse = mx + (float)std::log(z);
  if (p_.temperature == 0) return {arg, logits[arg] - lse};

  // Tempered probabilities, unnormalised, and their total (in token order).
  const double total = p_.temperature == 1.0f ? z : exps(1.0f / p_.temperature);
  // Scratch: idx_ holds the candidates in descending probability (or every token in id order
  // when nothing truncates), then the sort's id and key buffers.
  idx_.resize((size_t)6 * V);
  int32_t* idx = idx_.data();
  int32_t* ids = idx + V;
  int32_t* i0 = idx + 2 * (size_t)V;
  int32_t* i1 = idx + 3 * (size_t)V;
  uint32_t* k0 = reinterpret_cast<uint32_t*>(idx + 4 * (size_t)V);
  uint32_t* k1 = reinterpret_cast<uint32_t*>(idx + 5 * (size_t)V);
  const float* prob = prob_.data();
  auto sort_all = [&] {
    std::iota(ids, ids + V, 0);
    sort_candidates(prob, ids, V, idx, k0, i0, k1, i1);
  };
  // HF order: top-k first, then top-p on the renormalised top-k set.
  const int limit = p_.top_k > 0 ? std::min(p_.top_k, V) : V;
  int keep = V;
  if (limit < V) {
    sort_all();
    keep = limit;
    if (p_.top_p < 1.0f) {
      double mass = 0, cum = 0;
      for (int i = 0; i < keep; i++) mass += prob[idx[i]];
      int n = 0;
      while (n < keep && cum < p_.top_p * mass) cum += prob[idx[n++]];
      keep = std::max(n, 1);
    }
  } else if (p_.top_p < 1.0f) {
    // The kept set is the shortest prefix of the sorted order whose mass (summed in that order)
    // reaches top_p * total. Sort only a prefix that surely contains it: the tokens above a
    // probability threshold found from a coarse histogram of the mass (exponent and 3 mantissa
    // bits per bucket, a prefix of the order since buckets follow it). Should rounding leave
    // that prefix short of the mass, sort everything.
    const double thr = p_.top_p * total;
    double mass[(kOne >> 20) + 1] = {};
    for (int v = 0; v < V; v++) mass[std::min(bits_of(prob[v]), kOne) >> 20] += prob[v];
    uint32_t cut = 0;
    double acc = 0;
    for (int b = kOne >> 20; b >= 0; b--) {
      acc += mass[b];
      if (acc >= thr * (1 + 1e-6)) {
        cut = (uint32_t)b << 20;
        break;
      }
    }
    int m = 0;
    for (int v = 0; v < V; v++) {
      ids[m] = v;
      m += bits_of(prob[v]) >= cut;
    }
    sort_candidates(prob, ids, m, idx, k0, i0, k1, i1);
    double cum = 0;
    int n = 0;
    while (n < m && cum < thr) cum += prob[idx[n++]];
    if (cum < thr && m < V) {
      sort_all();
      cum = 0, n = 0;
      while (n < V && cum < thr) cum += prob[idx[n++]];
    }
    keep = std::max(n, 1);
  } else {
    std::iota(idx, idx + V, 0);
  }
  double kept = 0;
  for (int i = 0; i < keep; i++) kept += prob[idx[i]];
  const double u = rng_uniform(p_.seed, sample_id, (uint64_t)position) * kept;
  double cum = 0;
  int32_t tok = idx[keep - 1];
  for (int i = 0; i < keep; i++) {
    cum += prob[idx[i]];
    if (u < cum) {
      tok = idx[i];
      break;
    }
  }
  return {tok, logits[tok] - lse};
}

}  // namespace xwin
