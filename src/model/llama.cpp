#include "model/llama.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/attention_cache.h"
#include "kernels/cpu/crossentropy.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/cpu/vocab_parallel.h"

namespace xwin {

using namespace xwin::cpu;

static Shard shard_of(const Grid& g) {
  return Shard{g.tp_rank, g.tp_size, g.pp_rank, g.pp_size};
}

Llama::Llama(const ModelConfig& c, const Grid& g) : cfg(c), grid(g), layout(c, shard_of(g)) {
  cfg.validate("model config");
  const Shard& s = layout.shard;
  NH_ = cfg.n_heads / s.tp;
  NKV_ = s.kv_split(cfg) ? cfg.n_kv_heads / s.tp : 1;
  F_ = cfg.d_ff / s.tp;
  V_ = cfg.vocab_size / s.tp;
  v0_ = s.tp_rank * V_;
  L0_ = s.layer_begin(cfg), L1_ = s.layer_end(cfg);
  params.assign(layout.total, 0.f);
  grads.assign(layout.total, 0.f);
  slots_.resize(1);
}

void Llama::init_random(uint64_t seed) {
  for (const auto& t : layout.tensors) {
    float* p = params.data() + t.offset;
    const uint64_t stream = hash_name(t.name.c_str());
    if (t.init_one) {
      std::fill(p, p + t.numel, 1.0f);
    } else if (t.init_std == 0) {
      std::fill(p, p + t.numel, 0.0f);
    } else {
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < t.numel; i++)
        p[i] = (float)(t.init_std * rng_normal(seed, stream, t.logical_index(i)));
    }
  }
}

void Llama::zero_grad() {
  std::fill(grads.begin(), grads.end(), 0.f);
}

static void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.assign(n, 0.f);
}

void Llama::size_slot(Acts& a, int N) {
  if (N <= a.cap_tokens) return;
  const size_t C = cfg.d_model, HD = cfg.head_dim(), QD = NH_ * HD, KD = NKV_ * HD;
  a.layers.resize(L1_ - L0_);
  for (auto& l : a.layers) {
    grow(l.resid_in, N * C), grow(l.ln1, N * C), grow(l.rstd1, N);
    grow(l.q, N * QD), grow(l.k, N * KD), grow(l.v, N * KD), grow(l.att, N * QD);
    grow(l.lse, (size_t)N * NH_);
    grow(l.resid_mid, N * C), grow(l.ln2, N * C), grow(l.rstd2, N);
    grow(l.gate, N * (size_t)F_), grow(l.up, N * (size_t)F_), grow(l.act, N * (size_t)F_);
  }
  grow(a.resid_final, N * C);
  if (layout.shard.last_stage()) grow(a.final_norm, N * C), grow(a.rstd_final, N);
  a.cap_tokens = N;
}

void Llama::reserve(int B, int T) {
  require(T <= cfg.max_seq_len, "sequence length ", T,
          " exceeds model.max_seq_len = ", cfg.max_seq_len,
          "; lower train.seq_len or use a model with a longer context");
  const size_t N = (size_t)B * T, C = cfg.d_model, HD = cfg.head_dim();
  const size_t QD = NH_ * HD, KD = NKV_ * HD, F = F_;
  size_slot(slots_[cur_], (int)N);
  if ((int)N > cap_tokens_) {
    grow(dfinal_norm_, N * C);
    grow(dresid_, N * C), grow(dln_, N * C), grow(dq_, N * QD), grow(dk_, N * KD);
    grow(dv_, N * KD), grow(datt_, N * QD), grow(dgate_, N * F), grow(dup_, N * F);
    grow(dact_, N * F);
    ce_chunk_ = 256;
    if (layout.shard.last_stage()) grow(ce_scratch_, (size_t)ce_chunk_ * V_);
    cap_tokens_ = (int)N;
  }
  ensure_rope(T);
}

void Llama::ensure_rope(int T) {
  if (T <= cap_T_) return;
  const int HD = cfg.head_dim();
  rope_cos_.assign((size_t)T * HD / 2, 0.f);
  rope_sin_.assign((size_t)T * HD / 2, 0.f);
  rope_tables(rope_cos_.data(), rope_sin_.data(), T, HD, cfg.rope_theta);
  cap_T_ = T;
}

