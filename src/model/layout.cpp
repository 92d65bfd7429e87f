#include "model/layout.h"

#include "core/error.h"

namespace xwin {

std::string layer_name(int layer, const char* suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

ParamLayout::ParamLayout(const ModelConfig& cfg) {
  const int64_t C = cfg.d_model, V = cfg.vocab_size, F = cfg.d_ff, HD = cfg.head_dim();
  const int64_t QD = cfg.n_heads * HD, KD = cfg.n_kv_heads * HD;
  const float std = 0.02f;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float init_std,
                 bool one = false) {
    TensorInfo t;
    t.name = name;
    t.shape = std::move(shape);
    t.numel = 1;
    for (int64_t d : t.shape) t.numel *= d;
    t.offset = total;
    t.decay = t.shape.size() >= 2;
    t.init_std = init_std;
    t.init_one = one;
    total += t.numel;
    tensors.push_back(t);
  };
  add("model.embed_tokens.weight", {V, C}, std);
  for (int l = 0; l < cfg.n_layers; l++) {
    add(layer_name(l, "input_layernorm.weight"), {C}, 0, true);
    add(layer_name(l, "self_attn.q_proj.weight"), {QD, C}, std);
    add(layer_name(l, "self_attn.k_proj.weight"), {KD, C}, std);
    add(layer_name(l, "self_attn.v_proj.weight"), {KD, C}, std);
    add(layer_name(l, "self_attn.o_proj.weight"), {C, QD}, std);
    add(layer_name(l, "post_attention_layernorm.weight"), {C}, 0, true);
    add(layer_name(l, "mlp.gate_proj.weight"), {F, C}, std);
    add(layer_name(l, "mlp.up_proj.weight"), {F, C}, std);
    add(layer_name(l, "mlp.down_proj.weight"), {C, F}, std);
  }
  add("model.norm.weight", {C}, 0, true);
  if (!cfg.tie_embeddings) add("lm_head.weight", {V, C}, std);
  if (cfg.value_head) {
    add("value_head.weight", {1, C}, std);
    add("value_head.bias", {1}, 0);
  }
}

const TensorInfo* ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& ParamLayout::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  require(t != nullptr, "internal: no parameter named ", name);
  return *t;
}

}  // namespace xwin
