// xwin rm: the reward model of Xwin-LM. Initialised from an SFT (or base) checkpoint with a
// scalar value head, trained with the Bradley-Terry loss on preference pairs (Xwin-Pair) or on
// all ranked pairs of a multiwise set; held-out pairwise accuracy and reward gap every N steps.
#include "align/rm_objective.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"

namespace xwin::cli {

// Preference groups from a pairs dataset or an Xwin-Set, whichever the file is.
static std::vector<PreferenceGroup> load_groups(const std::string& path, bool use_margin) {
  const DatasetInfo info = DatasetInfo::read(path);
  info.check_schema(path, std::string(kSchemaPairs) + "," + kSchemaXwinSet);
  if (info.schema == kSchemaXwinSet) return groups_from_xwin_set(XwinSetDataset::load(path));
  return groups_from_pairs(PairsDataset::load(path), use_margin);
}

Phase phase_rm() {
  Phase p;
  p.name = "rm";
  p.summary = "train a reward model (value head, Bradley-Terry loss) on preference pairs";
  p.details =
      "--data is a pairs dataset (xwin data pairs) or an Xwin-Set (every better/worse pair of\n"
      "its K ranked responses: the ranking loss). The reward is the value head at the last\n"
      "real token of prompt + response. Writes OUT/metrics.jsonl, OUT/ckpt, OUT/final.";
  p.groups = {Group::Train};
  p.add_options = [](po::options_description& d) {
    d.add_options()("data", po::value<std::string>(), "pairs or Xwin-Set dataset (required)")(
        "init", po::value<std::string>(), "SFT or base checkpoint to start from (required)")(
        "out", po::value<std::string>(), "run directory (required)")(
        "eval_data", po::value<std::string>()->default_value(""),
        "held-out pairs for accuracy and reward gap (empty: none)")(
        "eval_every", po::value<int64_t>()->default_value(50), "evaluate every N steps")(
        "margin", po::value<bool>()->default_value(false, "false"),
        "subtract the dataset's /margin inside the sigmoid")(
        "center", po::value<double>()->default_value(0.0, "0"),
        "reward-centering coefficient c: adds c (r_chosen + r_rejected)^2")(
        "seed", po::value<uint64_t>()->default_value(1234), "value head initialisation seed");
    add_checkpoint_options(d);
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string data = required(vm, "data", p), out = required(vm, "out", p);
    TrainConfig tc = train_config(vm);
    Llama model = load_with_value_head(required(vm, "init", p), vm["seed"].as<uint64_t>());
    if (tc.seq_len == 0) tc.seq_len = model.cfg.max_seq_len;
    RmObjective objective(load_groups(data, vm["margin"].as<bool>()), tc.seq_len, tc.shuffle,
                          tc.seed, vm["center"].as<double>());
    log0("rm: %zu preference groups from %s, %zu parameters", objective.size(), data.c_str(),
         model.layout.total);
    Trainer trainer(model, tc, out);
    trainer.state.run_config["phase"] = "rm";
    trainer.state.run_config["data"] = data;
    std::unique_ptr<RmObjective> heldout;
    if (const std::string ev = vm["eval_data"].as<std::string>(); !ev.empty()) {
      heldout = std::make_unique<RmObjective>(load_groups(ev, vm["margin"].as<bool>()), tc.seq_len,
                                              false, 0, 0.0);
      trainer.eval_every = vm["eval_every"].as<int64_t>();
      const Grid grid = Grid::from_world();
      trainer.evaluate = [&model, &heldout, grid, &tc]() {
        const RmEval e = evaluate_rm(model, *heldout, tc.micro_batch_size, grid.dp);
        return nlohmann::json{{"accuracy", e.accuracy},
                              {"mean_gap", e.mean_gap},
                              {"loss", e.loss},
                              {"pairs", e.pairs}};
      };
    }
    trainer.fit(objective, checkpoint_options(vm));
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
