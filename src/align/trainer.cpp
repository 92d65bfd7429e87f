#include "align/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/timer.h"
#include "kernels/cpu/adamw.h"

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
          {"shuffle", shuffle}};
}

double lr_at(const TrainConfig& tc, int64_t s) {
  if (s < tc.warmup_steps) return tc.lr * (double)(s + 1) / (double)tc.warmup_steps;
  const double progress =
      (double)(s - tc.warmup_steps) / (double)std::max<int64_t>(1, tc.steps - tc.warmup_steps);
  return tc.min_lr + 0.5 * (tc.lr - tc.min_lr) * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

Trainer::Trainer(Llama& model, const TrainConfig& tc, const std::string& out_dir,
                 const Grid& grid)
    : m(model.layout.total, 0.f), v(model.layout.total, 0.f), model_(model), tc_(tc),
      out_dir_(out_dir), grid_(grid) {
  tc_.validate();
  require(tc_.batch_size % (tc_.micro_batch_size * grid_.dp_size) == 0, "train.batch_size = ",
          tc_.batch_size, " must be a multiple of train.micro_batch_size x data-parallel ranks = ",
          tc_.micro_batch_size, " x ", grid_.dp_size);
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
  double local_loss = 0;
  int64_t local_tokens = 0;
  std::vector<int32_t> tokens;
  for (const auto& mb : micro) {
    int B = 0, T = 0;
    obj.inputs(mb, tokens, B, T);
    model_.forward(tokens.data(), B, T);
    local_loss += obj.head(model_, mb, scale, true);
    model_.backward(tokens.data());
    local_tokens += (int64_t)B * T;
  }
  st.loss = allreduce_sum(local_loss, grid_.dp);
  st.tokens = allreduce_sum(local_tokens, grid_.dp);
  allreduce_sum(model_.grads.data(), model_.layout.total, grid_.dp);
  require(std::isfinite(st.loss), "loss is ", st.loss, " at step ", s + 1,
          "; lower train.lr or check the data (NaN/Inf stops the run before it corrupts ",
          "the checkpoint)");
  clip_and_update(st, s);
  return st;
}

void Trainer::clip_and_update(StepStats& st, int64_t s) {
  float* g = model_.grads.data();
  st.grad_norm = std::sqrt(cpu::sum_squares(g, model_.layout.total));
  if (tc_.grad_clip > 0 && st.grad_norm > tc_.grad_clip)
    cpu::scale_inplace(g, (float)(tc_.grad_clip / (st.grad_norm + 1e-6)), model_.layout.total);
  st.lr = lr_at(tc_, s);
  for (const auto& t : model_.layout.tensors) {
    cpu::AdamWHyper h{(float)st.lr, (float)tc_.beta1, (float)tc_.beta2, (float)tc_.eps,
                      t.decay ? (float)tc_.weight_decay : 0.f};
    cpu::adamw_update(model_.params.data() + t.offset, g + t.offset, m.data() + t.offset,
                      v.data() + t.offset, t.numel, h, s + 1);
  }
}

void Trainer::resume(const std::string& from) {
  const nlohmann::json want = state.run_config;
  state = load_checkpoint(from, model_, m.data(), v.data());
  for (const char* key : {"batch_size", "seq_len", "seed", "shuffle"})
    if (state.run_config.contains(key) && state.run_config[key] != want[key])
      log0("warning: train.%s was %s in %s and is %s now; the data order differs from the "
           "original run", key, state.run_config[key].dump().c_str(), from.c_str(),
           want[key].dump().c_str());
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
  }
  install_preemption_handlers();
  Timer total;
  const int64_t first = state.step;
  for (int64_t s = state.step; s < tc_.steps; s++) {
    Timer t;
    StepStats st = step(obj, s);
    const double dt = t.seconds();
    state.step = s + 1;
    state.tokens_seen += st.loss_units;
    state.data_cursor = (s + 1) * tc_.batch_size;
    if (grid_.rank == 0) {
      nlohmann::json j = {{"step", s + 1},         {"loss", st.loss},
                          {"grad_norm", st.grad_norm}, {"lr", st.lr},
                          {"tokens", st.tokens},   {"seconds", dt}};
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
           (long long)(s + 1), (long long)tc_.steps, st.loss, st.grad_norm, st.lr,
           st.tokens / dt, format_duration(per_step * (double)(tc_.steps - s - 1)).c_str());
    }
    const bool preempt = allreduce_max(preemption_requested() ? 1 : 0, grid_.world) != 0;
    if (preempt || (ckpt.save_every > 0 && (s + 1) % ckpt.save_every == 0)) {
      if (grid_.rank == 0) {
        ckpts.save(model_, m.data(), v.data(), state, ckpt.keep_last);
        log0("saved %s", ckpts.step_dir(state.step).c_str());
      }
      barrier(grid_.world);
    }
    if (preempt) {
      log0("preempted: checkpoint of step %lld saved; exiting with code %d so the job can "
           "requeue and resume", (long long)state.step, kExitPreempted);
      throw Preempted{(long long)state.step};
    }
  }
  if (grid_.rank == 0) {
    const std::string final_dir = (std::filesystem::path(out_dir_) / "final").string();
    save_checkpoint(final_dir, model_, m.data(), v.data(), state);
    log0("saved %s (step %lld)", final_dir.c_str(), (long long)state.step);
  }
  barrier(grid_.world);
}

}  // namespace xwin
