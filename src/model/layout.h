// Where every parameter lives in the flat buffer. Tensors carry their HF Llama name and logical
// shape (the checkpoint and import/export use these names). Order is layer-major: embedding,
// then each layer's tensors contiguously, then the final norm and heads, so a pipeline stage
// owns one contiguous range.
//
// Under model parallelism (a Shard other than 1 x 1) the layout holds only this rank's part,
// Megatron style: a pipeline stage keeps its layers (the embedding on the first stage, the
// final norm and heads on the last; with tied embeddings and several stages the last stage
// keeps a copy of the embedding as its LM head), and tensor parallelism splits
//   along dim 0 (column-parallel): q, k, v, gate, up, and the vocabulary of embedding/LM head;
//   along dim 1 (row-parallel): o_proj, down_proj;
// norms and the value head are replicated. GQA key/value heads are split when tp divides
// n_kv_heads, else replicated (each rank keeps the one KV head its query heads use).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/config.h"

namespace xwin {

// This rank's position in the model-parallel grid (no MPI here: just the coordinates).
struct Shard {
  int tp_rank = 0, tp = 1, pp_rank = 0, pp = 1;

  bool first_stage() const { return pp_rank == 0; }
  bool last_stage() const { return pp_rank == pp - 1; }
  int layer_begin(const ModelConfig& c) const { return pp_rank * (c.n_layers / pp); }
  int layer_end(const ModelConfig& c) const { return (pp_rank + 1) * (c.n_layers / pp); }
  // KV heads split across the TP group (else replicated: tp / n_kv_heads ranks share one).
  bool kv_split(const ModelConfig& c) const { return c.n_kv_heads % tp == 0; }
  // Throws xwin::Error naming the sizes that tp / pp must divide and the fix.
  void validate(const ModelConfig& c) const;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // this shard's block
  size_t offset = 0;
  size_t numel = 0;
  bool decay = false;  // weight decay applies (matrices), not to norms and biases
  float init_std = 0;  // 0 with init_one: ones (norm weights); 0 otherwise: zeros
  bool init_one = false;
  std::vector<int64_t> logical_shape;  // the whole tensor
  std::vector<int64_t> slice_start;    // where the block starts in it
  // This rank's copy counts toward the global gradient norm (one copy of each element does).
  bool norm_owner = true;
  // Index of a logical element, from the index of an element of the block.
  size_t logical_index(size_t i) const;
};

struct ParamLayout {
  std::vector<TensorInfo> tensors;
  size_t total = 0;
  Shard shard;

  explicit ParamLayout(const ModelConfig& cfg, const Shard& shard = {});
  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& at(const std::string& name) const;

 private:
  // name -> position in tensors: the forward/backward passes look tensors up by name per layer.
  std::unordered_map<std::string, size_t> index_;
};

std::string layer_name(int layer, const char* suffix);

}  // namespace xwin
