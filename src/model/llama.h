// The Llama-family decoder on CPU: flat parameter/gradient buffers sized once, activations sized
// once per (B, T), and an explicit forward and backward over the kernels in kernels/cpu.
//
// A training step reads top to bottom:
//   model.forward(tokens, B, T);                 // through the final RMSNorm
//   loss = model.lm_loss(targets, weights, ...); // LM head + CE, writes d(final norm output)
//   model.backward(tokens);                      // accumulates into model.grads
// Other heads (the reward model's value head) write d(final norm output) themselves and call
// backward() the same way.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/layout.h"

namespace xwin {

// Keys and values of past tokens for incremental decoding: `slots` independent sequences of up
// to Tmax tokens; per layer [slots, Tmax, n_kv_heads, head_dim] for k and for v.
struct KvCache {
  int slots = 0, Tmax = 0;
  std::vector<std::vector<float>> k, v;
};

class Llama {
 public:
  explicit Llama(const ModelConfig& cfg);

  const ModelConfig cfg;
  const ParamLayout layout;
  std::vector<float> params;
  std::vector<float> grads;

  float* param(const std::string& name) { return params.data() + layout.at(name).offset; }
  float* grad(const std::string& name) { return grads.data() + layout.at(name).offset; }

  // Normal(0, init_std) weights and unit norms; each element is a function of (seed, tensor
  // name, element index) only.
  void init_random(uint64_t seed);
  void zero_grad();

  // Sizes activation buffers for up to B x T (reallocates only when growing).
  void reserve(int B, int T);

  // Forward pass through the final RMSNorm for tokens [B, T]; T <= max_seq_len.
  void forward(const int32_t* tokens, int B, int T);
  // Final normed hidden states [B*T, d_model] of the last forward.
  const float* hidden() const { return final_norm_.data(); }
  // Gradient w.r.t. hidden(), to be written by a head before backward().
  float* dhidden() { return dfinal_norm_.data(); }

  // LM head + cross-entropy on the last forward: returns sum_n weights[n] * -log p(targets[n]).
  // With grad, writes dhidden() and accumulates the LM head gradient. logp (optional, [B*T])
  // receives log p(target) per position.
  double lm_loss(const int32_t* targets, const float* weights, bool grad, float* logp);
  // Full logits [B*T, vocab] of the last forward (small models: validation and inspection).
  void logits(float* out) const;
  // Value head on the last forward: out[B*T] = hidden . w + b (needs cfg.value_head).
  void values(float* out) const;

  // Backward from dhidden() to the embedding; accumulates (+=) into grads.
  void backward(const int32_t* tokens);

  // Incremental decoding. forward_cached runs n new tokens for each of R rows: row r's tokens
  // tokens[r*n .. r*n+n) sit at positions pos[r] .. pos[r]+n-1 of cache slot slot[r] (n > 1 is
  // a prefill); their keys/values are appended to the cache and the logits of each row's last
  // new token are written to logits [R, vocab]. Same math as forward() + logits().
  KvCache make_cache(int slots, int Tmax) const;
  void forward_cached(const int32_t* tokens, int R, int n, const int* slot, const int* pos,
                      KvCache& cache, float* logits);

 private:
  struct LayerActs {
    std::vector<float> resid_in, ln1, rstd1, q, k, v, att, lse, resid_mid, ln2, rstd2, gate, up,
        act;
  };
  int B_ = 0, T_ = 0, cap_tokens_ = 0, cap_T_ = 0;
  std::vector<LayerActs> acts_;
  std::vector<float> resid_final_, final_norm_, rstd_final_, dfinal_norm_;
  std::vector<float> rope_cos_, rope_sin_;
  // Backward scratch, shared across layers.
  std::vector<float> dresid_, dln_, dq_, dk_, dv_, datt_, dgate_, dup_, dact_, ce_scratch_;
  int ce_chunk_ = 0;

  const float* lm_weight() const;
  void ensure_rope(int T);
  float* lm_weight_grad();
};

}  // namespace xwin
