#include "app/cli.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "parallel/grid.h"

namespace xwin {
namespace cli {

cli::Phase phase_init();
cli::Phase phase_sft();
cli::Phase phase_logprobs();
cli::Phase phase_dump();
cli::Phase phase_data_tokens();
cli::Phase phase_data_synth();
cli::Phase phase_ckpt_info();
cli::Phase phase_rm();
cli::Phase phase_sample();
cli::Phase phase_rs();
cli::Phase phase_dpo();
cli::Phase phase_tokenizer_train();
cli::Phase phase_tokenizer_encode();
cli::Phase phase_tokenizer_decode();
cli::Phase phase_data_sft();
cli::Phase phase_data_pairs();
cli::Phase phase_data_prompts();
cli::Phase phase_data_xwin_set();
cli::Phase phase_data_export();
cli::Phase phase_import();
cli::Phase phase_export();
cli::Phase phase_pipeline();
cli::Phase phase_eval();
cli::Phase phase_annotate();
cli::Phase phase_data_tasks();

const std::vector<Phase>& phases() {
  static const std::vector<Phase> all = {phase_init(),
                                         phase_sft(),
                                         phase_logprobs(),
                                         phase_dump(),
                                         phase_data_tokens(),
                                         phase_data_synth(),
                                         phase_rm(),
                                         phase_sample(),
                                         phase_rs(),
                                         phase_dpo(),
                                         phase_import(),
                                         phase_export(),
                                         phase_ckpt_info(),
                                         phase_tokenizer_train(),
                                         phase_tokenizer_encode(),
                                         phase_tokenizer_decode(),
                                         phase_data_sft(),
                                         phase_data_pairs(),
                                         phase_data_prompts(),
                                         phase_data_xwin_set(),
                                         phase_data_export(),
                                         phase_data_tasks(),
                                         phase_annotate(),
                                         phase_eval(),
                                         phase_pipeline()};
  return all;
}

// The shared option groups, by deck section.
static bool group_of(const std::string& section, Group* g) {
  static const std::map<std::string, Group> groups = {{"model", Group::Model},
                                                      {"train", Group::Train},
                                                      {"tokenizer", Group::Tokenizer},
                                                      {"template", Group::Template},
                                                      {"parallel", Group::Parallel}};
  const auto it = groups.find(section);
  if (it != groups.end() && g) *g = it->second;
  return it != groups.end();
}

static void add_group(po::options_description& d, Group g) {
  if (g == Group::Tokenizer || g == Group::Template) {
    add_text_group(d, g);
  } else if (g == Group::Parallel) {
    po::options_description m("Parallel layout [parallel] (every phase; dp x tp x pp = ranks)");
    m.add_options()(
        "parallel.tp", po::value<int>()->default_value(1),
        "tensor-parallel ranks (innermost: keep a TP group on one node); divides n_heads, d_ff, "
        "vocab_size")("parallel.pp", po::value<int>()->default_value(1),
                      "pipeline stages (1F1B schedule); divides n_layers")(
        "parallel.dp", po::value<int>()->default_value(0),
        "data-parallel replicas; 0 = ranks / (tp x pp)");
    d.add(m);
  } else if (g == Group::Model) {
    ModelConfig c;
    c.vocab_size = 512, c.d_model = 128, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 4;
    c.d_ff = 384, c.max_seq_len = 128;
    po::options_description m("Model [model] (used when no checkpoint gives the config)");
    m.add_options()("model.vocab_size", po::value<int>()->default_value(c.vocab_size),
                    "vocabulary size")("model.d_model", po::value<int>()->default_value(c.d_model),
                                       "hidden size")(
        "model.n_layers", po::value<int>()->default_value(c.n_layers), "decoder layers")(
        "model.n_heads", po::value<int>()->default_value(c.n_heads), "attention (query) heads")(
        "model.n_kv_heads", po::value<int>()->default_value(c.n_kv_heads),
        "key/value heads (grouped-query attention when < n_heads; must divide n_heads)")(
        "model.d_ff", po::value<int>()->default_value(c.d_ff), "SwiGLU MLP hidden size")(
        "model.max_seq_len", po::value<int>()->default_value(c.max_seq_len),
        "longest sequence the model accepts")(
        "model.norm_eps", po::value<float>()->default_value(c.norm_eps, "1e-05"),
        "RMSNorm epsilon")("model.rope_theta",
                           po::value<float>()->default_value(c.rope_theta, "10000"),
                           "rotary embedding base")(
        "model.tie_embeddings", po::value<bool>()->default_value(false, "false"),
        "LM head shares the token embedding matrix")(
        "model.value_head", po::value<bool>()->default_value(false, "false"),
        "add a scalar value head (reward models)");
    d.add(m);
  } else {
    TrainConfig t;
    po::options_description m("Training [train]");
    m.add_options()("train.steps", po::value<int64_t>()->default_value(t.steps), "optimizer steps")(
        "train.batch_size", po::value<int>()->default_value(t.batch_size),
        "sequences per optimizer step (global)")(
        "train.micro_batch_size", po::value<int>()->default_value(t.micro_batch_size),
        "sequences per forward/backward; batch_size / micro_batch_size steps are accumulated")(
        "train.seq_len", po::value<int>()->default_value(0),
        "tokens per sequence (longer records are truncated); 0 = model.max_seq_len")(
        "train.lr", po::value<double>()->default_value(t.lr, "0.0003"), "peak learning rate")(
        "train.min_lr", po::value<double>()->default_value(t.min_lr, "3e-05"),
        "learning rate at the end of the cosine decay")(
        "train.warmup_steps", po::value<int64_t>()->default_value(t.warmup_steps),
        "linear warmup steps")(
        "train.weight_decay", po::value<double>()->default_value(t.weight_decay, "0.1"),
        "AdamW decoupled weight decay (matrices only, never norms or biases)")(
        "train.beta1", po::value<double>()->default_value(t.beta1, "0.9"), "AdamW beta1")(
        "train.beta2", po::value<double>()->default_value(t.beta2, "0.95"), "AdamW beta2")(
        "train.eps", po::value<double>()->default_value(t.eps, "1e-08"), "AdamW epsilon")(
        "train.grad_clip", po::value<double>()->default_value(t.grad_clip, "1"),
        "clip the global gradient norm to this (0 = off)")(
        "train.seed", po::value<uint64_t>()->default_value(t.seed), "seed of the data order")(
        "train.shuffle", po::value<bool>()->default_value(true, "true"),
        "visit records in a fresh seeded permutation each epoch (false: file order)")(
        "train.log_every", po::value<int>()->default_value(1), "log a line every N steps")(
        "train.zero1", po::value<bool>()->default_value(false, "false"),
        "ZeRO-1: split AdamW's moments across the data-parallel ranks (each holds 1/dp of "
        "them, updates its slice of the weights and all-gathers the rest); same result, "
        "checkpoints unchanged")(
        "train.overlap_reduce", po::value<bool>()->default_value(true, "true"),
        "sum each gradient bucket across data-parallel ranks as soon as the backward pass "
        "completes it, overlapping the rest of the backward (false: one sum afterwards)");
    d.add(m);
  }
}

static po::options_description phase_description(const Phase& p) {
  po::options_description d;
  po::options_description own("Options of xwin " + p.name + " (deck section [" +
                              std::string(p.name.find(' ') == std::string::npos
                                              ? p.name
                                              : p.name.substr(0, p.name.find(' ')) + "." +
                                                    p.name.substr(p.name.find(' ') + 1)) +
                              "])");
  p.add_options(own);
  d.add(own);
  for (Group g : p.groups) add_group(d, g);
  return d;
}

static std::string section_of(const Phase& p) {
  std::string s = p.name;
  for (char& c : s)
    if (c == ' ') c = '.';
  return s;
}

static void print_top_help() {
  std::printf(
      "xwin %s (%s): the Xwin-LM alignment pipeline as one MPI program\n\n"
      "usage: xwin <phase> [options]      run a phase (under mpiexec/srun for several ranks)\n"
      "       xwin <phase> --help         the phase's options, with their defaults\n"
      "       xwin --version              version and git revision\n\n"
      "Every option can also come from an INI deck: --config deck.ini. A phase's own options\n"
      "go in its section ([sft] out = run/sft), shared groups in [model] and [train]; the\n"
      "command line overrides the deck.\n\nphases:\n",
      XWIN_VERSION, XWIN_GIT_REV);
  for (const Phase& p : phases()) std::printf("  %-16s %s\n", p.name.c_str(), p.summary.c_str());
  std::printf(
      "\nexit codes: 0 success, 1 runtime error (bad data, I/O, NaN), 2 usage error "
      "(bad option or deck)\n");
}

// Moves deck keys into the phase's option names, and rejects keys no phase knows.
static void adopt_deck(po::parsed_options& parsed, const Phase& phase,
                       const po::options_description& desc, const std::string& file) {
  std::vector<po::option> kept;
  const std::string own = section_of(phase);
  for (po::option o : parsed.options) {
    const std::string key = o.string_key;
    const size_t dot = key.rfind('.');
    const std::string section = dot == std::string::npos ? "" : key.substr(0, dot);
    const std::string name = key.substr(dot == std::string::npos ? 0 : dot + 1);
    if (section.empty())
      throw UsageError(file + ": key '" + key + "' is outside any section; put it under " + "[" +
                       own + "] or a shared section like [model]");
    bool known = false;
    if (section == own) {
      o.string_key = name;
      known = desc.find_nothrow(name, false) != nullptr;
      if (known) {
        o.unregistered = false;
        kept.push_back(o);
      }
    } else if (group_of(section, nullptr)) {
      known = true;
      const po::option_description* d = desc.find_nothrow(key, false);
      if (d) {
        o.unregistered = false;
        kept.push_back(o);
      } else {
        po::options_description g;
        Group shared = Group::Model;
        group_of(section, &shared);
        add_group(g, shared);
        known = g.find_nothrow(key, false) != nullptr;
      }
    } else {
      for (const Phase& p : phases())
        if (section_of(p) == section) {
          po::options_description other = phase_description(p);
          known = other.find_nothrow(name, false) != nullptr;
        }
      if (!known) {
        bool is_section = false;
        for (const Phase& p : phases()) is_section |= section_of(p) == section;
        if (!is_section)
          throw UsageError(file + ": unknown section [" + section + "] (key '" + key +
                           "'); sections are the phase names and [model], [train], " +
                           "[tokenizer], [template]");
      }
    }
    if (!known)
      throw UsageError(file + ": unknown key '" + name + "' in section [" + section +
                       "]; see `xwin " + (group_of(section, nullptr) ? phase.name : section) +
                       " --help` for the valid keys");
  }
  parsed.options = kept;
  parsed.description = &desc;
}

const Phase* parse(int argc, char** argv, po::variables_map& vm) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    if (log_rank() == 0) print_top_help();
    if (args.empty()) throw UsageError("no phase given; see the list above");
    return nullptr;
  }
  if (args[0] == "--version") {
    if (log_rank() == 0) std::printf("xwin %s (git %s)\n", XWIN_VERSION, XWIN_GIT_REV);
    return nullptr;
  }
  const Phase* phase = nullptr;
  size_t used = 0;
  for (const Phase& p : phases()) {
    const size_t sp = p.name.find(' ');
    if (sp == std::string::npos && args[0] == p.name) phase = &p, used = 1;
    if (sp != std::string::npos && args.size() > 1 && args[0] == p.name.substr(0, sp) &&
        args[1] == p.name.substr(sp + 1))
      phase = &p, used = 2;
  }
  if (!phase) {
    std::string names;
    for (const Phase& p : phases()) names += (names.empty() ? "" : ", ") + p.name;
    throw UsageError("unknown phase '" + args[0] + "'; phases are: " + names);
  }
  args.erase(args.begin(), args.begin() + used);
  // --save-every and --save_every are the same option: dashes in names become underscores.
  for (std::string& a : args)
    if (a.rfind("--", 0) == 0)
      for (size_t i = 2; i < a.size() && a[i] != '='; i++)
        if (a[i] == '-') a[i] = '_';

