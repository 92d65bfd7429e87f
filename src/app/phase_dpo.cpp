// xwin dpo: direct preference optimisation on the Xwin-Set. Pairs: chosen = the response the
// reward model scored highest, rejected = a chosen rank (last, median, K) or the lowest one
// below a score gap. Reference log-prob sums come from the starting policy, computed once and
// stored with the pairs in OUT/dpo_pairs.h5; a rerun reuses them.
#include <algorithm>
#include <filesystem>
#include <numeric>

#include "align/dpo_objective.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "io/datasets.h"
#include "parallel/grid.h"

namespace xwin::cli {

static std::vector<int32_t> record(const TokenDataset& d, size_t i) {
  return {d.tokens.begin() + d.offsets[i], d.tokens.begin() + d.offsets[i + 1]};
}

// Chosen and rejected indices among the K responses of one prompt, or false to skip it.
static bool pick(const float* s, int K, const std::string& rank, double gap, int& c, int& r) {
  std::vector<int> order(K);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
  c = order[0];
  if (gap > 0) {
    r = -1;
    for (int k = K - 1; k > 0 && r < 0; k--)
      if (s[order[k]] <= s[c] - gap) r = order[k];
    if (r < 0) return false;
  } else if (rank == "last") {
    r = order[K - 1];
  } else if (rank == "median") {
    r = order[K / 2];
  } else {
    const int k = std::stoi(rank);
    require(k >= 2 && k <= K, "--rejected_rank ", rank, " must be last, median or 2..K = ", K);
    r = order[k - 1];
  }
  return s[c] > s[r];
}

// Builds pairs and fills their reference log-prob sums with `ref` (shared over the ranks).
static std::vector<DpoPair> build_pairs(const XwinSetDataset& set, const po::variables_map& vm,
                                        Llama& ref, int T, int batch, const Grid& grid) {
  std::vector<DpoPair> pairs;
  const int K = (int)set.K;
  size_t skipped = 0;
  for (size_t p = 0; p < set.size(); p++) {
    int c = 0, r = 0;
    if (!pick(&set.scores[p * K], K, vm["rejected_rank"].as<std::string>(),
              vm["score_gap"].as<double>(), c, r)) {
      skipped++;
      continue;
    }
    pairs.push_back({record(set.prompt, p), record(set.responses, p * K + c),
                     record(set.responses, p * K + r), 0.f, 0.f});
  }
  log0("dpo: %zu pairs from %zu prompts (%zu skipped: no score difference or gap)", pairs.size(),
       set.size(), skipped);
  DpoObjective all(pairs, T, false, 0, {});
  std::vector<float> refs(2 * pairs.size(), 0.f);
  std::vector<int32_t> tokens;
  for (size_t s0 = (size_t)grid.dp_rank * batch; s0 < pairs.size();
       s0 += (size_t)grid.dp_size * batch) {
    std::vector<int64_t> samples;
    for (size_t s = s0; s < std::min(pairs.size(), s0 + batch); s++) samples.push_back(s);
    int B = 0, TT = 0;
    all.inputs(samples, tokens, B, TT);
    ref.forward(tokens.data(), B, TT);
    const std::vector<double> sums = all.logp_sums(ref);
    for (size_t i = 0; i < samples.size(); i++)
      refs[2 * samples[i]] = (float)sums[2 * i], refs[2 * samples[i] + 1] = (float)sums[2 * i + 1];
  }
  allreduce_sum(refs.data(), refs.size(), grid.world);
  for (size_t i = 0; i < pairs.size(); i++)
    pairs[i].ref_chosen = refs[2 * i], pairs[i].ref_rejected = refs[2 * i + 1];
  return pairs;
}

Phase phase_dpo() {
  Phase p;
  p.name = "dpo";
  p.summary = "direct preference optimisation on chosen/rejected pairs from the Xwin-Set";
  p.details =
      "Reference log-probs come from --init (the starting policy) once, stored in\n"
      "OUT/dpo_pairs.h5 and reused by reruns. Held-out pairs (every Nth, --eval_every_nth)\n"
      "give reward accuracy, margin and chosen/rejected rewards every --eval_every steps.";
  p.groups = {Group::Train};
  p.add_options = [](po::options_description& d) {
    d.add_options()("data", po::value<std::string>(), "Xwin-Set dataset (required)")(
        "init", po::value<std::string>(),
        "starting policy checkpoint, also the reference (required)")(
        "out", po::value<std::string>(), "run directory (required)")(
        "rejected_rank", po::value<std::string>()->default_value("last"),
        "rejected response: last, median, or its rank K (2 = second best)")(
        "score_gap", po::value<double>()->default_value(0.0, "0"),
        "> 0: rejected = the lowest response scored at least this far below the best")(
        "loss", po::value<std::string>()->default_value("sigmoid"), "sigmoid (DPO), ipo or hinge")(
        "beta", po::value<double>()->default_value(0.1, "0.1"), "DPO temperature beta")(
        "sft_alpha", po::value<double>()->default_value(0.0, "0"),
        "add alpha x the chosen response's mean NLL to the loss")(
        "eval_every_nth", po::value<int>()->default_value(20),
        "hold out every Nth pair for metrics (0: no held-out split)")(
        "eval_every", po::value<int64_t>()->default_value(25), "evaluate every N steps")(
        "ref_batch", po::value<int>()->default_value(8), "pairs per reference forward pass");
    add_checkpoint_options(d);
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string data = required(vm, "data", p), out = required(vm, "out", p);
    TrainConfig tc = train_config(vm);
    required(vm, "init", p);
    Llama model = load_or_init(vm, p, "init");
    if (tc.seq_len == 0) tc.seq_len = model.cfg.max_seq_len;
    DpoConfig dc;
    dc.loss = dpo_loss_from_string(vm["loss"].as<std::string>());
    dc.beta = vm["beta"].as<double>(), dc.sft_alpha = vm["sft_alpha"].as<double>();
    if (dc.beta <= 0) throw UsageError("--beta must be positive");
    const Grid grid = Grid::from_world();
    const std::string pairs_path = (std::filesystem::path(out) / "dpo_pairs.h5").string();
    std::vector<DpoPair> pairs;
    if (std::filesystem::exists(pairs_path)) {
      pairs = read_dpo_pairs(pairs_path);
      log0("dpo: %zu pairs with stored reference log-probs from %s", pairs.size(),
           pairs_path.c_str());
    } else {
      const XwinSetDataset set = XwinSetDataset::load(data);
      pairs = build_pairs(set, vm, model, tc.seq_len, vm["ref_batch"].as<int>(), grid);
      if (grid.rank == 0) {
        std::filesystem::create_directories(out);
        write_dpo_pairs(pairs_path, pairs, set.info);
      }
      barrier(grid.world);
    }
    std::vector<DpoPair> train, heldout;
    const int nth = vm["eval_every_nth"].as<int>();
    for (size_t i = 0; i < pairs.size(); i++)
      (nth > 0 && i % nth == (size_t)nth - 1 ? heldout : train).push_back(pairs[i]);
    DpoObjective objective(train, tc.seq_len, tc.shuffle, tc.seed, dc);
    Trainer trainer(model, tc, out);
    trainer.state.run_config["phase"] = "dpo";
    trainer.state.run_config["data"] = data;
    std::unique_ptr<DpoObjective> held;
    if (!heldout.empty()) {
      held = std::make_unique<DpoObjective>(heldout, tc.seq_len, false, 0, dc);
      trainer.eval_every = vm["eval_every"].as<int64_t>();
      trainer.evaluate = [&]() {
        return evaluate_dpo(model, *held, tc.micro_batch_size, dc.beta, grid.dp);
      };
    }
    trainer.fit(objective, checkpoint_options(vm));
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
