// xwin init: a model with random weights, written as a checkpoint (the start of a run from
// scratch, and the fixture of validation).
#include "app/cli.h"
#include "core/log.h"
#include "io/checkpoint.h"

namespace xwin::cli {

Phase phase_init() {
  Phase p;
  p.name = "init";
  p.summary = "random weights from [model] and a seed, written as a checkpoint";
  p.details =
      "Weights are Normal(0, 0.02), norms 1; every value is a function of (seed, tensor name,\n"
      "index), so the same seed gives the same model whatever the layout.";
  p.groups = {Group::Model};
  p.add_options = [](po::options_description& d) {
    d.add_options()("out", po::value<std::string>(), "checkpoint directory to write (required)")(
        "seed", po::value<uint64_t>()->default_value(1234), "initialisation seed");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string out = required(vm, "out", p);
    Llama model(model_config(vm));
    model.init_random(vm["seed"].as<uint64_t>());
    if (log_rank() == 0) {
      TrainState st;
      st.run_config = {{"init_seed", vm["seed"].as<uint64_t>()}};
      save_checkpoint(out, model, nullptr, nullptr, st);
      log0("init: %zu parameters (%s) -> %s", model.layout.total,
           model.cfg.to_json().dump().c_str(), out.c_str());
    }
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