  po::options_description general("General");
  general.add_options()("help,h", "show this help")("config", po::value<std::string>(),
                                                    "INI deck with options (command line wins)");
  po::options_description desc = phase_description(*phase);
  add_group(desc, Group::Parallel);
  po::options_description all;
  all.add(general).add(desc);

  try {
    po::positional_options_description pos;
    if (!phase->positional.empty()) pos.add(phase->positional.c_str(), 1);
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    if (vm.count("help")) {
      if (log_rank() == 0) {
        std::cout << "xwin " << phase->name << ": " << phase->summary << "\n\n";
        if (!phase->details.empty()) std::cout << phase->details << "\n\n";
        std::cout << all << "\n";
      }
      return nullptr;
    }
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) throw UsageError(file + ": cannot open the deck (--config); check the path");
      po::parsed_options parsed = po::parse_config_file(in, po::options_description(), true);
      adopt_deck(parsed, *phase, all, file);
      try {
        po::store(parsed, vm);
      } catch (const po::error& e) {
        throw UsageError(file + ": " + e.what());
      }
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + "; see `xwin " + phase->name + " --help`");
  }
  try {  // collective: every rank parses the same options
    configure_grid(vm["parallel.dp"].as<int>(), vm["parallel.tp"].as<int>(),
                   vm["parallel.pp"].as<int>());
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  return phase;
}

