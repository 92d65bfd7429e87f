#include "generate/generator.h"

#include <algorithm>

#include "core/error.h"

namespace xwin {

Generator::Generator(Llama& model, int batch, const SamplingParams& params)
    : model_(model), batch_(batch), params_(params), sampler_(params) {
  params_.validate();
  require(batch > 0, "generation batch size must be positive");
}

bool Generator::append(Row& row, const float* logits, const GenRequest& req, int Tmax) {
  const Draw d = sampler_.draw(logits, model_.cfg.vocab_size, req.sample_id, row.pos);
  row.out.tokens.push_back(d.token);
  row.out.logp.push_back(d.logp);
  row.last = d.token;
  generated_++;
  row.out.eos = d.token == params_.eos_id;
  return row.out.eos || (int)row.out.tokens.size() >= params_.max_new_tokens || row.pos >= Tmax;
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
  KvCache cache = model_.make_cache(batch_, Tmax);
  std::vector<Row> rows(batch_);
  std::vector<float> logits((size_t)batch_ * model_.cfg.vocab_size);
  size_t next = 0;
  const auto finish = [&](int s) {
    rows[s].active = false;
    done(rows[s].req, std::move(rows[s].out));
  };
  while (true) {
    // Fill free slots: prefill the prompt and draw its first response token.
    for (int s = 0; s < batch_; s++)
      while (!rows[s].active && next < reqs.size()) {
        Row& row = rows[s];
        row = Row{};
        row.active = true, row.req = next++;
        const auto& prompt = reqs[row.req].prompt;
        const int n = (int)prompt.size(), p0 = 0;
        model_.forward_cached(prompt.data(), 1, n, &s, &p0, cache, logits.data());
        row.pos = n;
        if (append(row, logits.data(), reqs[row.req], Tmax)) finish(s);
      }
    std::vector<int> slots, pos;
    std::vector<int32_t> toks;
    for (int s = 0; s < batch_; s++)
      if (rows[s].active) slots.push_back(s), pos.push_back(rows[s].pos), toks.push_back(rows[s].last);
    if (slots.empty()) return;
    model_.forward_cached(toks.data(), (int)slots.size(), 1, slots.data(), pos.data(), cache,
                          logits.data());
    for (size_t i = 0; i < slots.size(); i++) {
      Row& row = rows[slots[i]];
      row.pos++;
      if (append(row, &logits[i * model_.cfg.vocab_size], reqs[row.req], Tmax)) finish(slots[i]);
    }
  }
}

}  // namespace xwin
