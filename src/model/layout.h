// Where every parameter lives in the flat buffer. Tensors carry their HF Llama name and logical
// shape (the checkpoint and import/export use these names). Order is layer-major: embedding,
// then each layer's tensors contiguously, then the final norm and heads, so a pipeline stage
// owns one contiguous range.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace xwin {

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;
  size_t numel = 0;
  bool decay = false;  // weight decay applies (matrices), not to norms and biases
  float init_std = 0;  // 0 with init_one: ones (norm weights); 0 otherwise: zeros
  bool init_one = false;
};

struct ParamLayout {
  std::vector<TensorInfo> tensors;
  size_t total = 0;

  explicit ParamLayout(const ModelConfig& cfg);
  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& at(const std::string& name) const;
};

std::string layer_name(int layer, const char* suffix);

}  // namespace xwin
