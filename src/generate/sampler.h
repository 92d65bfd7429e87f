// Drawing a token from logits: a chain of steps as in llama.cpp's sampler (temperature, top-k,
// top-p, then one uniform draw). The uniform comes from the counter-based RNG at
// (seed, sample id, position), so a sample is the same whatever rank or batch slot draws it.
#pragma once
#include <cstdint>
#include <vector>

namespace xwin {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy (argmax)
  float top_p = 1.0f;        // keep the smallest set of tokens whose probability reaches top_p
  int top_k = 0;             // keep the k most likely tokens (0: all)
  int max_new_tokens = 128;
  int eos_id = 2;
  uint64_t seed = 1;

  void validate() const;
};

struct Draw {
  int32_t token;
  float logp;  // log p(token) under the model itself (temperature 1, no truncation)
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : p_(p) {}
  // logits [V] of one row; sample_id and position select the random number.
  Draw draw(const float* logits, int V, uint64_t sample_id, int position);

 private:
  SamplingParams p_;
  std::vector<float> prob_;
  std::vector<int32_t> idx_;
};

}  // namespace xwin
