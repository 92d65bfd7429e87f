#include "align/trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "core/runinfo.h"
#include "core/signals.h"
#include "core/timer.h"
#include "kernels/cpu/adamw.h"
#include "parallel/pipeline.h"

namespace xwin {

void TrainConfig::validate() const {
  require(steps > 0, "train.steps = ", steps, " must be positive");
  require(batch_size > 0 && micro_batch_size > 0, "train.batch_size and ",
          "train.micro_batch_size must be positive");
  require(batch_size % micro_batch_size == 0, "train.batch_size = ", batch_size,
          " is not a multiple of train.micro_batch_size = ", micro_batch_size,
          "; gradient accumulation needs whole micro-batches");
  require(seq_len >= 0, "train.seq_len must be >= 0 (0 means model.max_seq_len)");
  require(lr >= 0 && min_lr >= 0 && min_lr <= lr, "need 0 <= train.min_lr <= train.lr (got ",
          min_lr, " and ", lr, ")");
  require(warmup_steps >= 0, "train.warmup_steps must be >= 0");
  require(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
          "train.beta1 and train.beta2 must lie in [0, 1)");
  require(eps > 0, "train.eps must be positive");
  require(grad_clip >= 0, "train.grad_clip must be >= 0 (0 disables clipping)");
  require(log_every > 0, "train.log_every must be positive");
}

nlohmann::json TrainConfig::to_json() const {
  return {{"steps", steps},
          {"batch_size", batch_size},
          {"micro_batch_size", micro_batch_size},
          {"seq_len", seq_len},
          {"lr", lr},
          {"min_lr", min_lr},
          {"warmup_steps", warmup_steps},
          {"weight_decay", weight_decay},
          {"beta1", beta1},
          {"beta2", beta2},
          {"eps", eps},
          {"grad_clip", grad_clip},
          {"seed", seed},
          {"shuffle", shuffle},
          {"zero1", zero1},
          {"overlap_grad_reduce", overlap_grad_reduce}};
}

double lr_at(const TrainConfig& tc, int64_t s) {
  if (s < tc.warmup_steps) return tc.lr * (double)(s + 1) / (double)tc.warmup_steps;
  const double progress =
      (double)(s - tc.warmup_steps) / (double)std::max<int64_t>(1, tc.steps - tc.warmup_steps);
  return tc.min_lr + 0.5 * (tc.lr - tc.min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

Trainer::Trainer(Llama& model, const TrainConfig& tc, const std::string& out_dir, const Grid& grid)
    : model_(model), tc_(tc), out_dir_(out_dir), grid_(grid), dp_(make_mpi_collectives(grid.dp)) {
  tc_.validate();
  const size_t total = model.layout.total;
  shard = tc_.zero1 ? slice_of(total, grid_.dp_rank, grid_.dp_size) : Slice{0, total};
  m.assign(shard.size(), 0.f);
  v.assign(shard.size(), 0.f);
  if (tc_.zero1 && grid_.dp_size > 1)
    log0(
        "ZeRO-1: AdamW moments of %zu of %zu parameters on data-parallel rank 0 (%.1f of %.1f MiB)",
        shard.size(), total, 8.0 * (double)shard.size() / 1048576.0,
        8.0 * (double)total / 1048576.0);
  require(tc_.batch_size % (tc_.micro_batch_size * grid_.dp_size) == 0,
          "train.batch_size = ", tc_.batch_size,
          " must be a multiple of train.micro_batch_size x data-parallel ranks = ",
          tc_.micro_batch_size, " x ", grid_.dp_size);
  require(model.grid.tp_size == grid_.tp_size && model.grid.pp_size == grid_.pp_size,
          "internal: the model was built for tp=", model.grid.tp_size, " pp=", model.grid.pp_size,
          " but the trainer runs tp=", grid_.tp_size, " pp=", grid_.pp_size);
  if (tc_.warmup_steps >= tc_.steps && tc_.steps > 1)
    log0(
        "warning: train.warmup_steps = %lld is not below train.steps = %lld: the learning rate "
        "rises for the whole run and peaks at %.3g instead of train.lr = %.3g",
        (long long)tc_.warmup_steps, (long long)tc_.steps, lr_at(tc_, tc_.steps - 1), tc_.lr);
  state.run_config = tc_.to_json();
  state.rng_seed = tc_.seed;
}

StepStats Trainer::step(Objective& obj, int64_t s) {
  StepStats st;
  model_.zero_grad();
  // The global batch is samples [s*B, (s+1)*B); data-parallel rank r takes the r-th slice of
  // its micro-batches. The mean is over the loss units of the whole global batch.
  const int n_local = tc_.batch_size / tc_.micro_batch_size / grid_.dp_size;
  std::vector<std::vector<int64_t>> micro(n_local);
  for (int i = 0; i < n_local; i++)
    for (int j = 0; j < tc_.micro_batch_size; j++)
      micro[i].push_back(s * tc_.batch_size +
                         ((int64_t)grid_.dp_rank * n_local + i) * tc_.micro_batch_size + j);
  int64_t local_units = 0;
  for (const auto& mb : micro) local_units += obj.count(mb);
  st.loss_units = allreduce_sum(local_units, grid_.dp);
  const double scale = st.loss_units > 0 ? 1.0 / (double)st.loss_units : 0.0;
  // The schedule owns forward and backward: inputs() right before a micro-batch's input
  // arrives, head() right after its forward on the last stage (with one stage: the plain
  // forward, head, backward loop).
  double local_loss = 0;
  int64_t local_tokens = 0;
  std::vector<std::vector<int32_t>> tokens(n_local);
  std::vector<int> Bs(n_local), Ts(n_local);
  const int slots = pipeline_slots(grid_.pp, n_local);
  PipelineStage stage;
  stage.prepare = [&](int i) {
    obj.inputs(micro[i], tokens[i], Bs[i], Ts[i]);
    local_tokens += (int64_t)Bs[i] * Ts[i];
    return (size_t)Bs[i] * Ts[i] * model_.cfg.d_model;
  };
  stage.forward = [&](int i, const float* x) {
    const float* y = model_.forward_stage(tokens[i].data(), x, Bs[i], Ts[i], i % slots);
    if (grid_.last_stage()) local_loss += obj.head(model_, micro[i], scale, true);
    return y;
  };
  // Data-parallel gradient sum in buckets (the head, each layer, the embedding), started as
  // the last micro-batch's backward completes them.
  const bool overlap = tc_.overlap_grad_reduce && grid_.dp_size > 1;
  stage.backward = [&](int i, const float* dy) {
    if (i + 1 == n_local && overlap)
      model_.on_grads_ready = [&](size_t off, size_t n) {
        dp_->start_allreduce_sum(model_.grads.data() + off, n);
      };
    return model_.backward_stage(tokens[i].data(), dy, i % slots);
  };
  pipeline_1f1b(grid_.pp, n_local, stage);
  model_.on_grads_ready = nullptr;
  if (overlap)
    dp_->wait();
  else
    dp_->allreduce_sum(model_.grads.data(), model_.layout.total);
  model_.allreduce_shared_grads();
  // One copy of each replica's loss and token count: the last stage's first TP rank.
  const bool counts = grid_.last_stage() && grid_.tp_rank == 0;
  st.loss = allreduce_sum(counts ? local_loss : 0.0, grid_.world);
  st.tokens = allreduce_sum(counts ? local_tokens : (int64_t)0, grid_.world);
  require(std::isfinite(st.loss), "loss is ", st.loss, " at step ", s + 1,
          "; lower train.lr or check the data (NaN/Inf stops the run before it corrupts ",
          "the checkpoint)");
  clip_and_update(st, s);
  return st;
}

// The global gradient norm: each rank sums the squares of the elements it owns (one copy of
// every replicated weight counts), then the model-parallel group adds them up.
static double grad_sum_squares(const Llama& model) {
  bool all_owned = true;
  for (const auto& t : model.layout.tensors) all_owned &= t.norm_owner;
  if (all_owned) return cpu::sum_squares(model.grads.data(), model.layout.total);
  double sum = 0;
  for (const auto& t : model.layout.tensors)
    if (t.norm_owner) sum += cpu::sum_squares(model.grads.data() + t.offset, t.numel);
  return sum;
}

void Trainer::clip_and_update(StepStats& st, int64_t s) {
  float* g = model_.grads.data();
  st.grad_norm = std::sqrt(allreduce_sum(grad_sum_squares(model_), grid_.mp));
  if (tc_.grad_clip > 0 && st.grad_norm > tc_.grad_clip)
    cpu::scale_inplace(g, (float)(tc_.grad_clip / (st.grad_norm + 1e-6)), model_.layout.total);
  st.lr = lr_at(tc_, s);
  // Each tensor's part inside this rank's slice (all of it without ZeRO-1): AdamW is
  // element-wise, so the slices together take exactly the unsharded update.
  for (const auto& t : model_.layout.tensors) {
    const size_t lo = std::max(shard.lo, t.offset), hi = std::min(shard.hi, t.offset + t.numel);
    if (lo >= hi) continue;
    cpu::AdamWHyper h{(float)st.lr, (float)tc_.beta1, (float)tc_.beta2, (float)tc_.eps,
                      t.decay ? (float)tc_.weight_decay : 0.f};
    cpu::adamw_update(model_.params.data() + lo, g + lo, m.data() + (lo - shard.lo),
                      v.data() + (lo - shard.lo), hi - lo, h, s + 1);
  }
  if (sharded()) allgather_slices(model_.params.data(), model_.layout.total, grid_.dp);
}

std::pair<const float*, const float*> Trainer::whole_moments(std::vector<float>& full_m,
                                                             std::vector<float>& full_v) const {
  if (!sharded()) return {m.data(), v.data()};
  if (grid_.dp_rank == 0) {
    full_m.resize(model_.layout.total);
    full_v.resize(model_.layout.total);
  }
  gather_slices(m.data(), full_m.data(), model_.layout.total, grid_.dp);
  gather_slices(v.data(), full_v.data(), model_.layout.total, grid_.dp);
  return {full_m.data(), full_v.data()};
}

void Trainer::save(const RunCheckpoints* ckpts, const std::string& dir, int keep_last) {
  std::vector<float> full_m, full_v;
  const auto [mm, vv] = whole_moments(full_m, full_v);
  if (ckpts)
    ckpts->save(model_, mm, vv, state, keep_last, grid_);
  else
    save_checkpoint(dir, model_, mm, vv, state, grid_);
}

void Trainer::resume(const std::string& from) {
  const nlohmann::json want = state.run_config;
  if (sharded()) {  // every rank reads the whole moments and keeps its slice
    std::vector<float> full_m(model_.layout.total), full_v(model_.layout.total);
    state = load_checkpoint(from, model_, full_m.data(), full_v.data());
    std::copy(full_m.begin() + shard.lo, full_m.begin() + shard.hi, m.begin());
    std::copy(full_v.begin() + shard.lo, full_v.begin() + shard.hi, v.begin());
  } else {
    state = load_checkpoint(from, model_, m.data(), v.data());
  }
  for (const char* key : {"batch_size", "seq_len", "seed", "shuffle"})
    if (state.run_config.contains(key) && state.run_config[key] != want[key])
      log0(
          "warning: train.%s was %s in %s and is %s now; the data order differs from the "
          "original run",
          key, state.run_config[key].dump().c_str(), from.c_str(), want[key].dump().c_str());
  state.run_config = want;
  log0("resumed from %s at step %lld", from.c_str(), (long long)state.step);
}

// metrics.jsonl keeps the lines of steps up to the resumed step; later ones were lost with the
// interrupted run and are written again.
void Trainer::truncate_metrics() const {
  const std::filesystem::path path = std::filesystem::path(out_dir_) / "metrics.jsonl";
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).at("step").get<int64_t>() <= state.step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
      break;  // a torn last line from a killed run
    }
  }
  in.close();
  std::ofstream out(path.string() + ".tmp", std::ios::trunc);
  out << kept;
  out.close();
  std::filesystem::rename(path.string() + ".tmp", path);
}

