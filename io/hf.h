// Hugging Face interop: a Llama-family model directory (config.json + safetensors, one file or
// shards with model.safetensors.index.json) <-> an xwin model. xwin's parameter names and
// shapes are the HF Llama ones (model/layout.h), so the tensor mapping is the identity; what
// this file maps is the config (config.json keys <-> ModelConfig), the tied LM head, the value
// head (no HF equivalent) and the dtypes.
//
// No weight permutation is needed: HF Llama stores q_proj/k_proj for its "rotate half" RoPE
// (pairs (i, i + head_dim/2)), which is the convention xwin's RoPE kernel uses. (Meta's original
// consolidated.*.pth checkpoints use interleaved pairs and need the permutation HF's
// convert_llama_weights_to_hf.py applies; xwin reads the HF layout only.)
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/llama.h"

namespace xwin::hf {

// config.json -> ModelConfig. Required: vocab_size, hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, max_position_embeddings. Defaults as in transformers'
// LlamaConfig: num_key_value_heads = num_attention_heads, rope_theta 10000, rms_norm_eps 1e-6,
// tie_word_embeddings false. Features xwin lacks (rope_scaling, biases, an activation other than
// silu, a head_dim other than hidden_size / num_attention_heads) are refused. `where` names the
// file in messages.
ModelConfig config_from_json(const nlohmann::json& j, const std::string& where);

// ModelConfig -> a config.json for LlamaForCausalLM (transformers and vLLM load it).
nlohmann::json config_to_json(const ModelConfig& cfg, safetensors::DType dtype, int bos_token_id,
                              int eos_token_id);

// Reads dir into a new model (never a value head). Every tensor is checked for presence, shape
// and a floating-point dtype; tensors a Llama does not have are refused, except those HF itself
// ignores (rotary_emb.inv_freq buffers, lm_head.weight when tied) and xwin's own value_head.*,
// which are skipped with a warning. F32, F16 and BF16 convert exactly to fp32.
Llama import_model(const std::string& dir);

struct ExportOptions {
  safetensors::DType dtype = safetensors::DType::F32;
  size_t max_shard_bytes = 5000000000;  // transformers' default max_shard_size, "5GB"
  bool value_head = false;  // write value_head.weight/bias as extra tensors (else skip, warn)
  std::vector<std::string> tokenizer_files;  // copied into dir (a folder: its tokenizer files)
  int bos_token_id = 1, eos_token_id = 2;
};

// Writes model as an HF model directory: written in dir + ".tmp" and renamed into place. An
// existing dir is replaced only when it is empty or holds a config.json (a previous export).
void export_model(const Llama& model, const std::string& dir, const ExportOptions& opts);

// "5GB", "500MB", "2GiB", "123456" -> bytes (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024,
// as in transformers' max_shard_size). Throws xwin::Error naming `what` on bad input.
size_t parse_size(const std::string& s, const std::string& what);

}  // namespace xwin::hf
