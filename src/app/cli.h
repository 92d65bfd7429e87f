// The command line: `xwin <phase> [options]`, every option also settable from an INI deck
// (`--config deck.ini`). In the deck, a phase's own options live in the phase's section
// ([sft] out = ...) and shared groups in theirs ([model] d_model = ...). The command line wins
// over the deck; the deck wins over built-in defaults. Unknown keys are errors, in the deck too.
#pragma once
#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

#include "align/trainer.h"
#include "model/config.h"

namespace xwin::cli {

namespace po = boost::program_options;

// Shared option groups, named by their deck section.
enum class Group { Model, Train, Tokenizer, Template, Parallel };

struct Phase {
  std::string name;     // "sft", or "data tokens" for two-word commands
  std::string summary;  // one line for `xwin --help`
  std::string details;  // paragraph for `xwin <phase> --help`
  std::vector<Group> groups;
  std::string positional;  // option that a bare argument fills (e.g. `xwin ckpt info PATH`)
  std::function<void(po::options_description&)> add_options;
  std::function<int(const po::variables_map&)> run;
};

const std::vector<Phase>& phases();

// Raised for bad command lines and decks: every rank detects it identically.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses argv for the whole program. Returns the phase to run (null after --help/--version,
// which print on rank 0) and fills vm.
const Phase* parse(int argc, char** argv, po::variables_map& vm);

// Shared groups: reading the values back.
ModelConfig model_config(const po::variables_map& vm);
// True when any model.* key was set explicitly (command line or deck).
bool model_config_given(const po::variables_map& vm);
TrainConfig train_config(const po::variables_map& vm);

// --save_every, --keep_last, --resume, for every training phase.
void add_checkpoint_options(po::options_description& d);
CheckpointOptions checkpoint_options(const po::variables_map& vm);

// A required string option: a clear error naming the option when it is missing.
std::string required(const po::variables_map& vm, const std::string& key, const Phase& phase);

}  // namespace xwin::cli