// OUT/run.json gets one entry per start of the run (a resumed or requeued job adds one): where it
// ran (Slurm job, array task, nodes; core/runinfo.h), on which layout, from which step.
static void record_run(const std::string& out_dir, int64_t start_step, const Grid& grid) {
  const std::filesystem::path path = std::filesystem::path(out_dir) / "run.json";
  nlohmann::json doc = {{"runs", nlohmann::json::array()}};
  if (std::ifstream in(path); in) {
    const nlohmann::json old = nlohmann::json::parse(in, nullptr, false);
    if (old.is_object() && old.contains("runs") && old["runs"].is_array()) doc = old;
  }
  nlohmann::json run = run_info();
  run["start_step"] = start_step;
  run["layout"] = {
      {"ranks", grid.size}, {"dp", grid.dp_size}, {"tp", grid.tp_size}, {"pp", grid.pp_size}};
  doc["runs"].push_back(run);
  std::ofstream out(path.string() + ".tmp", std::ios::trunc);
  out << doc.dump(2) << "\n";
  out.close();
  require(out.good(), path.string(), ".tmp: cannot write the run metadata");
  std::filesystem::rename(path.string() + ".tmp", path);
  if (!run["slurm"].is_null()) log0("slurm: %s", run["slurm"].dump().c_str());
}

