// Model hyper-parameters. Stored as a JSON attribute in every checkpoint shard, so a file says
// what model it holds and a mismatch with the deck is caught on load.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace xwin {

struct ModelConfig {
  int vocab_size = 32000;
  int d_model = 4096;
  int n_layers = 32;
  int n_heads = 32;
  int n_kv_heads = 32;
  int d_ff = 11008;
  int max_seq_len = 4096;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.f;
  bool tie_embeddings = false;
  bool value_head = false;

  int head_dim() const { return d_model / n_heads; }
  // Throws xwin::Error naming the inconsistent sizes and the fix; `where` names the source.
  void validate(const std::string& where) const;
  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j, const std::string& where);
  bool operator==(const ModelConfig& o) const { return to_json() == o.to_json(); }
};

}  // namespace xwin