void Llama::require_whole(const char* what) const {
  require(layout.shard.pp == 1, what, " needs every layer on this rank, but the model is split ",
          "into ", layout.shard.pp, " pipeline stages; run it through the trainer's pipeline ",
          "schedule, or use parallel.pp = 1");
}

const float* Llama::lm_weight() const {
  const char* name = cfg.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return params.data() + layout.at(name).offset;
}

float* Llama::lm_weight_grad() {
  return grad(cfg.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
}

void Llama::forward(const int32_t* tokens, int B, int T) {
  require_whole("Llama::forward");
  forward_stage(tokens, nullptr, B, T, 0);
}

const float* Llama::forward_stage(const int32_t* tokens, const float* x, int B, int T, int slot) {
  if ((int)slots_.size() <= slot) slots_.resize(slot + 1);
  cur_ = slot;
  reserve(B, T);
  Acts& A = slots_[slot];
  A.B = B_ = B, A.T = T_ = T;
  const int N = B * T, C = cfg.d_model, F = F_, HD = cfg.head_dim();
  const int NH = NH_, NKV = NKV_, QD = NH * HD, KD = NKV * HD;
  const MPI_Comm tp = grid.tp;
  const bool first = layout.shard.first_stage(), last = layout.shard.last_stage();
  float* x0 = L1_ > L0_ ? A.layers[0].resid_in.data() : A.resid_final.data();
  if (first) {
    for (int n = 0; n < N; n++)
      require(tokens[n] >= 0 && tokens[n] < cfg.vocab_size, "token id ", tokens[n], " at position ",
              n, " is outside the vocabulary [0, ", cfg.vocab_size,
              "); the data was tokenized for a different model");
    embed(x0, tokens, N);
  } else {
    std::copy_n(x, (size_t)N * C, x0);
  }
  for (int l = L0_; l < L1_; l++) {
    LayerActs& a = A.layers[l - L0_];
    float* resid_out = l + 1 < L1_ ? A.layers[l + 1 - L0_].resid_in.data() : A.resid_final.data();
    rmsnorm_forward(a.ln1.data(), a.rstd1.data(), a.resid_in.data(),
                    param(layer_name(l, "input_layernorm.weight")), N, C, cfg.norm_eps);
    matmul_forward(a.q.data(), a.ln1.data(), param(layer_name(l, "self_attn.q_proj.weight")), N, C,
                   QD);
    matmul_forward(a.k.data(), a.ln1.data(), param(layer_name(l, "self_attn.k_proj.weight")), N, C,
                   KD);
    matmul_forward(a.v.data(), a.ln1.data(), param(layer_name(l, "self_attn.v_proj.weight")), N, C,
                   KD);
    rope_forward(a.q.data(), rope_cos_.data(), rope_sin_.data(), B, T, NH, HD);
    rope_forward(a.k.data(), rope_cos_.data(), rope_sin_.data(), B, T, NKV, HD);
    attention_forward(a.att.data(), a.lse.data(), a.q.data(), a.k.data(), a.v.data(), B, T, NH, NKV,
                      HD);
    matmul_forward(a.resid_mid.data(), a.att.data(),
                   param(layer_name(l, "self_attn.o_proj.weight")), N, QD, C);
    allreduce_sum(a.resid_mid.data(), (size_t)N * C, tp);  // row-parallel: sum the partials
    add_inplace(a.resid_mid.data(), a.resid_in.data(), (size_t)N * C);
    rmsnorm_forward(a.ln2.data(), a.rstd2.data(), a.resid_mid.data(),
                    param(layer_name(l, "post_attention_layernorm.weight")), N, C, cfg.norm_eps);
    matmul_forward(a.gate.data(), a.ln2.data(), param(layer_name(l, "mlp.gate_proj.weight")), N, C,
                   F);
    matmul_forward(a.up.data(), a.ln2.data(), param(layer_name(l, "mlp.up_proj.weight")), N, C, F);
    swiglu_forward(a.act.data(), a.gate.data(), a.up.data(), (size_t)N * F);
    matmul_forward(resid_out, a.act.data(), param(layer_name(l, "mlp.down_proj.weight")), N, F, C);
    allreduce_sum(resid_out, (size_t)N * C, tp);
    add_inplace(resid_out, a.resid_mid.data(), (size_t)N * C);
  }
  if (!last) return A.resid_final.data();
  rmsnorm_forward(A.final_norm.data(), A.rstd_final.data(), A.resid_final.data(),
                  param("model.norm.weight"), N, C, cfg.norm_eps);
  return A.final_norm.data();
}

double Llama::lm_loss(const int32_t* targets, const float* weights, bool grad, float* logp) {
  require(layout.shard.last_stage(), "internal: lm_loss on pipeline stage ", layout.shard.pp_rank,
          ", which holds no LM head");
  LmHeadCE a;
  a.x = slots_[cur_].final_norm.data();
  a.W = lm_weight();
  a.targets = targets;
  a.weights = weights;
  a.N = B_ * T_, a.C = cfg.d_model, a.V = V_;
  a.scratch = ce_scratch_.data();
  a.chunk = ce_chunk_;
  a.dx = grad ? dfinal_norm_.data() : nullptr;
  a.dW = grad ? lm_weight_grad() : nullptr;
  a.logp = logp;
  if (layout.shard.tp == 1) return lm_head_ce(a);
  VocabReduce r;
  r.v0 = v0_;
  r.max = [this](float* x, int n) { allreduce_max(x, n, grid.tp); };
  r.sum = [this](double* x, int n) { allreduce_sum(x, n, grid.tp); };
  const double loss = lm_head_ce_vocab_parallel(a, r);
  if (a.dx) allreduce_sum(a.dx, (size_t)a.N * a.C, grid.tp);
  return loss;
}

void Llama::logits(float* out) const {
  require(layout.shard.last_stage(), "internal: logits() on a pipeline stage without the head");
  const int N = B_ * T_;
  const float* x = slots_[cur_].final_norm.data();
  if (layout.shard.tp == 1) {
    matmul_forward(out, x, lm_weight(), N, cfg.d_model, cfg.vocab_size);
    return;
  }
  // Small models only (validation, inspection): gather the vocabulary shards.
  std::vector<float> local((size_t)N * V_), all((size_t)layout.shard.tp * N * V_);
  matmul_forward(local.data(), x, lm_weight(), N, cfg.d_model, V_);
  gather_vocab(local.data(), all.data(), N, out);
}

void Llama::embed(float* x, const int32_t* tokens, int N) {
  const float* wte = param("model.embed_tokens.weight");
  if (layout.shard.tp == 1) return embedding_forward(x, tokens, wte, N, cfg.d_model);
  embedding_forward_shard(x, tokens, wte, N, cfg.d_model, v0_, V_);  // zero off this shard
  allreduce_sum(x, (size_t)N * cfg.d_model, grid.tp);
}

void Llama::gather_vocab(const float* local, float* all, int rows, float* out) const {
  allgather(local, all, (size_t)rows * V_, grid.tp);  // [tp][rows][V_]
  for (int t = 0; t < layout.shard.tp; t++)
    for (int r = 0; r < rows; r++)
      std::copy_n(&all[((size_t)t * rows + r) * V_], V_,
                  out + (size_t)r * cfg.vocab_size + (size_t)t * V_);
}

void Llama::values(float* out) const {
  require(cfg.value_head, "internal: values() on a model without a value head");
  const float* w = params.data() + layout.at("value_head.weight").offset;
  const float b = params[layout.at("value_head.bias").offset];
  matmul_forward(out, slots_[cur_].final_norm.data(), w, B_ * T_, cfg.d_model, 1);
  for (int n = 0; n < B_ * T_; n++) out[n] += b;
}

void Llama::backward(const int32_t* tokens) {
  require_whole("Llama::backward");
  backward_stage(tokens, nullptr, cur_);
}

const float* Llama::backward_stage(const int32_t* tokens, const float* dy, int slot) {
  cur_ = slot;
  Acts& A = slots_[slot];
  const int B = A.B, T = A.T, N = B * T, C = cfg.d_model, F = F_, HD = cfg.head_dim();
  const int NH = NH_, NKV = NKV_, QD = NH * HD, KD = NKV * HD;
  const size_t NC = (size_t)N * C;
  const MPI_Comm tp = grid.tp;
  if (layout.shard.last_stage()) {
    std::fill_n(dresid_.begin(), NC, 0.f);
    rmsnorm_backward(dresid_.data(), grad("model.norm.weight"), dfinal_norm_.data(),
                     A.resid_final.data(), param("model.norm.weight"), A.rstd_final.data(), N, C);
    grads_ready("model.norm.weight", layout.tensors.back().name);
  } else {
    std::copy_n(dy, NC, dresid_.begin());
  }
  for (int l = L1_ - 1; l >= L0_; l--) {
    LayerActs& a = A.layers[l - L0_];
    // MLP block: resid_out = resid_mid + down(swiglu(gate(ln2), up(ln2))).
    std::fill_n(dact_.begin(), (size_t)N * F, 0.f);
    matmul_backward(dact_.data(), grad(layer_name(l, "mlp.down_proj.weight")), dresid_.data(),
                    a.act.data(), param(layer_name(l, "mlp.down_proj.weight")), N, F, C);
    swiglu_backward(dgate_.data(), dup_.data(), dact_.data(), a.gate.data(), a.up.data(),
                    (size_t)N * F);
    std::fill_n(dln_.begin(), NC, 0.f);
    matmul_backward(dln_.data(), grad(layer_name(l, "mlp.gate_proj.weight")), dgate_.data(),
                    a.ln2.data(), param(layer_name(l, "mlp.gate_proj.weight")), N, C, F);
    matmul_backward(dln_.data(), grad(layer_name(l, "mlp.up_proj.weight")), dup_.data(),
                    a.ln2.data(), param(layer_name(l, "mlp.up_proj.weight")), N, C, F);
    allreduce_sum(dln_.data(), NC, tp);  // column-parallel: sum the input gradient's partials
    rmsnorm_backward(dresid_.data(), grad(layer_name(l, "post_attention_layernorm.weight")),
                     dln_.data(), a.resid_mid.data(),
                     param(layer_name(l, "post_attention_layernorm.weight")), a.rstd2.data(), N, C);
    // Attention block: resid_mid = resid_in + o(attn(rope(q(ln1)), rope(k(ln1)), v(ln1))).
    std::fill_n(datt_.begin(), (size_t)N * QD, 0.f);
    matmul_backward(datt_.data(), grad(layer_name(l, "self_attn.o_proj.weight")), dresid_.data(),
                    a.att.data(), param(layer_name(l, "self_attn.o_proj.weight")), N, QD, C);
    attention_backward(dq_.data(), dk_.data(), dv_.data(), datt_.data(), a.att.data(), a.lse.data(),
                       a.q.data(), a.k.data(), a.v.data(), B, T, NH, NKV, HD);
    rope_backward(dq_.data(), rope_cos_.data(), rope_sin_.data(), B, T, NH, HD);
    rope_backward(dk_.data(), rope_cos_.data(), rope_sin_.data(), B, T, NKV, HD);
    std::fill_n(dln_.begin(), NC, 0.f);
    matmul_backward(dln_.data(), grad(layer_name(l, "self_attn.q_proj.weight")), dq_.data(),
                    a.ln1.data(), param(layer_name(l, "self_attn.q_proj.weight")), N, C, QD);
    matmul_backward(dln_.data(), grad(layer_name(l, "self_attn.k_proj.weight")), dk_.data(),
                    a.ln1.data(), param(layer_name(l, "self_attn.k_proj.weight")), N, C, KD);
    matmul_backward(dln_.data(), grad(layer_name(l, "self_attn.v_proj.weight")), dv_.data(),
                    a.ln1.data(), param(layer_name(l, "self_attn.v_proj.weight")), N, C, KD);
    allreduce_sum(dln_.data(), NC, tp);
    rmsnorm_backward(dresid_.data(), grad(layer_name(l, "input_layernorm.weight")), dln_.data(),
                     a.resid_in.data(), param(layer_name(l, "input_layernorm.weight")),
                     a.rstd1.data(), N, C);
    grads_ready(layer_name(l, "input_layernorm.weight"), layer_name(l, "mlp.down_proj.weight"));
  }
  if (!layout.shard.first_stage()) return dresid_.data();
  if (layout.shard.tp == 1)
    embedding_backward(grad("model.embed_tokens.weight"), dresid_.data(), tokens, N, C);
  else
    embedding_backward_shard(grad("model.embed_tokens.weight"), dresid_.data(), tokens, N, C, v0_,
                             V_);
  grads_ready("model.embed_tokens.weight", "model.embed_tokens.weight");
  return nullptr;
}

// Tensors first .. last are contiguous in the layout (layer-major order).
void Llama::grads_ready(const std::string& first, const std::string& last) {
  if (!on_grads_ready) return;
  const TensorInfo &a = layout.at(first), &b = layout.at(last);
  on_grads_ready(a.offset, b.offset + b.numel - a.offset);
}

// A replicated KV head's gradient is split over the ranks sharing it (each saw only its query
// heads): sum it over the TP group, every rank placing its block at its head's rows.
void Llama::allreduce_kv_grad(const std::string& name) {
  const TensorInfo& t = layout.at(name);
  const size_t per_head = t.numel, heads = cfg.n_kv_heads;
  const size_t at = (size_t)t.slice_start[0] / cfg.head_dim();
  std::vector<float> all(heads * per_head, 0.f);
  std::copy_n(grads.data() + t.offset, per_head, &all[at * per_head]);
  allreduce_sum(all.data(), all.size(), grid.tp);
  std::copy_n(&all[at * per_head], per_head, grads.data() + t.offset);
}

void Llama::allreduce_shared_grads() {
  if (layout.shard.tp > 1 && !layout.shard.kv_split(cfg))
    for (int l = L0_; l < L1_; l++) {
      allreduce_kv_grad(layer_name(l, "self_attn.k_proj.weight"));
      allreduce_kv_grad(layer_name(l, "self_attn.v_proj.weight"));
    }
  if (cfg.tie_embeddings && layout.shard.pp > 1 && grid.embed != MPI_COMM_NULL) {
    const TensorInfo& t = layout.at("model.embed_tokens.weight");
    allreduce_sum(grads.data() + t.offset, t.numel, grid.embed);
  }
}

void* huge_alloc(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  void* p = nullptr;
  if (bytes >= kHuge) {
    const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    p = std::aligned_alloc(kHuge, rounded);
    if (p) madvise(p, rounded, MADV_HUGEPAGE);  // a hint: without THP the pages stay 4 KiB
  } else {
    p = std::malloc(std::max<size_t>(bytes, 1));
  }
  if (!p) throw std::bad_alloc();
  return p;
}

// Adjacent tensors `first` .. `last` of layer l (q/k/v, gate/up) as one stacked weight matrix.
static const float* stacked(const Llama& m, int l, const char* first, const char* last,
                            size_t numel) {
  const TensorInfo &a = m.layout.at(layer_name(l, first)), &b = m.layout.at(layer_name(l, last));
  require(b.offset + b.numel - a.offset == numel, "internal: ", first, " .. ", last,
          " are not adjacent in the parameter layout");
  return m.params.data() + a.offset;
}

KvCache Llama::make_cache(int slots, int Tmax, size_t pack_limit) const {
  require(Tmax <= cfg.max_seq_len, "KV cache of ", Tmax,
          " positions exceeds model.max_seq_len = ", cfg.max_seq_len,
          "; lower the prompt length or max new tokens");
  KvCache c;
  c.slots = slots, c.Tmax = Tmax;
  const int HD = cfg.head_dim();
  const size_t n = (size_t)slots * Tmax * NKV_ * HD;  // this rank's KV heads
  for (int l = L0_; l < L1_; l++)  // each built in place: no zeroed template to copy
    c.k.emplace_back(n, 0.f), c.v.emplace_back(n, 0.f);
  // The decode products, in order: (weights, in, out) per local layer, then the LM head's
  // vocabulary rows on the last stage; every size is this rank's shard.
  const int C = cfg.d_model, F = F_, QD = NH_ * HD, QKV = QD + 2 * NKV_ * HD;
  struct Product {
    const float* w;
    int in, out;
  };
  std::vector<Product> products;
  for (int l = L0_; l < L1_; l++) {
    products.push_back(
        {stacked(*this, l, "self_attn.q_proj.weight", "self_attn.v_proj.weight", (size_t)QKV * C),
         C, QKV});
    products.push_back(
        {params.data() + layout.at(layer_name(l, "self_attn.o_proj.weight")).offset, QD, C});
    products.push_back(
        {stacked(*this, l, "mlp.gate_proj.weight", "mlp.up_proj.weight", (size_t)2 * F * C), C,
         2 * F});
    products.push_back(
        {params.data() + layout.at(layer_name(l, "mlp.down_proj.weight")).offset, F, C});
  }
  if (layout.shard.last_stage()) products.push_back({lm_weight(), C, V_});
  size_t total = 0;
  for (const Product& p : products)
    c.packed_at.push_back(total), total += matmul_packed_size(p.in, p.out);
  if (total > pack_limit) {
    c.packed_at.clear();
    return c;
  }
  c.packed.resize(total);
  for (size_t i = 0; i < products.size(); i++)
    matmul_pack(c.packed.data() + c.packed_at[i], products[i].w, products[i].in, products[i].out);
  return c;
}

// Under tensor parallelism each rank runs its heads and its share of the MLP; the row-parallel
// o and down products give partial sums that one all-reduce per block completes (the same
// order as forward_stage: partials summed, then added to the residual stream). Under pipeline
// parallelism the residual stream of all N tokens passes stage to stage, and the last stage's
// logits go to every stage, so that every rank of the model group draws the same tokens.
void Llama::forward_cached(const int32_t* tokens, int R, int n, const int* slot, const int* pos,
                           KvCache& cache, float* logits_out) {
  const int N = R * n, C = cfg.d_model, F = F_, HD = cfg.head_dim();
  const int NH = NH_, NKV = NKV_, QD = NH * HD, KD = NKV * HD;
  const int QKV = QD + 2 * KD, V = cfg.vocab_size;
  const Shard& sh = layout.shard;
  const bool split = sh.tp > 1;
  require((int)cache.k.size() == L1_ - L0_,
          "internal: a KV cache made for another model or layout");
  for (int r = 0; r < R; r++)
    require(slot[r] >= 0 && slot[r] < cache.slots && pos[r] >= 0 && pos[r] + n <= cache.Tmax,
            "KV cache overflow: row ", r, " needs positions up to ", pos[r] + n, " of slot ",
            slot[r], " but the cache holds ", cache.Tmax, " positions in ", cache.slots, " slots");
  for (int i = 0; i < N; i++)
    require(tokens[i] >= 0 && tokens[i] < V, "token id ", tokens[i],
            " is outside the vocabulary [0, ", V, ")");
  ensure_rope(cache.Tmax);
  CachedActs& a = dec_;
  grow(a.x, (size_t)N * C), grow(a.ln, (size_t)N * C), grow(a.rstd, N);
  grow(a.qkv, (size_t)N * QKV), grow(a.q, (size_t)N * QD), grow(a.att, (size_t)N * QD);
  grow(a.gu, (size_t)N * 2 * F), grow(a.act, (size_t)N * F), grow(a.last, (size_t)R * C);
  float *x = a.x.data(), *ln = a.ln.data(), *qkv = a.qkv.data(), *q = a.q.data();
  // Product m of make_cache's list (4 per local layer, then the LM head) on `rows` rows:
  // out = in W^T, or out += in W^T; from the packed weights when the cache has them.
  const auto product = [&](float* out, const float* in, int m, const float* w, int rows, int IC,
                           int OC, bool accumulate) {
    if (!cache.packed.empty())
      matmul_forward_packed(out, in, cache.packed.data() + cache.packed_at[m], rows, IC, OC,
                            accumulate);
    else if (accumulate)
      matmul_forward_acc(out, in, w, rows, IC, OC);
    else
      matmul_forward(out, in, w, rows, IC, OC);
  };
  // A row-parallel product added into the residual stream: straight in on one TP rank;
  // otherwise this rank's partial sum (in ln, free by then) is completed over the TP group.
  const auto row_parallel = [&](const float* in, int m, const char* weight, int l, int IC) {
    const float* w = param(layer_name(l, weight));
    if (!split) return product(x, in, m, w, N, IC, C, true);
    product(ln, in, m, w, N, IC, C, false);
    allreduce_sum(ln, (size_t)N * C, grid.tp);
    add_inplace(x, ln, (size_t)N * C);
  };
  if (sh.first_stage()) {
    embed(x, tokens, N);
  } else {
    sendrecv(nullptr, 0, -1, x, (size_t)N * C, sh.pp_rank - 1, grid.pp);
  }
  for (int l = L0_; l < L1_; l++) {
    const int m = 4 * (l - L0_);
    rmsnorm_forward(ln, a.rstd.data(), x, param(layer_name(l, "input_layernorm.weight")), N, C,
                    cfg.norm_eps);
    product(
        qkv, ln, m,
        stacked(*this, l, "self_attn.q_proj.weight", "self_attn.v_proj.weight", (size_t)QKV * C), N,
        C, QKV, false);
    // RoPE on q into q, on k straight into the cache; v copied into the cache.
    float *kc = cache.k[l - L0_].data(), *vc = cache.v[l - L0_].data();
#pragma omp parallel for schedule(static) if (N >= 64)
    for (int i = 0; i < N; i++) {
      const int r = i / n, p = pos[r] + i % n;
      const size_t at = ((size_t)slot[r] * cache.Tmax + p) * KD;
      const float* src = qkv + (size_t)i * QKV;
      rope_token(q + (size_t)i * QD, src, rope_cos_.data(), rope_sin_.data(), p, NH, HD);
      rope_token(kc + at, src + QD, rope_cos_.data(), rope_sin_.data(), p, NKV, HD);
      std::copy_n(src + QD + KD, KD, vc + at);
    }
    attention_cached(a.att.data(), q, kc, vc, slot, pos, R, n, NH, NKV, HD, cache.Tmax);
    row_parallel(a.att.data(), m + 1, "self_attn.o_proj.weight", l, QD);
    rmsnorm_forward(ln, a.rstd.data(), x, param(layer_name(l, "post_attention_layernorm.weight")),
                    N, C, cfg.norm_eps);
    product(a.gu.data(), ln, m + 2,
            stacked(*this, l, "mlp.gate_proj.weight", "mlp.up_proj.weight", (size_t)2 * F * C), N,
            C, 2 * F, false);
    swiglu_forward_fused(a.act.data(), a.gu.data(), N, F);
    row_parallel(a.act.data(), m + 3, "mlp.down_proj.weight", l, F);
  }
  if (!sh.last_stage()) {
    sendrecv(x, (size_t)N * C, sh.pp_rank + 1, nullptr, 0, -1, grid.pp);
  } else {
    // Only each row's last new token needs logits.
    const float* h = x;
    if (n > 1) {
      for (int r = 0; r < R; r++)
        std::copy_n(&x[((size_t)r * n + n - 1) * C], C, &a.last[(size_t)r * C]);
      h = a.last.data();
    }
    rmsnorm_forward(ln, a.rstd.data(), h, param("model.norm.weight"), R, C, cfg.norm_eps);
    const int m = 4 * (L1_ - L0_);
    if (!split) {
      product(logits_out, ln, m, lm_weight(), R, C, V, false);
    } else {
      grow(a.vocab, (size_t)R * V_), grow(a.vocab_all, (size_t)sh.tp * R * V_);
      product(a.vocab.data(), ln, m, lm_weight(), R, C, V_, false);
      gather_vocab(a.vocab.data(), a.vocab_all.data(), R, logits_out);
    }
  }
  if (sh.pp > 1) broadcast(logits_out, (size_t)R * V, sh.pp - 1, grid.pp);
}

}  // namespace xwin
