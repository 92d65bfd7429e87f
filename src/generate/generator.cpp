#include "generate/generator.h"

#include <omp.h>

#include <algorithm>

#include "core/error.h"

namespace xwin {

namespace {

// Prompts of one length are prefilled together, as many per forward pass as keep the pass's
// activations (about 7 * d_model + 3 * d_ff floats a token) within 64 Mi floats (256 MiB): all 64
// prompts of 64 tokens of a small model at once, a few 512-token prompts of a 7B one.
constexpr size_t kPrefillFloats = size_t(1) << 26;

int prefill_rows(const ModelConfig& c, int n) {
  const size_t per_token = 7 * (size_t)c.d_model + 3 * (size_t)c.d_ff;
  return (int)std::max<size_t>(1, kPrefillFloats / (per_token * (size_t)n));
}

// Records a drawn token in a row; returns true when the row is finished. (A template so that
// it can take Generator's private Row.)
template <class Row>
bool accept(Row& row, const Draw& d, const SamplingParams& p, int Tmax, int64_t& generated) {
  row.out.tokens.push_back(d.token);
  row.out.logp.push_back(d.logp);
  row.last = d.token;
  generated++;
  row.out.eos = d.token == p.eos_id;
  return row.out.eos || (int)row.out.tokens.size() >= p.max_new_tokens || row.pos >= Tmax;
}

}  // namespace

Generator::Generator(Llama& model, int batch, const SamplingParams& params)
    : model_(model), batch_(batch), params_(params), sampler_(params) {
  params_.validate();
  require(batch > 0, "generation batch size must be positive");
}

void Generator::run(const std::vector<GenRequest>& reqs,
                    const std::function<void(size_t, GenOutput&&)>& done) {
  if (reqs.empty()) return;
  size_t longest = 0;
  for (const auto& r : reqs) {
    require(!r.prompt.empty(), "generation needs a non-empty prompt (at least BOS)");
    longest = std::max(longest, r.prompt.size());
  }
  const int Tmax = std::min<int>(model_.cfg.max_seq_len, (int)longest + params_.max_new_tokens);
  require((int)longest < Tmax, "a prompt of ", longest, " tokens leaves no room to generate ",
          "within model.max_seq_len = ", model_.cfg.max_seq_len);
  if (cache_.Tmax < Tmax) cache_ = model_.make_cache(batch_, Tmax);
  KvCache& cache = cache_;
  std::vector<Row> rows(batch_);
  const int V = model_.cfg.vocab_size;
  std::vector<float> logits((size_t)batch_ * V);
  // Draws run in parallel over rows, one sampler (scratch buffers) per thread; a draw depends
  // only on its logits, sample id and position, so the tokens are those of one-by-one draws.
  std::vector<Sampler> samplers(std::max(1, omp_get_max_threads()), sampler_);
  std::vector<Draw> draws(batch_);
  const auto draw_rows = [&](const int* slots, int R) {
#pragma omp parallel for schedule(dynamic) if (R > 1)
    for (int i = 0; i < R; i++) {
      const Row& row = rows[slots[i]];
      draws[i] = samplers[omp_get_thread_num()].draw(&logits[(size_t)i * V], V,
                                                     reqs[row.req].sample_id, row.pos);
    }
  };
  std::vector<int> slots, pos, fill;
  std::vector<int32_t> toks;
  size_t next = 0;
  const auto finish = [&](int s) {
    rows[s].active = false;
    done(rows[s].req, std::move(rows[s].out));
  };
  while (true) {
    // Fill free slots: give each a waiting prompt, prefill the prompts (those of equal length
    // together, prefill_rows at a time), draw their first response tokens; a row finished by
    // its first token frees its slot for the next round.
    while (next < reqs.size()) {
      fill.clear();
      for (int s = 0; s < batch_ && next < reqs.size(); s++)
        if (!rows[s].active) {
          rows[s] = Row{};
          rows[s].active = true, rows[s].req = next++;
          rows[s].pos = (int)reqs[rows[s].req].prompt.size();
          fill.push_back(s);
        }
      if (fill.empty()) break;
      std::stable_sort(fill.begin(), fill.end(),
                       [&](int a, int b) { return rows[a].pos < rows[b].pos; });
      for (size_t i = 0; i < fill.size();) {
        const int n = rows[fill[i]].pos;
        const size_t cap = prefill_rows(model_.cfg, n);
        size_t j = i;
        while (j < fill.size() && j - i < cap && rows[fill[j]].pos == n) j++;
        // Identical prompts (the K samples of one prompt) are prefilled once: the first row's
        // cache and logits are copied to the others.
        const int R = (int)(j - i);
        std::vector<int> first(R), uniq_slots;
        toks.clear();
        for (int k = 0; k < R; k++) {
          const auto& prompt = reqs[rows[fill[i + k]].req].prompt;
          first[k] = (int)uniq_slots.size();
          for (int u = 0; u < (int)uniq_slots.size(); u++)
            if (reqs[rows[uniq_slots[u]].req].prompt == prompt) {
              first[k] = u;
              break;
            }
          if (first[k] == (int)uniq_slots.size()) {
            uniq_slots.push_back(fill[i + k]);
            toks.insert(toks.end(), prompt.begin(), prompt.end());
          }
        }
        const int U = (int)uniq_slots.size();
        pos.assign(U, 0);
        model_.forward_cached(toks.data(), U, n, uniq_slots.data(), pos.data(), cache,
                              logits.data());
        for (int k = R - 1; k >= 0; k--) {  // spread logits row first[k] <= k to row k
          if (first[k] != k) std::copy_n(&logits[(size_t)first[k] * V], V, &logits[(size_t)k * V]);
          if (uniq_slots[first[k]] != fill[i + k])
            cache.copy_prefix(uniq_slots[first[k]], fill[i + k], n);
        }
        draw_rows(&fill[i], R);
        for (int k = 0; k < R; k++)
          if (accept(rows[fill[i + k]], draws[k], params_, Tmax, generated_)) finish(fill[i + k]);
        i = j;
      }
    }
    slots.clear(), pos.clear(), toks.clear();
    for (int s = 0; s < batch_; s++)
      if (rows[s].active)
        slots.push_back(s), pos.push_back(rows[s].pos), toks.push_back(rows[s].last);
    if (slots.empty()) return;
    const int R = (int)slots.size();
    model_.forward_cached(toks.data(), R, 1, slots.data(), pos.data(), cache, logits.data());
    for (int s : slots) rows[s].pos++;
    draw_rows(slots.data(), R);
    for (int i = 0; i < R; i++)
      if (accept(rows[slots[i]], draws[i], params_, Tmax, generated_)) finish(slots[i]);
  }
}

}  // namespace xwin
