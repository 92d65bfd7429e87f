// xwin data tasks: verifiable tasks (src/tasks) as JSONL, for xwin eval --suite tasks or for
// building SFT and prompt datasets by hand.
#include "app/cli.h"
#include "app/eval_tasks.h"
#include "core/error.h"
#include "core/log.h"
#include "parallel/grid.h"

namespace xwin::cli {

Phase phase_data_tasks() {
  Phase p;
  p.name = "data tasks";
  p.summary = "generate verifiable tasks with exact checkers (the embedded demo's data)";
  p.details =
      "One JSON record a line: family, split, messages (ending with the user turn), the\n"
      "canonical answer and the checker's spec. Deterministic by --seed and --split; held-out\n"
      "tasks never share values with training tasks and use some phrasings of their own.";
  p.add_options = [](po::options_description& d) {
    d.add_options()("out", po::value<std::string>(), "JSONL file to write (required)")(
        "n", po::value<int>()->default_value(1000), "number of tasks")(
        "seed", po::value<uint64_t>()->default_value(1), "seed")(
        "split", po::value<std::string>()->default_value("train"), "train or heldout")(
        "families", po::value<std::vector<std::string>>()->multitoken()->default_value({}, ""),
        "families to draw from (default: all)");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string out = required(vm, "out", p), split = vm["split"].as<std::string>();
    if (split != "train" && split != "heldout")
      throw UsageError("--split " + split + ": use train or heldout");
    const std::vector<std::string> only = vm["families"].as<std::vector<std::string>>();
    for (const std::string& f : only)
      if (std::find(tasks::families().begin(), tasks::families().end(), f) ==
          tasks::families().end()) {
        std::string all;
        for (const std::string& g : tasks::families()) all += " " + g;
        throw UsageError("--families " + f + ": unknown family; families are:" + all);
      }
    if (vm["n"].as<int>() <= 0) throw UsageError("--n must be positive");
    if (Grid::from_world().rank == 0) {
      const auto ts =
          tasks::generate(vm["n"].as<int>(), vm["seed"].as<uint64_t>(),
                          split == "train" ? tasks::Split::Train : tasks::Split::Heldout, only);
      write_tasks(out, ts);
      log0("data tasks: %zu %s tasks -> %s", ts.size(), split.c_str(), out.c_str());
    }
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
