#include "model/llama.h"

#include <algorithm>
#include <cstring>

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

namespace xwin {

using namespace xwin::cpu;

Llama::Llama(const ModelConfig& c) : cfg(c), layout(c) {
  cfg.validate("model config");
  params.assign(layout.total, 0.f);
  grads.assign(layout.total, 0.f);
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
        p[i] = (float)(t.init_std * rng_normal(seed, stream, i));
    }
  }
}

void Llama::zero_grad() { std::fill(grads.begin(), grads.end(), 0.f); }

static void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.assign(n, 0.f);
}

void Llama::reserve(int B, int T) {
  require(T <= cfg.max_seq_len, "sequence length ", T, " exceeds model.max_seq_len = ",
          cfg.max_seq_len, "; lower train.seq_len or use a model with a longer context");
  const size_t N = (size_t)B * T, C = cfg.d_model, F = cfg.d_ff, HD = cfg.head_dim();
  const size_t QD = cfg.n_heads * HD, KD = cfg.n_kv_heads * HD;
  if ((int)N > cap_tokens_) {
    acts_.resize(cfg.n_layers);
    for (auto& a : acts_) {
      grow(a.resid_in, N * C), grow(a.ln1, N * C), grow(a.rstd1, N);
      grow(a.q, N * QD), grow(a.k, N * KD), grow(a.v, N * KD), grow(a.att, N * QD);
      grow(a.lse, (size_t)B * cfg.n_heads * T);
      grow(a.resid_mid, N * C), grow(a.ln2, N * C), grow(a.rstd2, N);
      grow(a.gate, N * F), grow(a.up, N * F), grow(a.act, N * F);
    }
    grow(resid_final_, N * C), grow(final_norm_, N * C), grow(rstd_final_, N);
    grow(dfinal_norm_, N * C);
    grow(dresid_, N * C), grow(dln_, N * C), grow(dq_, N * QD), grow(dk_, N * KD);
    grow(dv_, N * KD), grow(datt_, N * QD), grow(dgate_, N * F), grow(dup_, N * F);
    grow(dact_, N * F);
    ce_chunk_ = 256;
    grow(ce_scratch_, (size_t)ce_chunk_ * cfg.vocab_size);
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

const float* Llama::lm_weight() const {
  const char* name = cfg.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return params.data() + layout.at(name).offset;
}

float* Llama::lm_weight_grad() {
  return grad(cfg.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
}

void Llama::forward(const int32_t* tokens, int B, int T) {
  reserve(B, T);
  B_ = B, T_ = T;
  const int N = B * T, C = cfg.d_model, F = cfg.d_ff, HD = cfg.head_dim();
  const int NH = cfg.n_heads, NKV = cfg.n_kv_heads, QD = NH * HD, KD = NKV * HD;
  for (int n = 0; n < N; n++)
    require(tokens[n] >= 0 && tokens[n] < cfg.vocab_size, "token id ", tokens[n],
            " at position ", n, " is outside the vocabulary [0, ", cfg.vocab_size,
            "); the data was tokenized for a different model");
  embedding_forward(acts_[0].resid_in.data(), tokens, param("model.embed_tokens.weight"), N, C);
  for (int l = 0; l < cfg.n_layers; l++) {
    LayerActs& a = acts_[l];
    float* resid_out = l + 1 < cfg.n_layers ? acts_[l + 1].resid_in.data() : resid_final_.data();
    rmsnorm_forward(a.ln1.data(), a.rstd1.data(), a.resid_in.data(),
                    param(layer_name(l, "input_layernorm.weight")), N, C, cfg.norm_eps);
    matmul_forward(a.q.data(), a.ln1.data(), param(layer_name(l, "self_attn.q_proj.weight")), N,
                   C, QD);
    matmul_forward(a.k.data(), a.ln1.data(), param(layer_name(l, "self_attn.k_proj.weight")), N,
                   C, KD);
    matmul_forward(a.v.data(), a.ln1.data(), param(layer_name(l, "self_attn.v_proj.weight")), N,
                   C, KD);
    rope_forward(a.q.data(), rope_cos_.data(), rope_sin_.data(), B, T, NH, HD);
    rope_forward(a.k.data(), rope_cos_.data(), rope_sin_.data(), B, T, NKV, HD);
    attention_forward(a.att.data(), a.lse.data(), a.q.data(), a.k.data(), a.v.data(), B, T, NH,
                      NKV, HD);
    matmul_forward(a.resid_mid.data(), a.att.data(),
                   param(layer_name(l, "self_attn.o_proj.weight")), N, QD, C);
    add_inplace(a.resid_mid.data(), a.resid_in.data(), (size_t)N * C);
    rmsnorm_forward(a.ln2.data(), a.rstd2.data(), a.resid_mid.data(),
                    param(layer_name(l, "post_attention_layernorm.weight")), N, C, cfg.norm_eps);
    matmul_forward(a.gate.data(), a.ln2.data(), param(layer_name(l, "mlp.gate_proj.weight")), N,
                   C, F);
    matmul_forward(a.up.data(), a.ln2.data(), param(layer_name(l, "mlp.up_proj.weight")), N, C, F);
    swiglu_forward(a.act.data(), a.gate.data(), a.up.data(), (size_t)N * F);
    matmul_forward(resid_out, a.act.data(), param(layer_name(l, "mlp.down_proj.weight")), N, F, C);
    add_inplace(resid_out, a.resid_mid.data(), (size_t)N * C);
  }
  rmsnorm_forward(final_norm_.data(), rstd_final_.data(), resid_final_.data(),
                  param("model.norm.weight"), N, C, cfg.norm_eps);
}

double Llama::lm_loss(const int32_t* targets, const float* weights, bool grad, float* logp) {
  LmHeadCE a;
  a.x = final_norm_.data();
  a.W = lm_weight();
  a.targets = targets;
  a.weights = weights;
  a.N = B_ * T_, a.C = cfg.d_model, a.V = cfg.vocab_size;
  a.scratch = ce_scratch_.data();
  a.chunk = ce_chunk_;
  a.dx = grad ? dfinal_norm_.data() : nullptr;
  a.dW = grad ? lm_weight_grad() : nullptr;
  a.logp = logp;
  return lm_head_ce(a);
}

void Llama::logits(float* out) const {
  matmul_forward(out, final_norm_.data(), lm_weight(), B_ * T_, cfg.d_model, cfg.vocab_size);
}

void Llama::values(float* out) const {
  require(cfg.value_head, "internal: values() on a model without a value head");
  const float* w = params.data() + layout.at("value_head.weight").offset;
  const float b = params[layout.at("value_head.bias").offset];
  matmul_forward(out, final_norm_.data(), w, B_ * T_, cfg.d_model, 1);
  for (int n = 0; n < B_ * T_; n++) out[n] += b;
}

void Llama::backward(const int32_t* tokens) {
  const int B = B_, T = T_, N = B * T, C = cfg.d_model, F = cfg.d_ff, HD = cfg.head_dim();
  const int NH = cfg.n_heads, NKV = cfg.n_kv_heads, QD = NH * HD, KD = NKV * HD;
  const size_t NC = (size_t)N * C;
  std::fill_n(dresid_.begin(), NC, 0.f);
  rmsnorm_backward(dresid_.data(), grad("model.norm.weight"), dfinal_norm_.data(),
                   resid_final_.data(), param("model.norm.weight"), rstd_final_.data(), N, C);
  for (int l = cfg.n_layers - 1; l >= 0; l--) {
    LayerActs& a = acts_[l];
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
    rmsnorm_backward(dresid_.data(), grad(layer_name(l, "post_attention_layernorm.weight")),
                     dln_.data(), a.resid_mid.data(),
                     param(layer_name(l, "post_attention_layernorm.weight")), a.rstd2.data(), N,
                     C);
    // Attention block: resid_mid = resid_in + o(attn(rope(q(ln1)), rope(k(ln1)), v(ln1))).
    std::fill_n(datt_.begin(), (size_t)N * QD, 0.f);
    matmul_backward(datt_.data(), grad(layer_name(l, "self_attn.o_proj.weight")), dresid_.data(),
                    a.att.data(), param(layer_name(l, "self_attn.o_proj.weight")), N, QD, C);
    attention_backward(dq_.data(), dk_.data(), dv_.data(), datt_.data(), a.att.data(),
                       a.lse.data(), a.q.data(), a.k.data(), a.v.data(), B, T, NH, NKV, HD);
    rope_backward(dq_.data(), rope_cos_.data(), rope_sin_.data(), B, T, NH, HD);
    rope_backward(dk_.data(), rope_cos_.data(), rope_sin_.data(), B, T, NKV, HD);
    std::fill_n(dln_.begin(), NC, 0.f);
    matmul_backward(dln_.data(), grad(layer_name(l, "self_attn.q_proj.weight")), dq_.data(),
                    a.ln1.data(), param(layer_name(l, "self_attn.q_proj.weight")), N, C, QD);
    matmul_backward(dln_.data(), grad(layer_name(l, "self_attn.k_proj.weight")), dk_.data(),
                    a.ln1.data(), param(layer_name(l, "self_attn.k_proj.weight")), N, C, KD);
    matmul_backward(dln_.data(), grad(layer_name(l, "self_attn.v_proj.weight")), dv_.data(),
                    a.ln1.data(), param(layer_name(l, "self_attn.v_proj.weight")), N, C, KD);
    rmsnorm_backward(dresid_.data(), grad(layer_name(l, "input_layernorm.weight")), dln_.data(),
                     a.resid_in.data(), param(layer_name(l, "input_layernorm.weight")),
                     a.rstd1.data(), N, C);
  }
  embedding_backward(grad("model.embed_tokens.weight"), dresid_.data(), tokens, N, C);
}

KvCache Llama::make_cache(int slots, int Tmax) const {
  require(Tmax <= cfg.max_seq_len, "KV cache of ", Tmax, " positions exceeds model.max_seq_len = ",
          cfg.max_seq_len, "; lower the prompt length or max new tokens");
  KvCache c;
  c.slots = slots, c.Tmax = Tmax;
  const size_t n = (size_t)slots * Tmax * cfg.n_kv_heads * cfg.head_dim();
  c.k.assign(cfg.n_layers, std::vector<float>(n, 0.f));
  c.v.assign(cfg.n_layers, std::vector<float>(n, 0.f));
  return c;
}

void Llama::forward_cached(const int32_t* tokens, int R, int n, const int* slot, const int* pos,
                           KvCache& cache, float* logits_out) {
  const int N = R * n, C = cfg.d_model, F = cfg.d_ff, HD = cfg.head_dim();
  const int NH = cfg.n_heads, NKV = cfg.n_kv_heads, QD = NH * HD, KD = NKV * HD;
  for (int r = 0; r < R; r++)
    require(slot[r] >= 0 && slot[r] < cache.slots && pos[r] >= 0 && pos[r] + n <= cache.Tmax,
            "KV cache overflow: row ", r, " needs positions up to ", pos[r] + n, " of slot ",
            slot[r], " but the cache holds ", cache.Tmax, " positions in ", cache.slots, " slots");
  for (int i = 0; i < N; i++)
    require(tokens[i] >= 0 && tokens[i] < cfg.vocab_size, "token id ", tokens[i],
            " is outside the vocabulary [0, ", cfg.vocab_size, ")");
  ensure_rope(cache.Tmax);
  std::vector<float> x((size_t)N * C), ln((size_t)N * C), mid((size_t)N * C);
  std::vector<float> q((size_t)N * QD), k((size_t)N * KD), v((size_t)N * KD), att((size_t)N * QD);
  std::vector<float> gate((size_t)N * F), up((size_t)N * F), act((size_t)N * F), rstd(N);
  embedding_forward(x.data(), tokens, param("model.embed_tokens.weight"), N, C);
  for (int l = 0; l < cfg.n_layers; l++) {
    rmsnorm_forward(ln.data(), rstd.data(), x.data(),
                    param(layer_name(l, "input_layernorm.weight")), N, C, cfg.norm_eps);
    matmul_forward(q.data(), ln.data(), param(layer_name(l, "self_attn.q_proj.weight")), N, C, QD);
    matmul_forward(k.data(), ln.data(), param(layer_name(l, "self_attn.k_proj.weight")), N, C, KD);
    matmul_forward(v.data(), ln.data(), param(layer_name(l, "self_attn.v_proj.weight")), N, C, KD);
    rope_forward_at(q.data(), rope_cos_.data(), rope_sin_.data(), pos, R, n, NH, HD);
    rope_forward_at(k.data(), rope_cos_.data(), rope_sin_.data(), pos, R, n, NKV, HD);
    for (int r = 0; r < R; r++) {
      const size_t dst = ((size_t)slot[r] * cache.Tmax + pos[r]) * KD, src = (size_t)r * n * KD;
      std::copy_n(&k[src], (size_t)n * KD, &cache.k[l][dst]);
      std::copy_n(&v[src], (size_t)n * KD, &cache.v[l][dst]);
    }
    attention_cached(att.data(), q.data(), cache.k[l].data(), cache.v[l].data(), slot, pos, R, n,
                     NH, NKV, HD, cache.Tmax);
    matmul_forward(mid.data(), att.data(), param(layer_name(l, "self_attn.o_proj.weight")), N, QD,
                   C);
    add_inplace(mid.data(), x.data(), (size_t)N * C);
    rmsnorm_forward(ln.data(), rstd.data(), mid.data(),
                    param(layer_name(l, "post_attention_layernorm.weight")), N, C, cfg.norm_eps);
    matmul_forward(gate.data(), ln.data(), param(layer_name(l, "mlp.gate_proj.weight")), N, C, F);
    matmul_forward(up.data(), ln.data(), param(layer_name(l, "mlp.up_proj.weight")), N, C, F);
    swiglu_forward(act.data(), gate.data(), up.data(), (size_t)N * F);
    matmul_forward(x.data(), act.data(), param(layer_name(l, "mlp.down_proj.weight")), N, F, C);
    add_inplace(x.data(), mid.data(), (size_t)N * C);
  }
  // Only each row's last new token needs logits.
  std::vector<float> last((size_t)R * C), normed((size_t)R * C);
  for (int r = 0; r < R; r++)
    std::copy_n(&x[((size_t)r * n + n - 1) * C], C, &last[(size_t)r * C]);
  rmsnorm_forward(normed.data(), rstd.data(), last.data(), param("model.norm.weight"), R, C,
                  cfg.norm_eps);
  matmul_forward(logits_out, normed.data(), lm_weight(), R, C, cfg.vocab_size);
}

}  // namespace xwin
