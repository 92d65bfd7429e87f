// Batched generation with a KV cache: prefill each prompt into a free cache slot, then decode
// every active row one token per step; a finished row (EOS, max_new_tokens, or the context
// limit) hands its slot to the next waiting prompt, so the batch stays full.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "generate/sampler.h"
#include "model/llama.h"

namespace xwin {

struct GenRequest {
  std::vector<int32_t> prompt;
  uint64_t sample_id;  // selects the random stream: same id, same response
};

struct GenOutput {
  std::vector<int32_t> tokens;  // the response, ending with EOS when eos is true
  std::vector<float> logp;      // log p of each response token under the model
  bool eos = false;
};

class Generator {
 public:
  // The model's weights must not change while the Generator is in use: its KV cache, kept from
  // one run() to the next, holds a packed copy of them (Llama::make_cache).
  Generator(Llama& model, int batch, const SamplingParams& params);
  // Generates a response for every request; done(i, output) is called as request i finishes.
  void run(const std::vector<GenRequest>& reqs,
           const std::function<void(size_t, GenOutput&&)>& done);
  int64_t generated_tokens() const { return generated_; }

 private:
  struct Row {
    bool active = false;
    size_t req = 0;
    int pos = 0;  // tokens in the cache
    int32_t last = 0;
    GenOutput out;
  };
  Llama& model_;
  int batch_;
  SamplingParams params_;
  Sampler sampler_;
  int64_t generated_ = 0;
  // Made by the first run() and kept while later runs fit in it: making one packs every weight
  // and faults in the cache's pages, which cost as much as a short decode (`xwin sample` runs
  // once per chunk and per re-draw round).
  KvCache cache_;
};

}  // namespace xwin
