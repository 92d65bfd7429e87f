// Where a phase's model comes from: a checkpoint (--init or --ckpt), or random weights from the
// [model] options. Giving both with different sizes is a contradiction and an error.
#pragma once
#include "app/cli.h"
#include "model/llama.h"

namespace xwin::cli {

// Uses the option `key` (a checkpoint path; empty means none) when present.
Llama load_or_init(const po::variables_map& vm, const Phase& phase,
                   const std::string& key = "init");

// A reward model: the checkpoint at `path` with a value head. A checkpoint without one (SFT or
// base) gets a fresh head, Normal(0, 0.02) weights from `seed` and a zero bias; one with a head
// (a reward model being resumed or finetuned) is loaded whole.
Llama load_with_value_head(const std::string& path, uint64_t seed);

}  // namespace xwin::cli
