// Checkpoints (DESIGN.md): a directory holding one HDF5 file per (pp, tp) shard and an
// index.json naming them. Parameters are stored under their HF names and full logical shapes in
// /params, AdamW moments in /optim/m and /optim/v; the model config and run state are
// attributes. A checkpoint is written into a temporary directory and renamed into place.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/llama.h"

namespace xwin {

struct TrainState {
  int64_t step = 0;         // optimizer steps taken
  int64_t tokens_seen = 0;  // loss tokens consumed
  nlohmann::json run_config = nlohmann::json::object();
};

// Writes dir atomically. m and v (AdamW moments, layout.total floats each) may be null.
void save_checkpoint(const std::string& dir, const Llama& model, const float* m, const float* v,
                     const TrainState& state);

// Reads the model config recorded in a checkpoint.
ModelConfig checkpoint_config(const std::string& dir);
// Loads parameters (and moments, when m/v are given and present) into model, checking that
// every tensor exists with the shape the model expects. Returns the stored state.
TrainState load_checkpoint(const std::string& dir, Llama& model, float* m = nullptr,
                           float* v = nullptr);

}  // namespace xwin
