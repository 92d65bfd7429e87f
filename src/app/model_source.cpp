#include "app/model_source.h"

#include <algorithm>

#include "core/rng.h"
#include "io/checkpoint.h"

namespace xwin::cli {

Llama load_or_init(const po::variables_map& vm, const Phase& phase, const std::string& key) {
  const std::string path = vm.count(key) ? vm[key].as<std::string>() : "";
  if (path.empty()) {
    Llama model(model_config(vm));
    model.init_random(vm.count("seed") ? vm["seed"].as<uint64_t>() : 1234);
    return model;
  }
  ModelConfig cfg = checkpoint_config(path);
  if (model_config_given(vm) && !(model_config(vm) == cfg))
    throw UsageError("contradictory options: --" + key + " " + path + " holds the model " +
                     cfg.to_json().dump() + " but [model] options ask for " +
                     model_config(vm).to_json().dump() +
                     "; remove the [model] options or make them match the checkpoint");
  Llama model(cfg);
  load_checkpoint(path, model);
  return model;
}

Llama load_with_value_head(const std::string& path, uint64_t seed) {
  ModelConfig cfg = checkpoint_config(path);
  if (cfg.value_head) {
    Llama model(cfg);
    load_checkpoint(path, model);
    return model;
  }
  Llama base(cfg);
  load_checkpoint(path, base);
  cfg.value_head = true;
  Llama model(cfg);
  for (const auto& t : base.layout.tensors)
    std::copy_n(base.params.data() + t.offset, t.numel, model.param(t.name));
  const TensorInfo& w = model.layout.at("value_head.weight");
  for (size_t i = 0; i < w.numel; i++)
    model.params[w.offset + i] =
        (float)(w.init_std * rng_normal(seed, hash_name(w.name.c_str()), i));
  return model;
}

}  // namespace xwin::cli
