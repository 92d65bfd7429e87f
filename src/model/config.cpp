#include "model/config.h"

#include "core/error.h"

namespace xwin {

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](const char* key, long v) {
    require(v > 0, where, ": model.", key, " = ", v, " must be positive");
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("d_ff", d_ff);
  positive("max_seq_len", max_seq_len);
  require(d_model % n_heads == 0, where, ": model.d_model = ", d_model,
          " is not divisible by model.n_heads = ", n_heads,
          "; choose n_heads dividing d_model (head_dim = d_model / n_heads)");
  require(n_kv_heads <= n_heads && n_heads % n_kv_heads == 0, where, ": model.n_heads = ", n_heads,
          " is not a multiple of model.n_kv_heads = ", n_kv_heads,
          "; grouped-query attention needs n_kv_heads to divide n_heads");
  require(head_dim() % 2 == 0, where, ": head_dim = d_model / n_heads = ", head_dim(),
          " must be even for rotary embeddings");
  require(norm_eps > 0, where, ": model.norm_eps must be positive");
  require(rope_theta > 0, where, ": model.rope_theta must be positive");
}

nlohmann::json ModelConfig::to_json() const {
  return {{"vocab_size", vocab_size},   {"d_model", d_model},
          {"n_layers", n_layers},       {"n_heads", n_heads},
          {"n_kv_heads", n_kv_heads},   {"d_ff", d_ff},
          {"max_seq_len", max_seq_len}, {"norm_eps", norm_eps},
          {"rope_theta", rope_theta},   {"tie_embeddings", tie_embeddings},
          {"value_head", value_head}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& where) {
  ModelConfig c;
  try {
    c.vocab_size = j.at("vocab_size");
    c.d_model = j.at("d_model");
    c.n_layers = j.at("n_layers");
    c.n_heads = j.at("n_heads");
    c.n_kv_heads = j.at("n_kv_heads");
    c.d_ff = j.at("d_ff");
    c.max_seq_len = j.at("max_seq_len");
    c.norm_eps = j.at("norm_eps");
    c.rope_theta = j.at("rope_theta");
    c.tie_embeddings = j.at("tie_embeddings");
    c.value_head = j.at("value_head");
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": model config is incomplete or malformed (", e.what(),
         "); was this file written by xwin?");
  }
  c.validate(where);
  return c;
}

}  // namespace xwin
