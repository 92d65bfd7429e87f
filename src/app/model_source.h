// Where a phase's model comes from: a checkpoint (--init or --ckpt), or random weights from the
// [model] options. Giving both with different sizes is a contradiction and an error.
#pragma once
#include "app/cli.h"
#include "model/llama.h"

namespace xwin::cli {

// Uses the option `key` (a checkpoint path; empty means none) when present.
Llama load_or_init(const po::variables_map& vm, const Phase& phase,
                   const std::string& key = "init");

}  // namespace xwin::cli