ModelConfig model_config(const po::variables_map& vm) {
  ModelConfig c;
  c.vocab_size = vm["model.vocab_size"].as<int>();
  c.d_model = vm["model.d_model"].as<int>();
  c.n_layers = vm["model.n_layers"].as<int>();
  c.n_heads = vm["model.n_heads"].as<int>();
  c.n_kv_heads = vm["model.n_kv_heads"].as<int>();
  c.d_ff = vm["model.d_ff"].as<int>();
  c.max_seq_len = vm["model.max_seq_len"].as<int>();
  c.norm_eps = vm["model.norm_eps"].as<float>();
  c.rope_theta = vm["model.rope_theta"].as<float>();
  c.tie_embeddings = vm["model.tie_embeddings"].as<bool>();
  c.value_head = vm["model.value_head"].as<bool>();
  try {
    c.validate("[model] options");
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  return c;
}

bool model_config_given(const po::variables_map& vm) {
  for (const auto& kv : vm)
    if (kv.first.rfind("model.", 0) == 0 && !kv.second.defaulted()) return true;
  return false;
}

TrainConfig train_config(const po::variables_map& vm) {
  TrainConfig t;
  t.steps = vm["train.steps"].as<int64_t>();
  t.batch_size = vm["train.batch_size"].as<int>();
  t.micro_batch_size = vm["train.micro_batch_size"].as<int>();
  t.seq_len = vm["train.seq_len"].as<int>();
  t.lr = vm["train.lr"].as<double>();
  t.min_lr = vm["train.min_lr"].as<double>();
  t.warmup_steps = vm["train.warmup_steps"].as<int64_t>();
  t.weight_decay = vm["train.weight_decay"].as<double>();
  t.beta1 = vm["train.beta1"].as<double>();
  t.beta2 = vm["train.beta2"].as<double>();
  t.eps = vm["train.eps"].as<double>();
  t.grad_clip = vm["train.grad_clip"].as<double>();
  t.seed = vm["train.seed"].as<uint64_t>();
  t.shuffle = vm["train.shuffle"].as<bool>();
  t.log_every = vm["train.log_every"].as<int>();
  t.zero1 = vm["train.zero1"].as<bool>();
  t.overlap_grad_reduce = vm["train.overlap_reduce"].as<bool>();
  try {
    t.validate();
  } catch (const std::exception& e) {
    throw UsageError(e.what());
  }
  return t;
}

void add_checkpoint_options(po::options_description& d) {
  d.add_options()("save_every", po::value<int64_t>()->default_value(0),
                  "write a checkpoint to OUT/ckpt/step-N every N steps (0: only OUT/final)")(
      "keep_last", po::value<int>()->default_value(0),
      "keep only the newest K step checkpoints, deleting older ones after the new one is "
      "complete (0: keep all)")(
      "resume", po::value<std::string>()->default_value("auto"),
      "auto: continue from the newest sound checkpoint in OUT/ckpt (skipping damaged ones), "
      "if any; none: start over; or a checkpoint directory");
}

CheckpointOptions checkpoint_options(const po::variables_map& vm) {
  CheckpointOptions o;
  o.save_every = vm["save_every"].as<int64_t>();
  o.keep_last = vm["keep_last"].as<int>();
  o.resume = vm["resume"].as<std::string>();
  if (o.save_every < 0 || o.keep_last < 0)
    throw UsageError("--save_every and --keep_last must be >= 0");
  return o;
}

std::string required(const po::variables_map& vm, const std::string& key, const Phase& phase) {
  if (!vm.count(key) || vm[key].as<std::string>().empty())
    throw UsageError("xwin " + phase.name + " needs --" + key + " (or '" + key +
                     " = ...' in the deck's [" + section_of(phase) + "] section)");
  return vm[key].as<std::string>();
}

}  // namespace cli
}  // namespace xwin
