// The Llama-family decoder on CPU: flat parameter/gradient buffers sized once, activations sized
// once per (B, T), and an explicit forward and backward over the kernels in kernels/cpu.
//
// A training step reads top to bottom:
//   model.forward(tokens, B, T);                 // through the final RMSNorm
//   loss = model.lm_loss(targets, weights, ...); // LM head + CE, writes d(final norm output)
//   model.backward(tokens);                      // accumulates into model.grads
// Other heads (the reward model's value head) write d(final norm output) themselves and call
// backward() the same way.
//
// Model parallelism (the grid's tp and pp groups) keeps this shape. Tensor parallelism is
// Megatron's: column-parallel q/k/v and gate/up, row-parallel o/down (one all-reduce of the
// block output in forward, one of the block input's gradient in backward), a vocab-parallel
// embedding and LM head whose cross-entropy never gathers the logits; hidden(), dhidden(),
// lm_loss(), values() and logp mean the same on every TP rank as on one rank. Under pipeline
// parallelism a rank holds one stage's layers and the trainer's schedule drives forward_stage /
// backward_stage; forward() and backward() then refuse (they need the whole layer stack).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/layout.h"
#include "parallel/grid.h"

namespace xwin {

// Memory for what every decode step streams through (the KV cache, the packed weights): on 2 MiB
// transparent huge pages where the kernel allows them (madvise), so that the walk does not take
// a TLB miss every 4 KiB (about a fifth of the decode attention's time).
void* huge_alloc(size_t bytes);
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(huge_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const HugePageAllocator&) const { return true; }
  bool operator!=(const HugePageAllocator&) const { return false; }
};
using HugeVector = std::vector<float, HugePageAllocator<float>>;

// Keys and values of past tokens for incremental decoding: `slots` independent sequences of up
// to Tmax tokens; per layer [slots, Tmax, n_kv_heads, head_dim] for k and for v.
struct KvCache {
  int slots = 0, Tmax = 0;
  std::vector<HugeVector> k, v;  // per layer: [slot][Tmax][n_kv_heads * head_dim]
  // The weights as the decode kernels read them (cpu::matmul_pack), taken when the cache is
  // made: a cache belongs to the weights its keys and values were computed with. Layer l's
  // q|k|v, o, gate|up and down start at packed_at[4l .. 4l+3], the LM head at packed_at[4L].
  // Empty for a model too large to keep a second copy of (forward_cached then uses sgemm).
  HugeVector packed;
  std::vector<size_t> packed_at;

  // Copies positions [0, n) of slot `from` into slot `to`: a prompt shared by several rows is
  // prefilled once.
  void copy_prefix(int from, int to, int n) {
    const size_t per = k.empty() ? 0 : k[0].size() / ((size_t)slots * Tmax);
    for (size_t l = 0; l < k.size(); l++) {
      std::copy_n(&k[l][(size_t)from * Tmax * per], (size_t)n * per,
                  &k[l][(size_t)to * Tmax * per]);
      std::copy_n(&v[l][(size_t)from * Tmax * per], (size_t)n * per,
                  &v[l][(size_t)to * Tmax * per]);
    }
  }
};

class Llama {
 public:
  // The model as one rank of grid (by default the job's configured layout; on one rank, or
  // with tp = pp = 1, the whole model). Throws when tp / pp do not divide the model's sizes.
  explicit Llama(const ModelConfig& cfg, const Grid& grid = Grid::from_world());

  const ModelConfig cfg;
  const Grid grid;
  const ParamLayout layout;
  std::vector<float> params;
  std::vector<float> grads;

  float* param(const std::string& name) { return params.data() + layout.at(name).offset; }
  float* grad(const std::string& name) { return grads.data() + layout.at(name).offset; }

  // Normal(0, init_std) weights and unit norms; each element is a function of (seed, tensor
  // name, logical element index) only, so every layout starts from the same weights.
  void init_random(uint64_t seed);
  void zero_grad();

  // Sizes activation buffers for up to B x T (reallocates only when growing).
  void reserve(int B, int T);

  // Forward pass through the final RMSNorm for tokens [B, T]; T <= max_seq_len.
  void forward(const int32_t* tokens, int B, int T);
  // Final normed hidden states [B*T, d_model] of the last forward.
  const float* hidden() const { return slots_[cur_].final_norm.data(); }
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

