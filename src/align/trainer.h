// The training loop shared by every phase (sft, rm, rs, dpo): micro-batches with gradient
// accumulation, global-norm clipping, AdamW with warmup + cosine, a log line per step, a
// metrics.jsonl file, and the final checkpoint. A phase supplies only its Objective.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/checkpoint.h"
#include "model/llama.h"
#include "parallel/collectives.h"
#include "parallel/grid.h"

namespace xwin {

struct TrainConfig {
  int64_t steps = 100;
  int batch_size = 8;        // sequences per optimizer step (global)
  int micro_batch_size = 8;  // sequences per forward/backward
  int seq_len = 0;           // 0: model.max_seq_len
  double lr = 3e-4, min_lr = 3e-5;
  int64_t warmup_steps = 10;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0;
  uint64_t seed = 1234;
  bool shuffle = true;
  int log_every = 1;
  // ZeRO-1: AdamW's moments are split across the data-parallel ranks; each rank updates its
  // slice of the parameters and the slices are all-gathered. Same result, bit for bit.
  bool zero1 = false;
  // Start each gradient bucket's data-parallel sum as soon as the backward pass completes it
  // (false: one blocking sum after the backward pass; for measuring the overlap).
  bool overlap_grad_reduce = true;

  void validate() const;
  nlohmann::json to_json() const;
};

// Learning rate for the step with 0-based index `step`: linear warmup to lr over warmup_steps,
// then cosine decay to min_lr at the last step.
double lr_at(const TrainConfig& tc, int64_t step);

// What a phase optimises, split so that the trainer (and, under pipeline parallelism, its
// schedule) owns the model's forward and backward passes: the objective says which token rows
// a set of samples becomes, and what loss the head computes on their final hidden states.
// Samples are global sample indices.
class Objective {
 public:
  virtual ~Objective() = default;
  // Number of loss units (tokens, pairs) in these samples: the normaliser of the step's mean.
  virtual int64_t count(const std::vector<int64_t>& samples) = 0;
  // The token rows [B, T] these samples feed to the model.
  virtual void inputs(const std::vector<int64_t>& samples, std::vector<int32_t>& tokens, int& B,
                      int& T) = 0;
  // The loss on the model's last forward of inputs(samples), every unit weighted by `scale`.
  // With grad, writes model.dhidden() (and head gradients, e.g. LM or value head) so that
  // model.backward() completes the gradient.
  virtual double head(Llama& model, const std::vector<int64_t>& samples, double scale,
                      bool grad) = 0;
};

// --save-every, --keep-last, --resume (see io/checkpoint.h).
struct CheckpointOptions {
  int64_t save_every = 0;       // 0: only the final checkpoint
  int keep_last = 0;            // 0: keep every step checkpoint
  std::string resume = "auto";  // auto | none | PATH
};

struct StepStats {
  double loss = 0, grad_norm = 0, lr = 0;
  int64_t tokens = 0, loss_units = 0;
};

class Trainer {
 public:
  Trainer(Llama& model, const TrainConfig& tc, const std::string& out_dir,
          const Grid& grid = Grid::from_world());
  // Resumes as ckpt.resume says, runs steps [state.step, tc.steps) with step checkpoints in
  // out_dir/ckpt, and writes out_dir/final. On SIGUSR1/SIGTERM: checkpoint, throw Preempted.
  void fit(Objective& obj, const CheckpointOptions& ckpt = {});
  StepStats step(Objective& obj, int64_t step_index);

  TrainState state;
  // AdamW moments of this rank's slice of the parameters: all of them, or under ZeRO-1 the
  // range `shard` of the flat parameter buffer.
  std::vector<float> m, v;
  Slice shard;
  // Held-out evaluation every eval_every steps (and after the last): its JSON result goes to
  // the log and to metrics.jsonl as {"step": s, "eval": {...}}. Called on every rank.
  std::function<nlohmann::json()> evaluate;
  int64_t eval_every = 0;

 private:
  Llama& model_;
  TrainConfig tc_;
  std::string out_dir_;
  Grid grid_;
  std::unique_ptr<Collectives> dp_;  // the data-parallel group's collectives
  void clip_and_update(StepStats& s, int64_t step_index);
  void resume(const std::string& from);
  void truncate_metrics() const;
  bool sharded() const { return shard.size() != model_.layout.total; }
  // The whole moments for a checkpoint: m and v themselves, or under ZeRO-1 gathered into
  // full_m/full_v on data-parallel rank 0 (the rank that writes; null elsewhere).
  std::pair<const float*, const float*> whole_moments(std::vector<float>& full_m,
                                                      std::vector<float>& full_v) const;
  void save(const RunCheckpoints* ckpts, const std::string& dir, int keep_last);
};

}  // namespace xwin