void Trainer::fit(Objective& obj, const CheckpointOptions& ckpt) {
  std::filesystem::create_directories(out_dir_);
  RunCheckpoints ckpts(out_dir_);
  const std::string from = ckpts.resolve(ckpt.resume);
  if (!from.empty()) resume(from);
  std::ofstream metrics;
  if (grid_.rank == 0) {
    truncate_metrics();
    metrics.open(std::filesystem::path(out_dir_) / "metrics.jsonl", std::ios::app);
    require(metrics.good(), out_dir_, "/metrics.jsonl: cannot open for writing");
    record_run(out_dir_, state.step, grid_);
  }
  install_preemption_handlers();
  Timer total;
  const int64_t first = state.step;
  for (int64_t s = state.step; s < tc_.steps; s++) {
    Timer t;
    reset_comm_seconds();
    StepStats st = step(obj, s);
    const double comm = comm_seconds();
    const double dt = t.seconds();
    state.step = s + 1;
    state.tokens_seen += st.loss_units;
    state.data_cursor = (s + 1) * tc_.batch_size;
    if (grid_.rank == 0) {
      nlohmann::json j = {{"step", s + 1},       {"loss", st.loss},     {"grad_norm", st.grad_norm},
                          {"lr", st.lr},         {"tokens", st.tokens}, {"seconds", dt},
                          {"comm_seconds", comm}};
      metrics << j.dump() << "\n" << std::flush;
    }
    if (evaluate && eval_every > 0 && ((s + 1) % eval_every == 0 || s + 1 == tc_.steps)) {
      const nlohmann::json e = evaluate();
      if (grid_.rank == 0) metrics << nlohmann::json{{"step", s + 1}, {"eval", e}}.dump() << "\n";
      log0("eval @ step %lld: %s", (long long)(s + 1), e.dump().c_str());
    }
    if ((s + 1) % tc_.log_every == 0 || s + 1 == tc_.steps) {
      const double per_step = total.seconds() / (double)(s + 1 - first);
      log0("step %6lld/%lld | loss %.6f | grad norm %.4f | lr %.3e | %.0f tok/s | ETA %s",
           (long long)(s + 1), (long long)tc_.steps, st.loss, st.grad_norm, st.lr, st.tokens / dt,
           format_duration(per_step * (double)(tc_.steps - s - 1)).c_str());
    }
    const bool preempt = allreduce_max(preemption_requested() ? 1 : 0, grid_.world) != 0;
    if (preempt || (ckpt.save_every > 0 && (s + 1) % ckpt.save_every == 0)) {
      save(&ckpts, "", ckpt.keep_last);
      log0("saved %s", ckpts.step_dir(state.step).c_str());
    }
    if (preempt) {
      log0(
          "preempted: checkpoint of step %lld saved; exiting with code %d so the job can "
          "requeue and resume",
          (long long)state.step, kExitPreempted);
      throw Preempted{(long long)state.step};
    }
  }
  const std::string final_dir = (std::filesystem::path(out_dir_) / "final").string();
  save(nullptr, final_dir, 0);
  log0("saved %s (step %lld)", final_dir.c_str(), (long long)state.step);
}

}  // namespace xwin
