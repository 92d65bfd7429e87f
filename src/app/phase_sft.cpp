// xwin sft: supervised finetuning, masked next-token cross-entropy on conversations (the first
// stage of Xwin-LM). Load, build batches, loop, checkpoint: the loop is the shared Trainer.
#include <memory>

#include "align/lm_objective.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "io/datasets.h"
#include "io/tokenizer.h"

namespace xwin::cli {

Phase phase_sft() {
  Phase p;
  p.name = "sft";
  p.summary = "supervised finetuning on an HDF5 token dataset with a loss mask";
  p.details =
      "Starts from --init (a checkpoint) or from random weights built from [model] and\n"
      "--seed. Writes OUT/metrics.jsonl (one line per step) and the checkpoint OUT/final.";
  p.groups = {Group::Model, Group::Train, Group::Tokenizer};
  p.add_options = [](po::options_description& d) {
    d.add_options()("data", po::value<std::string>(),
                    "token dataset (HDF5) to train on (required)")(
        "out", po::value<std::string>(), "run directory for metrics and checkpoints (required)")(
        "init", po::value<std::string>()->default_value(""),
        "checkpoint to start from (empty: random init from [model])")(
        "seed", po::value<uint64_t>()->default_value(1234), "initialisation seed without --init")(
        "eval_data", po::value<std::string>()->default_value(""),
        "held-out token dataset: its loss is logged every --eval_every steps (empty: none)")(
        "eval_every", po::value<int64_t>()->default_value(50), "held-out evaluation interval");
    add_checkpoint_options(d);
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string data_path = required(vm, "data", p);
    const std::string out = required(vm, "out", p);
    TrainConfig tc = train_config(vm);
    Llama model = load_or_init(vm, p);
    if (tc.seq_len == 0) tc.seq_len = model.cfg.max_seq_len;
    if (tc.seq_len > model.cfg.max_seq_len)
      throw UsageError("train.seq_len = " + std::to_string(tc.seq_len) +
                       " exceeds model.max_seq_len = " + std::to_string(model.cfg.max_seq_len));
    // Ids from another tokenizer would train silently on the wrong text.
    if (const std::string tok = vm["tokenizer.model"].as<std::string>(); !tok.empty())
      DatasetInfo::read(data_path).check_tokenizer(data_path, file_hash(tok), tok);
    TokenDataset data = TokenDataset::load(data_path, model.cfg.vocab_size);
    require(data.size() > 0, data_path, ": the dataset has no records");
    log0("sft: %zu records from %s, %zu parameters, %lld steps of %d x %d tokens", data.size(),
         data_path.c_str(), model.layout.total, (long long)tc.steps, tc.batch_size, tc.seq_len);
    LmObjective objective(data, tc.seq_len, tc.shuffle, tc.seed);
    Trainer trainer(model, tc, out);
    trainer.state.run_config["phase"] = "sft";
    trainer.state.run_config["data"] = data_path;
    std::unique_ptr<TokenDataset> held_data;
    std::unique_ptr<LmObjective> held;
    if (const std::string ev = vm["eval_data"].as<std::string>(); !ev.empty()) {
      held_data = std::make_unique<TokenDataset>(TokenDataset::load(ev, model.cfg.vocab_size));
      held = std::make_unique<LmObjective>(*held_data, tc.seq_len, false, 0);
      trainer.eval_every = vm["eval_every"].as<int64_t>();
      const Grid grid = Grid::from_world();
      trainer.evaluate = [&, grid]() {
        return nlohmann::json{{"heldout_loss", evaluate_lm(model, *held, held_data->size(),
                                                           tc.micro_batch_size, grid.dp)}};
      };
    }
    trainer.fit(objective, checkpoint_options(vm));
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
