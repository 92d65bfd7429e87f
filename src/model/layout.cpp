#include "model/layout.h"

#include "core/error.h"

namespace xwin {

std::string layer_name(int layer, const char* suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

void Shard::validate(const ModelConfig& c) const {
  auto divides = [&](const char* what, int n, const char* key, int v) {
    require(v % n == 0, "parallel.", what, " = ", n, " does not divide model.", key, " = ", v,
            "; choose a ", what, " size that divides it");
  };
  divides("tp", tp, "n_heads", c.n_heads);
  divides("tp", tp, "d_ff", c.d_ff);
  divides("tp", tp, "vocab_size", c.vocab_size);
  divides("pp", pp, "n_layers", c.n_layers);
  require(c.n_kv_heads % tp == 0 || tp % c.n_kv_heads == 0, "parallel.tp = ", tp,
          " and model.n_kv_heads = ", c.n_kv_heads,
          ": one must divide the other (KV heads are split across the TP group, or replicated "
          "when there are fewer of them than TP ranks)");
}

size_t TensorInfo::logical_index(size_t i) const {
  if (shape.size() == 1) return (size_t)slice_start[0] + i;
  const size_t cols = (size_t)shape[1];
  return ((size_t)slice_start[0] + i / cols) * (size_t)logical_shape[1] + (size_t)slice_start[1] +
         i % cols;
}

ParamLayout::ParamLayout(const ModelConfig& cfg, const Shard& s) : shard(s) {
  s.validate(cfg);
  const int64_t C = cfg.d_model, V = cfg.vocab_size, F = cfg.d_ff, HD = cfg.head_dim();
  const int64_t QD = cfg.n_heads * HD, KD = cfg.n_kv_heads * HD, tp = s.tp, r = s.tp_rank;
  const float std = 0.02f;
  enum Split { None, Rows, Cols };
  // Adds this rank's block of a logical [rows, cols] tensor (or [n]).
  auto add = [&](const std::string& name, std::vector<int64_t> logical, Split split, float init_std,
                 bool one = false) {
    TensorInfo t;
    t.name = name;
    t.logical_shape = logical;
    t.shape = logical;
    t.slice_start.assign(logical.size(), 0);
    if (split != None) {
      const int d = split == Rows ? 0 : 1;
      t.shape[d] = logical[d] / tp;
      t.slice_start[d] = r * t.shape[d];
    } else {
      t.norm_owner = r == 0;
    }
    t.numel = 1;
    for (int64_t d : t.shape) t.numel *= d;
    t.offset = total;
    t.decay = t.shape.size() >= 2;
    t.init_std = init_std;
    t.init_one = one;
    total += t.numel;
    index_.emplace(t.name, tensors.size());
    tensors.push_back(t);
  };
  // Replicated KV heads: the rank keeps the head its query heads use.
  auto add_kv = [&](const std::string& name) {
    if (s.kv_split(cfg)) return add(name, {KD, C}, Rows, std);
    add(name, {KD, C}, None, std);
    TensorInfo& t = tensors.back();
    const int64_t share = tp / cfg.n_kv_heads;  // ranks per KV head
    total -= t.numel;
    t.shape = {HD, C};
    t.numel = (size_t)(HD * C);
    t.slice_start = {(r / share) * HD, 0};
    t.norm_owner = r % share == 0;
    total += t.numel;
  };
  if (s.first_stage()) add("model.embed_tokens.weight", {V, C}, Rows, std);
  for (int l = s.layer_begin(cfg); l < s.layer_end(cfg); l++) {
    add(layer_name(l, "input_layernorm.weight"), {C}, None, 0, true);
    add(layer_name(l, "self_attn.q_proj.weight"), {QD, C}, Rows, std);
    add_kv(layer_name(l, "self_attn.k_proj.weight"));
    add_kv(layer_name(l, "self_attn.v_proj.weight"));
    add(layer_name(l, "self_attn.o_proj.weight"), {C, QD}, Cols, std);
    add(layer_name(l, "post_attention_layernorm.weight"), {C}, None, 0, true);
    add(layer_name(l, "mlp.gate_proj.weight"), {F, C}, Rows, std);
    add(layer_name(l, "mlp.up_proj.weight"), {F, C}, Rows, std);
    add(layer_name(l, "mlp.down_proj.weight"), {C, F}, Cols, std);
  }
  if (!s.last_stage()) return;
  add("model.norm.weight", {C}, None, 0, true);
  if (!cfg.tie_embeddings) {
    add("lm_head.weight", {V, C}, Rows, std);
  } else if (!s.first_stage()) {
    add("model.embed_tokens.weight", {V, C}, Rows, std);
    tensors.back().norm_owner = false;  // the first stage's copy counts
  }
  if (cfg.value_head) {
    add("value_head.weight", {1, C}, None, std);
    add("value_head.bias", {1}, None, 0);
  }
}

const TensorInfo* ParamLayout::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors[it->second];
}

const TensorInfo& ParamLayout::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  require(t != nullptr, "internal: no parameter named ", name, " on this rank (pipeline stage ",
          shard.pp_rank, " of ", shard.pp, ", tensor shard ", shard.tp_rank, " of ", shard.tp, ")");
  return *t;
}

}  // namespace xwin
