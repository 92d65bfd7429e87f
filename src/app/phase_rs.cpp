// xwin rs: rejection-sampling finetuning. Per prompt of the Xwin-Set, keep the top-k responses
// by reward (optionally among a random subset of N candidates, the paper's study of how many
// samples to draw), write them as an SFT dataset OUT/rs_selected.h5, and finetune on it with
// the SFT loss.
#include <algorithm>
#include <filesystem>
#include <numeric>

#include "align/lm_objective.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/datasets.h"
#include "parallel/grid.h"

namespace xwin::cli {

// The selected responses of prompt p: indices into its K responses, best first.
std::vector<int> rs_select(const float* scores, int K, int candidates, int top_k, uint64_t seed,
                           uint64_t prompt) {
  std::vector<int> pool(K);
  std::iota(pool.begin(), pool.end(), 0);
  if (candidates > 0 && candidates < K) {
    for (int i = K - 1; i > 0; i--)  // seeded shuffle, then the first N are the candidates
      std::swap(pool[i], pool[rng_u64(seed, 0x5253000000000000ull + prompt, i) % (i + 1)]);
    pool.resize(candidates);
  }
  std::stable_sort(pool.begin(), pool.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  pool.resize(std::min<size_t>(pool.size(), top_k));
  return pool;
}

static TokenDataset select(const XwinSetDataset& set, int candidates, int top_k, uint64_t seed) {
  TokenDataset out;
  const int K = (int)set.K;
  for (size_t p = 0; p < set.size(); p++)
    for (int k : rs_select(&set.scores[p * K], K, candidates, top_k, seed, p)) {
      const size_t r = p * K + k;
      std::vector<int32_t> toks(set.prompt.tokens.begin() + set.prompt.offsets[p],
                                set.prompt.tokens.begin() + set.prompt.offsets[p + 1]);
      std::vector<uint8_t> mask(toks.size(), 0);
      toks.insert(toks.end(), set.responses.tokens.begin() + set.responses.offsets[r],
                  set.responses.tokens.begin() + set.responses.offsets[r + 1]);
      mask.resize(toks.size(), 1);
      out.append(toks, mask);
    }
  return out;
}

Phase phase_rs() {
  Phase p;
  p.name = "rs";
  p.summary = "rejection sampling: finetune on the best-scored responses of the Xwin-Set";
  p.details =
      "Writes the selected set OUT/rs_selected.h5 (an SFT dataset: prompt + response, loss\n"
      "mask on the response and its EOS), then trains on it like xwin sft.";
  p.groups = {Group::Train};
  p.add_options = [](po::options_description& d) {
    d.add_options()("data", po::value<std::string>(), "Xwin-Set dataset (required)")(
        "init", po::value<std::string>(), "policy checkpoint to finetune (required)")(
        "out", po::value<std::string>(), "run directory (required)")(
        "top_k", po::value<int>()->default_value(1), "responses kept per prompt")(
        "candidates", po::value<int>()->default_value(0),
        "best of a random subset of N responses (0: all K)")(
        "select_seed", po::value<uint64_t>()->default_value(1), "seed of the candidate subsets");
    add_checkpoint_options(d);
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string data = required(vm, "data", p), out = required(vm, "out", p);
    required(vm, "init", p);
    TrainConfig tc = train_config(vm);
    const int top_k = vm["top_k"].as<int>(), candidates = vm["candidates"].as<int>();
    if (top_k <= 0 || candidates < 0) throw UsageError("--top_k must be > 0, --candidates >= 0");
    Llama model = load_or_init(vm, p, "init");
    if (tc.seq_len == 0) tc.seq_len = model.cfg.max_seq_len;
    const std::string sel = (std::filesystem::path(out) / "rs_selected.h5").string();
    const Grid grid = Grid::from_world();
    if (grid.rank == 0 && !std::filesystem::exists(sel)) {
      const XwinSetDataset set = XwinSetDataset::load(data);
      require(candidates <= set.K, "--candidates ", candidates, " exceeds K = ", set.K);
      std::filesystem::create_directories(out);
      select(set, candidates, top_k, vm["select_seed"].as<uint64_t>())
          .save(sel, "xwin rs from " + data);
      log0("rs: selected top-%d of %s per prompt from %s -> %s", top_k,
           candidates ? std::to_string(candidates).c_str() : "all", data.c_str(), sel.c_str());
    }
    barrier(grid.world);
    TokenDataset selected = TokenDataset::load(sel, model.cfg.vocab_size);
    LmObjective objective(selected, tc.seq_len, tc.shuffle, tc.seed);
    Trainer trainer(model, tc, out);
    trainer.state.run_config["phase"] = "rs";
    trainer.state.run_config["data"] = data;
    trainer.fit(objective, checkpoint_options(vm));
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
