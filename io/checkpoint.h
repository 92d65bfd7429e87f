// Checkpoints (DESIGN.md). A checkpoint is a directory holding one HDF5 file per (pp, tp) shard
// and an index.json naming the shards and the layout. Each shard stores parameters under their
// HF names in /params, AdamW moments in /optim/m and /optim/v, each dataset with its logical
// shape, the shard's slice of it and a CRC-32 of its bytes (zlib's, so Python can check it);
// the model config, run config, step, tokens seen, data cursor and RNG seed are attributes.
// A checkpoint is written into DIR.tmp and renamed into place when complete.
//
// A run directory keeps its checkpoints as RUN/ckpt/step-NNNNNNNN and a `latest` pointer file,
// written last; RunCheckpoints handles --save-every, --keep-last and --resume.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/llama.h"

namespace xwin {

struct TrainState {
  int64_t step = 0;         // optimizer steps taken
  int64_t tokens_seen = 0;  // loss units (tokens, pairs) consumed
  int64_t data_cursor = 0;  // next global sample index
  uint64_t rng_seed = 0;    // counter-based RNG: the seed and the cursor are the whole state
  nlohmann::json run_config = nlohmann::json::object();
};

// Writes dir atomically (single writer, a model that is whole on this rank: tp = pp = 1).
// m and v (AdamW moments) may be null.
void save_checkpoint(const std::string& dir, const Llama& model, const float* m, const float* v,
                     const TrainState& state);
// Collective over grid.world: data-parallel rank 0 of every (pp, tp) position writes its shard
// shard-ppP-tpT.h5 into DIR.tmp, then rank 0 writes index.json and renames DIR.tmp to DIR.
void save_checkpoint(const std::string& dir, const Llama& model, const float* m, const float* v,
                     const TrainState& state, const Grid& grid);
// Reads the model config recorded in a checkpoint.
ModelConfig checkpoint_config(const std::string& dir);
// Loads parameters (and moments, when m/v are given and present) into model, verifying each
// dataset's shape and checksum; throws naming the file and dataset on the first problem.
// Resharding: the checkpoint may have been written under any (pp, tp) layout; each of this
// rank's tensor blocks is assembled from the stored blocks it overlaps (their logical_shape and
// slice_start attributes). Not collective: every rank reads what it needs.
TrainState load_checkpoint(const std::string& dir, Llama& model, float* m = nullptr,
                           float* v = nullptr);
// Checks every dataset of every shard without loading into a model: "" when sound, else the
// first problem found (file and dataset named).
std::string verify_checkpoint(const std::string& dir);
// Human-readable summary: step, layout, configs, sizes, and checksum status per dataset.
std::string checkpoint_info(const std::string& dir);

class RunCheckpoints {
 public:
  explicit RunCheckpoints(const std::string& run_dir);
  std::string step_dir(int64_t step) const;
  // Complete checkpoints (an index.json, not a .tmp), newest first.
  std::vector<std::string> complete() const;
  // Saves step_dir(state.step), then points `latest` at it, then deletes all but the newest
  // keep_last (0 keeps all). Single writer.
  void save(const Llama& model, const float* m, const float* v, const TrainState& state,
            int keep_last) const;
  // The same, collective over grid.world (sharded models).
  void save(const Llama& model, const float* m, const float* v, const TrainState& state,
            int keep_last, const Grid& grid) const;
  // The checkpoint to resume from: "none" -> "", a path -> that path (verified; throws if
  // damaged), "auto" -> the newest sound one (warning about each damaged one skipped), or ""
  // when there is none.
  std::string resolve(const std::string& resume) const;

 private:
  std::string root_;
  // Points `latest` at step_dir(step), then prunes to keep_last (single writer).
  void point_latest(int64_t step, int keep_last) const;
};

}  // namespace xwin