  // One pipeline stage on micro-batch activations held in `slot` (several micro-batches are in
  // flight under 1F1B). forward_stage reads tokens on the first stage and x ([B*T, d_model],
  // the previous stage's output) elsewhere; it returns this stage's output (the residual
  // stream after its last layer; on the last stage, hidden()). backward_stage starts from
  // dhidden() on the last stage and from dy elsewhere, and returns the gradient of the stage's
  // input (null on the first stage, which ends in the embedding).
  const float* forward_stage(const int32_t* tokens, const float* x, int B, int T, int slot);
  const float* backward_stage(const int32_t* tokens, const float* dy, int slot);
  // When set, backward_stage reports each range of grads that this backward has finished
  // writing (the head and final norm, then each layer, then the embedding), so that the
  // data-parallel reduction of a range can start while the backward goes on.
  std::function<void(size_t offset, size_t n)> on_grads_ready;
  // Sums the gradients of weights that several ranks hold copies of and that each rank only
  // sees part of the gradient of: replicated GQA KV heads (TP) and the tied embedding on the
  // first and last stage (PP). Call once per step, after the last backward.
  void allreduce_shared_grads();

  // Incremental decoding. forward_cached runs n new tokens for each of R rows: row r's tokens
  // tokens[r*n .. r*n+n) sit at positions pos[r] .. pos[r]+n-1 of cache slot slot[r] (n > 1 is
  // a prefill); their keys/values are appended to the cache and the logits of each row's last
  // new token are written to logits [R, vocab]. Same math as forward() + logits(). Under
  // tensor or pipeline parallelism it is collective over the model's TP and PP groups (every
  // rank calls it with the same arguments) and every rank receives the whole logits.
  // make_cache makes this rank's part of the cache (its layers, its KV heads) and packs its
  // weights for the decode kernels unless the packed copy would exceed pack_limit floats.
  static constexpr size_t kPackLimit = size_t(1) << 28;  // 1 GiB
  KvCache make_cache(int slots, int Tmax, size_t pack_limit = kPackLimit) const;
  void forward_cached(const int32_t* tokens, int R, int n, const int* slot, const int* pos,
                      KvCache& cache, float* logits);

 private:
  struct LayerActs {
    std::vector<float> resid_in, ln1, rstd1, q, k, v, att, lse, resid_mid, ln2, rstd2, gate, up,
        act;
  };
  // One micro-batch's activations: this stage's layers, and its output.
  struct Acts {
    int B = 0, T = 0, cap_tokens = 0;
    std::vector<LayerActs> layers;
    std::vector<float> resid_final, final_norm, rstd_final;
  };
  // forward_cached's activations, sized for the largest call so far. q, k and v (gate and up)
  // are adjacent in the layout, so one product with their stacked weights gives all three:
  // qkv [N, QD + 2 KD], gu [N, 2F]. x is the residual stream, which o and down add into.
  struct CachedActs {
    std::vector<float> x, ln, rstd, qkv, q, att, gu, act, last, vocab, vocab_all;
  };
  CachedActs dec_;
  // Local sizes: this rank's heads, KV heads, MLP width and vocabulary rows; its layers.
  int NH_, NKV_, F_, V_, v0_, L0_, L1_;
  int B_ = 0, T_ = 0, cap_tokens_ = 0, cap_T_ = 0, cur_ = 0;
  std::vector<Acts> slots_;
  std::vector<float> dfinal_norm_;
  std::vector<float> rope_cos_, rope_sin_;
  // Backward scratch, shared across layers.
  std::vector<float> dresid_, dln_, dq_, dk_, dv_, datt_, dgate_, dup_, dact_, ce_scratch_;
  int ce_chunk_ = 0;

  const float* lm_weight() const;
  // Token embeddings of tokens [N] into x [N, d_model]: under TP each rank looks up its
  // vocabulary rows and the sum over the TP group completes them.
  void embed(float* x, const int32_t* tokens, int N);
  // out [rows, vocab] from each TP rank's logits of its vocabulary rows, local [rows, V_];
  // all is scratch for tp * rows * V_ floats.
  void gather_vocab(const float* local, float* all, int rows, float* out) const;
  void ensure_rope(int T);
  float* lm_weight_grad();
  void size_slot(Acts& a, int N);
  void require_whole(const char* what) const;
  void allreduce_kv_grad(const std::string& name);
  void grads_ready(const std::string& first, const std::string& last);
};

}  // namespace xwin
