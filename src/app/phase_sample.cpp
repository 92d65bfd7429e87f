// xwin sample: the Xwin-Set. For every prompt, draw --num_samples unique responses from the
// policy (duplicates by token sequence are re-drawn up to a budget; --unique false keeps them:
// K independent draws, as best-of-N takes them), score each with the reward
// model, and write prompt, K responses, RM scores, policy log-prob sums and lengths. Prompts go
// in chunks; chunk c is drawn by data-parallel group c mod dp and written to OUT.parts/ as soon
// as it is done, so a restarted run skips finished chunks; rank 0 merges the parts at the end.
// Inside a group the policy and the RM are split over its TP and PP ranks, which decode in
// lock step (every rank sees the whole logits and draws the same tokens); the group's first
// rank writes its parts. Draws depend on (seed, prompt, attempt, position) only, so the set
// does not depend on the layout. SIGUSR1 or SIGTERM (Slurm preemption, the time limit) stops
// each group before its next chunk; the finished parts stay and the command exits with
// kExitPreempted (75) so the job can requeue and resume.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "align/rm_objective.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/timer.h"
#include "generate/generator.h"
#include "io/checkpoint.h"
#include "io/datasets.h"
#include "parallel/grid.h"
#include "parallel/pipeline.h"

namespace xwin::cli {

namespace fs = std::filesystem;

struct SampledChunk {
  TokenDataset prompts, responses;
  std::vector<float> scores, logp, lengths, duplicates;
};

// Responses for the prompts [p0, p1). unique: rounds of generation until each prompt has K
// distinct ones or has used its budget of draws; otherwise K independent draws, duplicates kept
// (best-of-N). Sample ids are (prompt, attempt) pairs.
static void draw_responses(Generator& gen, const TokenDataset& prompts, size_t p0, size_t p1, int K,
                           int budget, bool unique, std::vector<std::vector<GenOutput>>& out,
                           std::vector<int>& dups) {
  const size_t n = p1 - p0;
  out.assign(n, {});
  dups.assign(n, 0);
  std::vector<std::set<std::vector<int32_t>>> seen(n);
  std::vector<int> attempts(n, 0);
  while (true) {
    std::vector<GenRequest> reqs;
    std::vector<size_t> owner;
    for (size_t i = 0; i < n; i++) {
      const int missing = K - (int)out[i].size();
      for (int j = 0; j < missing && attempts[i] < budget; j++, attempts[i]++) {
        GenRequest r;
        r.prompt.assign(prompts.tokens.begin() + prompts.offsets[p0 + i],
                        prompts.tokens.begin() + prompts.offsets[p0 + i + 1]);
        r.sample_id = ((uint64_t)(p0 + i) << 24) + (uint64_t)attempts[i];
        reqs.push_back(std::move(r));
        owner.push_back(i);
      }
    }
    if (reqs.empty()) break;
    std::vector<GenOutput> res(reqs.size());
    gen.run(reqs, [&](size_t i, GenOutput&& o) { res[i] = std::move(o); });
    for (size_t j = 0; j < res.size(); j++) {  // request order: deterministic acceptance
      const size_t i = owner[j];
      const bool fresh = seen[i].insert(res[j].tokens).second;
      if (!fresh) dups[i]++;  // re-drawn if unique, kept otherwise
      if ((int)out[i].size() < K && (fresh || !unique)) out[i].push_back(std::move(res[j]));
    }
  }
  for (size_t i = 0; i < n; i++) {
    require(!out[i].empty(), "sample: prompt ", p0 + i, " produced no response");
    for (size_t k = 0; out[i].size() < (size_t)K; k++) out[i].push_back(out[i][k]);  // budget spent
  }
}

static SampledChunk sample_chunk(Generator& gen, Llama* rm, const TokenDataset& prompts, size_t p0,
                                 size_t p1, int K, int budget, bool unique, int score_batch) {
  std::vector<std::vector<GenOutput>> resp;
  std::vector<int> dups;
  draw_responses(gen, prompts, p0, p1, K, budget, unique, resp, dups);
  SampledChunk c;
  std::vector<PreferenceGroup> groups(p1 - p0);
  size_t longest = 0;
  for (size_t i = 0; i < p1 - p0; i++) {
    std::vector<int32_t> pr(prompts.tokens.begin() + prompts.offsets[p0 + i],
                            prompts.tokens.begin() + prompts.offsets[p0 + i + 1]);
    c.prompts.append(pr, {});
    c.duplicates.push_back((float)dups[i]);
    for (const GenOutput& o : resp[i]) {
      c.responses.append(o.tokens, {});
      double lp = 0;
      for (float x : o.logp) lp += x;
      c.logp.push_back((float)lp);
      c.lengths.push_back((float)o.tokens.size());
      std::vector<int32_t> seq(pr);
      seq.insert(seq.end(), o.tokens.begin(), o.tokens.end());
      longest = std::max(longest, seq.size());
      groups[i].sequences.push_back(std::move(seq));
    }
  }
  if (!rm) {  // no reward model: unscored (e.g. pairs for an annotator to judge)
    c.scores.assign(c.logp.size(), 0.f);
    return c;
  }
  // Score batches are the micro-batches of a forward-only pipeline over the RM's stages (one
  // plain forward each without pipeline parallelism); the last stage reads the rewards off and
  // passes them to the other stages, so every rank of the group holds the same chunk.
  const int T = (int)std::min<size_t>(longest, rm->cfg.max_seq_len);
  RmObjective scorer(std::move(groups), T, false, 0, 0.0);
  const int per = std::max(1, score_batch / K);
  std::vector<std::vector<int64_t>> batches;
  for (size_t s0 = 0; s0 < p1 - p0; s0 += per) {
    batches.emplace_back();
    for (size_t s = s0; s < std::min(p1 - p0, s0 + per); s++) batches.back().push_back((int64_t)s);
  }
  const Grid& grid = rm->grid;
  std::vector<int32_t> tokens;
  int B = 0, TT = 0;
  PipelineStage stage;
  stage.prepare = [&](int i) {
    scorer.inputs(batches[i], tokens, B, TT);
    return (size_t)B * TT * rm->cfg.d_model;
  };
  stage.forward = [&](int i, const float* x) {
    const float* y = rm->forward_stage(tokens.data(), x, B, TT, 0);
    if (grid.last_stage())
      for (double r : scorer.rewards(*rm, batches[i])) c.scores.push_back((float)r);
    return y;
  };
  pipeline_forward(grid.pp, (int)batches.size(), stage);
  c.scores.resize(c.logp.size());
  if (grid.pp_size > 1) broadcast(c.scores.data(), c.scores.size(), grid.pp_size - 1, grid.pp);
  return c;
}

static void write_xwin_set(const std::string& path, const SampledChunk& c, int K,
                           const DatasetInfo& from, MPI_Comm comm) {
  DatasetWriter w(path, comm);
  w.ragged("prompt", c.prompts, false);
  w.ragged("responses", c.responses, false);
  w.rows("scores", c.scores, K);
  w.rows("policy_logp", c.logp, K);
  w.rows("lengths", c.lengths, K);
  w.rows("duplicates", c.duplicates);
  w.attr("K", K);
  DatasetInfo info = from;
  info.schema = kSchemaXwinSet;
  info.n_kept = (int64_t)c.prompts.size(), info.n_truncated = 0, info.n_dropped = 0;
  w.info(info);
  w.commit();
}

static SampledChunk read_part(const std::string& path) {
  XwinSetDataset d = XwinSetDataset::load(path);
  h5::File f(path, 'r');
  SampledChunk c{d.prompt,
                 d.responses,
                 d.scores,
                 f.read_all<float>("/policy_logp"),
                 f.read_all<float>("/lengths"),
                 f.read_all<float>("/duplicates")};
  return c;
}

static void append(SampledChunk& a, const SampledChunk& b) {
  for (size_t i = 0; i < b.prompts.size(); i++)
    a.prompts.append({b.prompts.tokens.begin() + b.prompts.offsets[i],
                      b.prompts.tokens.begin() + b.prompts.offsets[i + 1]},
                     {});
  for (size_t i = 0; i < b.responses.size(); i++)
    a.responses.append({b.responses.tokens.begin() + b.responses.offsets[i],
                        b.responses.tokens.begin() + b.responses.offsets[i + 1]},
                       {});
  for (auto [x, y] : {std::pair{&a.scores, &b.scores},
                      {&a.logp, &b.logp},
                      {&a.lengths, &b.lengths},
                      {&a.duplicates, &b.duplicates}})
    x->insert(x->end(), y->begin(), y->end());
}

Phase phase_sample() {
  Phase p;
  p.name = "sample";
  p.summary = "sample K unique responses per prompt and score them with the RM (the Xwin-Set)";
  p.details =
      "Writes the Xwin-Set: /prompt, /responses (P*K), /scores [P,K] (RM), /policy_logp [P,K]\n"
      "(sum of the policy's log-probs), /lengths [P,K], /duplicates [P] (duplicate draws:\n"
      "re-drawn, or kept with --unique false).\n"
      "Finished chunks live in OUT.parts/ until the merge, so a restart skips them.\n"
      "SIGUSR1 or SIGTERM (Slurm preemption or time limit) stops before the next chunk and\n"
      "exits with 75 (requeue and rerun to resume): keep a chunk shorter than the lead time.";
  p.add_options = [](po::options_description& d) {
    d.add_options()("prompts", po::value<std::string>(), "prompts dataset (required)")(
        "policy", po::value<std::string>(), "policy checkpoint to sample from (required)")(
        "rm", po::value<std::string>()->default_value(""),
        "reward model checkpoint (empty: responses are not scored, /scores holds zeros)")(
        "out", po::value<std::string>(), "Xwin-Set HDF5 file to write (required)")(
        "num_samples", po::value<int>()->default_value(64), "unique responses per prompt (K)")(
        "unique", po::value<bool>()->default_value(true, "true"),
        "re-draw duplicate responses (false: K independent draws, duplicates kept, as for "
        "best-of-N)")("draw_budget", po::value<int>()->default_value(0),
                      "draws allowed per prompt before duplicates are kept (0: 4 K)")(
        "temperature", po::value<float>()->default_value(1.0f, "1"),
        "sampling temperature (0: greedy)")("top_p", po::value<float>()->default_value(1.0f, "1"),
                                            "nucleus sampling threshold")(
        "top_k", po::value<int>()->default_value(0), "keep the k most likely tokens (0: all)")(
        "max_new_tokens", po::value<int>()->default_value(128), "longest response")(
        "eos_id", po::value<int>()->default_value(2), "end-of-sequence token id")(
        "seed", po::value<uint64_t>()->default_value(1), "sampling seed")(
        "batch", po::value<int>()->default_value(64), "sequences decoded at once (KV-cache slots)")(
        "chunk", po::value<int>()->default_value(16),
        "prompts per restartable part (also how often a preemption signal is checked)")(
        "score_batch", po::value<int>()->default_value(64), "sequences per RM forward pass");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string prompts_path = required(vm, "prompts", p), out = required(vm, "out", p);
    const std::string policy_path = required(vm, "policy", p);
    const std::string rm_path = vm["rm"].as<std::string>();
    SamplingParams sp;
    sp.temperature = vm["temperature"].as<float>(), sp.top_p = vm["top_p"].as<float>();
    sp.top_k = vm["top_k"].as<int>(), sp.max_new_tokens = vm["max_new_tokens"].as<int>();
    sp.eos_id = vm["eos_id"].as<int>(), sp.seed = vm["seed"].as<uint64_t>();
    const int K = vm["num_samples"].as<int>(), chunk = vm["chunk"].as<int>();
    const bool unique = vm["unique"].as<bool>();
    const int budget = vm["draw_budget"].as<int>() > 0 ? vm["draw_budget"].as<int>() : 4 * K;
    if (K <= 0 || chunk <= 0 || budget < K)
      throw UsageError("need --num_samples > 0, --chunk > 0 and --draw_budget >= num_samples");
    install_preemption_handlers();
    try {
      sp.validate();
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    Llama policy(checkpoint_config(policy_path));
    load_checkpoint(policy_path, policy);
    std::unique_ptr<Llama> rm;
    if (!rm_path.empty()) {
      require(checkpoint_config(rm_path).value_head, rm_path,
              ": not a reward model (no value head); train one with xwin rm");
      rm = std::make_unique<Llama>(load_with_value_head(rm_path, 0));
    }
    const PromptsDataset prompts = PromptsDataset::load(prompts_path);
    const Grid grid = Grid::from_world();
    const std::string parts = out + ".parts";
    if (grid.rank == 0) fs::create_directories(parts);
    barrier(grid.world);
    const size_t P = prompts.size(), n_chunks = (P + chunk - 1) / chunk;
    Generator gen(policy, vm["batch"].as<int>(), sp);
    Timer timer;
    size_t done_here = 0;
    const bool writer = grid.tp_rank == 0 && grid.pp_rank == 0;
    bool stopped = false;
    for (size_t c = grid.dp_rank; c < n_chunks; c += grid.dp_size) {
      char name[32];
      std::snprintf(name, sizeof name, "part-%06zu.h5", c);
      const std::string part = (fs::path(parts) / name).string();
      // Finished before a restart: the group decides together (its ranks decode in lock step).
      if (allreduce_max(writer && fs::exists(part) ? 1 : 0, grid.mp)) continue;
      // Preempted: the group stops before this chunk (its ranks decide together).
      if (allreduce_max(preemption_requested() ? 1 : 0, grid.mp)) {
        stopped = true;
        break;
      }
      const size_t p0 = c * chunk, p1 = std::min(P, p0 + chunk);
      SampledChunk sc = sample_chunk(gen, rm.get(), prompts.prompt, p0, p1, K, budget, unique,
                                     vm["score_batch"].as<int>());
      if (writer) write_xwin_set(part, sc, K, prompts.info, MPI_COMM_SELF);
      done_here += p1 - p0;
      log0("sample: chunk %zu/%zu | %.1f generated tok/s | %zu prompts on rank 0 | ETA %s", c + 1,
           n_chunks, gen.generated_tokens() / timer.seconds(), done_here,
           format_duration(timer.seconds() / done_here *
                           std::max(0.0, (double)P / grid.dp_size - done_here))
               .c_str());
    }
    if (allreduce_max(stopped ? 1 : 0, grid.world)) {
      size_t written = 0;
      for (size_t c = 0; c < n_chunks; c++) {
        char name[32];
        std::snprintf(name, sizeof name, "part-%06zu.h5", c);
        written += fs::exists(fs::path(parts) / name);
      }
      log0(
          "sample: preempted: %zu of %zu chunks written to %s; exiting with code %d so the job "
          "can requeue and resume",
          written, n_chunks, parts.c_str(), kExitPreempted);
      throw Preempted{(long long)written};
    }
    if (grid.rank == 0) {
      SampledChunk all;
      double dups = 0;
      for (size_t c = 0; c < n_chunks; c++) {
        char name[32];
        std::snprintf(name, sizeof name, "part-%06zu.h5", c);
        append(all, read_part((fs::path(parts) / name).string()));
      }
      for (float d : all.duplicates) dups += d;
      write_xwin_set(out, all, K, prompts.info, MPI_COMM_SELF);
      fs::remove_all(parts);
      log0("sample: %zu prompts x %d responses -> %s (%.0f duplicate draws %s)", P, K, out.c_str(),
           dups, unique ? "re-drawn" : "kept");
    }
    barrier(grid.world);
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
