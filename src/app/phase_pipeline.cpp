// xwin pipeline: the whole Xwin-LM recipe on the embedded verifiable tasks, in one command.
//
//   prepare  tasks (src/tasks) -> SFT demonstrations (some wrong, as real SFT data is) and
//            prompt sets -> a SentencePiece tokenizer -> HDF5 datasets
//   sft      a small Llama from random initialisation
//   pairs    pair_candidates responses per prompt sampled from the SFT model, judged two by two by
//            the oracle; the best is paired with each response it beat: Xwin-Pair
//   rm       the reward model, from the SFT model
//   sample   64 unique responses per prompt scored by the RM: the Xwin-Set (and 64 independent
//            draws on held-out prompts for best-of-N)
//   rs       finetune the SFT model on each prompt's best response (+ the candidates ablation)
//   dpo      DPO from the RS model on best-vs-rejected pairs of the Xwin-Set (+ rank ablation)
//   eval     held-out oracle accuracy of every model, RM accuracy, best-of-N, paired differences
//            with 95% intervals; report.md + plots, results.json, per-task outcomes.jsonl
//
// Each stage runs the ordinary phases (the same code as `xwin sft`, `xwin rm`, ...) in this
// process on every rank, with the deck's sections for their options. A finished stage leaves
// RUN/stages/NAME.done; a rerun skips finished stages and the phases resume from their own
// checkpoints and parts, so rerunning the command resumes rather than restarts.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "align/rm_objective.h"
#include "app/cli.h"
#include "app/eval_tasks.h"
#include "app/model_source.h"
#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/signals.h"
#include "core/timer.h"
#include "io/checkpoint.h"
#include "io/datasets.h"
#include "io/jsonl.h"
#include "io/records.h"
#include "parallel/grid.h"
#include "tasks/oracle.h"

namespace xwin::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::vector<std::string> kStages = {"prepare", "sft", "pairs", "rm",
                                          "sample",  "rs",  "dpo",   "eval"};

// A list option's words ("4 16", "add,sort"): separated by spaces, commas or tabs.
std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::string w;
  for (char c : text + " ")
    if (c == ' ' || c == ',' || c == '\t') {
      if (!w.empty()) out.push_back(w), w.clear();
    } else {
      w += c;
    }
  return out;
}

struct Run {
  const po::variables_map& vm;
  std::string deck, dir;
  Grid grid;

  std::string path(const std::string& rel) const { return (fs::path(dir) / rel).string(); }
  std::string tokenizer() const { return path("tokenizer/tokenizer.model"); }
  template <typename T>
  T get(const char* key) const {
    return vm[key].as<T>();
  }
  bool rank0() const { return grid.rank == 0; }
  // A list option: words separated by spaces or commas ("4 16", "4,16").
  std::vector<std::string> list(const char* key) const { return words(vm[key].as<std::string>()); }
};

// The shortest decimal that reads back as x (0.1, not 0.10000000000000001).
template <typename T>
std::string shortest(T x) {
  for (int digits = 6;; digits++) {
    std::ostringstream s;
    s.precision(digits);
    s << x;
    if (digits >= 17 || (T)std::stod(s.str()) == x) return s.str();
  }
}

// An option's value as the command line would spell it.
std::string spelled(const po::variable_value& v) {
  const boost::any& a = v.value();
  std::ostringstream s;
  if (const auto* x = boost::any_cast<std::string>(&a)) return *x;
  if (const auto* x = boost::any_cast<bool>(&a)) return *x ? "true" : "false";
  if (const auto* x = boost::any_cast<float>(&a)) return shortest(*x);
  if (const auto* x = boost::any_cast<double>(&a)) return shortest(*x);
  if (const auto* x = boost::any_cast<int>(&a)) s << *x;
  if (const auto* x = boost::any_cast<int64_t>(&a)) s << *x;
  if (const auto* x = boost::any_cast<uint64_t>(&a)) s << *x;
  require(!s.str().empty(), "internal: pipeline cannot pass on an option of this type");
  return s.str();
}

// The pipeline's own [model], [train] and [template] settings from the command line (the deck
// reaches the stages by --config): each stage gets those of the groups it has. A stage's steps
// and learning rates come from train_args instead.
std::vector<std::string> overrides(const Run& r, const std::string& phase_name) {
  const Phase* sub = nullptr;
  for (const Phase& p : phases())
    if (p.name == phase_name) sub = &p;
  require(sub != nullptr, "internal: pipeline runs an unknown phase ", phase_name);
  const std::vector<std::pair<std::string, Group>> prefixes = {
      {"model.", Group::Model}, {"train.", Group::Train}, {"template.", Group::Template}};
  std::vector<std::string> out;
  for (const auto& [key, value] : r.vm) {
    if (value.defaulted() || key == "train.steps" || key == "train.lr" || key == "train.min_lr" ||
        key == "train.warmup_steps" || key == "train.micro_batch_size")
      continue;
    for (const auto& [prefix, group] : prefixes)
      if (key.rfind(prefix, 0) == 0 &&
          std::find(sub->groups.begin(), sub->groups.end(), group) != sub->groups.end())
        out.insert(out.end(), {"--" + key, spelled(value)});
  }
  return out;
}

// Runs `xwin ARGS... --config DECK` in this process, on every rank, with the pipeline's
// command-line overrides of the shared groups.
void phase(const Run& r, std::vector<std::string> args) {
  const bool two_words =
      args.size() > 1 && std::any_of(phases().begin(), phases().end(), [&](const Phase& p) {
        return p.name == args[0] + " " + args[1];
      });
  const std::vector<std::string> extra =
      overrides(r, two_words ? args[0] + " " + args[1] : args[0]);
  args.insert(args.end(), extra.begin(), extra.end());
  if (!r.deck.empty()) args.insert(args.end(), {"--config", r.deck});
  std::string line = "xwin";
  std::vector<char*> argv = {const_cast<char*>("xwin")};
  for (std::string& a : args) argv.push_back(a.data()), line += " " + a;
  log0("pipeline: %s", line.c_str());
  po::variables_map vm;
  const Phase* p = parse((int)argv.size(), argv.data(), vm);
  require(p != nullptr, "pipeline: '", line, "' did not name a phase");
  require(p->run(vm) == 0, "pipeline: '", line, "' failed");
}

// A measured value for the report, to 6 significant digits.
std::string num(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

// ---- prepare --------------------------------------------------------------------------------

json prompt_record(const tasks::Task& t) {
  return {{"messages", turns_to_json(t.prompt, TurnFormat::OpenAI)}};
}

json demo_record(const tasks::Task& t, const std::string& reply) {
  Conversation c = t.prompt;
  c.push_back({Role::Assistant, reply});
  return conversation_to_json(c, TurnFormat::OpenAI);
}

void write_jsonl(const std::string& path, const std::vector<json>& rows) {
  JsonlWriter w(path);
  for (const json& j : rows) w.write(j);
  w.commit();
}

void stage_prepare(const Run& r) {
  const uint64_t seed = r.get<uint64_t>("seed");
  const std::vector<std::string> only = r.list("families");
  struct Set {
    const char* name;
    int n;
    tasks::Split split;
  };
  const std::vector<Set> sets = {{"sft", r.get<int>("n_sft"), tasks::Split::Train},
                                 {"pairs", r.get<int>("n_pairs"), tasks::Split::Train},
                                 {"rl", r.get<int>("n_rl"), tasks::Split::Train},
                                 {"heldout", r.get<int>("n_eval"), tasks::Split::Heldout},
                                 {"rm_heldout", r.get<int>("n_rm_eval"), tasks::Split::Heldout},
                                 {"bon", r.get<int>("n_bon"), tasks::Split::Heldout}};
  if (r.rank0()) {
    fs::create_directories(r.path("tasks"));
    fs::create_directories(r.path("data"));
    const double noise = r.get<double>("sft_noise");
    const double noisy_share = r.get<double>("noisy_share");
    const std::vector<std::string> noisy = r.list("noisy_families");
    const std::string kind = r.get<std::string>("sft_noise_kind");
    for (size_t s = 0; s < sets.size(); s++) {
      // Best-of-N prompts are the first n_bon held-out tasks.
      const uint64_t stream = std::string(sets[s].name) == "bon" ? 3 : s;
      std::vector<tasks::Task> ts =
          tasks::generate(sets[s].n, seed * 1000 + stream, sets[s].split, only);
      write_tasks(r.path("tasks/" + std::string(sets[s].name) + ".jsonl"), ts);
      std::vector<json> rows;
      for (size_t i = 0; i < ts.size(); i++) {
        if (std::string(sets[s].name) == "sft") {
          const bool in_noisy = std::find(noisy.begin(), noisy.end(), ts[i].family) != noisy.end();
          const bool wrong =
              rng_uniform(seed, 0x5346540000000000ull, i) < (in_noisy ? noisy_share : noise);
          rows.push_back(
              demo_record(ts[i], wrong ? tasks::bad_reply(kind, ts[i], seed + i) : ts[i].answer));
        } else {
          rows.push_back(prompt_record(ts[i]));
        }
      }
      write_jsonl(r.path("data/" + std::string(sets[s].name) + ".jsonl"), rows);
      if (std::string(sets[s].name) == "heldout") {  // correct demonstrations: held-out SFT loss
        rows.clear();
        for (const tasks::Task& t : ts) rows.push_back(demo_record(t, t.answer));
        write_jsonl(r.path("data/heldout_demos.jsonl"), rows);
      }
    }
    char share[160] = "";
    if (!noisy.empty())
      std::snprintf(share, sizeof share, ", %.0f%% in %s", 100 * noisy_share,
                    r.get<std::string>("noisy_families").c_str());
    const std::string families = only.empty() ? "all families" : r.get<std::string>("families");
    log0(
        "pipeline: tasks of %s; %d SFT demonstrations (%.0f%% %s%s), prompts for pairs %d, "
        "RL %d, held-out %d",
        families.c_str(), r.get<int>("n_sft"), 100 * noise, kind.c_str(), share,
        r.get<int>("n_pairs"), r.get<int>("n_rl"), r.get<int>("n_eval"));
  }
  barrier(r.grid.world);
  const std::string vocab = std::to_string(r.get<int>("model.vocab_size"));
  // The tokenizer learns from the SFT demonstrations plus one line of every printable ASCII
  // character, so that no character of any prompt (held-out phrasings included) is <unk>. A
  // rerun keeps an existing tokenizer: the SFT model's ids depend on it.
  if (!fs::exists(r.tokenizer())) {
    if (r.rank0()) {
      std::ofstream cs(r.path("data/charset.txt"));
      for (char c = ' '; c <= '~'; c++) cs << c;
      cs << "\n";
    }
    barrier(r.grid.world);
    phase(r, {"tokenizer", "train", "--out", r.path("tokenizer"), "--vocab_size", vocab,
              "--byte_fallback", "false", "--character_coverage", "1", "--input",
              r.path("data/sft.jsonl"), "--input", r.path("data/charset.txt")});
  }
  const std::string len = std::to_string(r.get<int>("model.max_seq_len"));
  const std::vector<std::string> text = {"--tokenizer.model", r.tokenizer(), "--max_seq_len", len,
                                         "--overlong",        "error"};
  auto convert = [&](const char* kind, const std::string& in, const std::string& out) {
    std::vector<std::string> a = {"data", kind, "--in", r.path(in), "--out", r.path(out)};
    a.insert(a.end(), text.begin(), text.end());
    try {
      phase(r, a);
    } catch (const OverlongRecord& e) {
      // `xwin data` names its own --max_seq_len; here the limit is the model's.
      fail(e.what(), "\n  from xwin pipeline: raise --model.max_seq_len (rotary positions have no ",
           "weights, so only the longest batch grows; the rerun keeps the tokenizer)");
    }
  };
  convert("sft", "data/sft.jsonl", "data/sft.h5");
  convert("sft", "data/heldout_demos.jsonl", "data/heldout_demos.h5");
  for (const char* s : {"pairs", "rl", "heldout", "rm_heldout", "bon"})
    convert("prompts", std::string("data/") + s + ".jsonl", std::string("data/") + s + ".h5");
}

// ---- training stages ------------------------------------------------------------------------

// A stage's steps and learning rate; the cosine ends at train.min_lr, or at the stage's own
// rate when that is lower (a gentle DPO below the default floor). The warm-up is
// train.warmup_steps but at most a tenth of the stage, so that a short stage (RS, DPO: tens of
// steps) trains at its learning rate instead of spending every step warming up to it.
// The micro-batch is the deck's, lowered to fit when the data-parallel ranks cannot share the
// batch in micro-batches of that size (the demo's 32 of 32 on `mpirun -np 2`: 16 per rank); on
// one rank, or when it fits, the deck's value is used as is.
std::vector<std::string> train_args(const Run& r, const std::string& stage) {
  const double lr = r.get<double>((stage + "_lr").c_str());
  const int64_t steps = r.get<int64_t>((stage + "_steps").c_str());
  const int64_t warmup = std::min(r.get<int64_t>("train.warmup_steps"), steps / 10);
  const int batch = r.get<int>("train.batch_size"), dp = r.grid.dp_size;
  int micro = r.get<int>("train.micro_batch_size");
  if (micro > 0 && batch % dp == 0 && batch % (micro * dp) != 0) {
    const int per_rank = batch / dp;
    const int asked = micro;
    while (per_rank % micro != 0) micro--;
    log0("pipeline: %s: train.micro_batch_size %d -> %d (batch %d over %d data-parallel ranks)",
         stage.c_str(), asked, micro, batch, dp);
  }
  return {"--train.steps",
          std::to_string(steps),
          "--train.lr",
          shortest(lr),
          "--train.min_lr",
          shortest(std::min(lr, r.get<double>("train.min_lr"))),
          "--train.warmup_steps",
          std::to_string(warmup),
          "--train.micro_batch_size",
          std::to_string(micro)};
}

void train(const Run& r, const std::string& phase_name, const std::string& stage,
           std::vector<std::string> args) {
  std::vector<std::string> a = {phase_name};
  a.insert(a.end(), args.begin(), args.end());
  const std::vector<std::string> t = train_args(r, stage);
  a.insert(a.end(), t.begin(), t.end());
  if (const int64_t every = r.get<int64_t>("save_every"); every > 0)
    a.insert(a.end(), {"--save_every", std::to_string(every), "--keep_last", "2"});
  phase(r, a);
}

void stage_sft(const Run& r) {
  train(r, "sft", "sft",
        {"--data", r.path("data/sft.h5"), "--eval_data", r.path("data/heldout_demos.h5"), "--out",
         r.path("sft"), "--tokenizer.model", r.tokenizer()});
}

std::string ckpt(const Run& r, const std::string& stage) {
  return r.path(stage + "/final");
}

// Samples `k` responses per prompt of data/NAME.h5 from the policy (scored by `rm` if given), at
// `temperature` (< 0: the deck's [sample] temperature).
void sample(const Run& r, const std::string& prompts, const std::string& policy,
            const std::string& rm, int k, const std::string& out, uint64_t seed,
            double temperature = -1, bool unique = true) {
  std::vector<std::string> a = {"sample",
                                "--prompts",
                                r.path("data/" + prompts + ".h5"),
                                "--policy",
                                policy,
                                "--out",
                                out,
                                "--num_samples",
                                std::to_string(k),
                                "--seed",
                                std::to_string(seed),
                                "--max_new_tokens",
                                std::to_string(r.get<int>("max_new_tokens")),
                                "--eos_id",
                                "2"};
  if (!rm.empty()) a.insert(a.end(), {"--rm", rm});
  if (temperature >= 0) a.insert(a.end(), {"--temperature", std::to_string(temperature)});
  if (!unique) a.insert(a.end(), {"--unique", "false"});
  phase(r, a);
}

// Xwin-Pair: the oracle judges every two of a prompt's K sampled responses through the judge
// interface (one question when K = 2); the response that wins the most comparisons is paired
// with each response it beat (best_vs_beaten). Rank 0 writes the pairs dataset and a journal of
// every verdict.
void annotate(const Run& r, const std::string& samples, const std::string& tasks_file,
              const std::string& out) {
  if (!r.rank0()) return;
  const XwinSetDataset set = XwinSetDataset::load(samples);
  require(set.K >= 2, samples, ": need 2 responses per prompt to make pairs");
  const Tokenizer tok(r.tokenizer());
  const ChatEncoder enc(tok, chat_template(r.vm));
  tasks::Oracle oracle(read_tasks(tasks_file));
  PairJudge& judge = oracle;
  const std::vector<std::pair<int, int>> matches = round_robin((int)set.K);
  std::vector<PairQuestion> qs;
  for (size_t p = 0; p < set.size(); p++) {
    // each response decoded once, asked about K - 1 times
    const std::vector<std::string> reply = set.decode_replies(p, enc);
    const Conversation prompt = set.decode_prompt(p, enc);
    for (const auto& [i, j] : matches) qs.push_back({prompt, reply[i], reply[j]});
  }
  const std::vector<PairVerdict> verdicts = judge.judge(qs);
  std::map<Winner, int64_t> counts;
  JsonlWriter journal(out + ".annotations.jsonl");
  for (size_t q = 0; q < qs.size(); q++) {
    counts[verdicts[q].winner]++;
    journal.write({{"prompt", qs[q].prompt.back().text},
                   {"A", qs[q].a},
                   {"B", qs[q].b},
                   {"winner", winner_name(verdicts[q].winner)},
                   {"why", verdicts[q].explanation}});
  }
  journal.commit();
  TokenDataset prompt, chosen, rejected;
  auto row = [](const TokenDataset& d, size_t i) {
    return std::vector<int32_t>(d.tokens.begin() + d.offsets[i],
                                d.tokens.begin() + d.offsets[i + 1]);
  };
  for (size_t p = 0; p < set.size(); p++) {
    std::vector<Winner> w;
    for (size_t q = p * matches.size(); q < (p + 1) * matches.size(); q++)
      w.push_back(verdicts[q].winner);
    for (const auto& [c, x] : best_vs_beaten((int)set.K, w)) {
      prompt.append(row(set.prompt, p), {});
      chosen.append(row(set.responses, p * set.K + c), {});
      rejected.append(row(set.responses, p * set.K + x), {});
    }
  }
  require(prompt.size() > 0, samples, ": the oracle preferred no response for every prompt; ",
          "raise [sample] temperature or n_pairs");
  DatasetWriter w(out, MPI_COMM_SELF);
  w.ragged("prompt", prompt, false);
  w.ragged("chosen", chosen, false);
  w.ragged("rejected", rejected, false);
  w.attr("n_ties", counts[Winner::Tie]);
  DatasetInfo info = set.info;
  info.schema = kSchemaPairs;
  info.source = samples + " judged by " + judge.name();
  info.n_kept = (int64_t)prompt.size(), info.n_truncated = 0, info.n_dropped = 0;
  info.n_skipped = (int64_t)(qs.size() - prompt.size());  // verdicts that made no pair
  w.info(info);
  w.commit();
  log0("pipeline: %s: %lld pairs from %lld verdicts (A %lld, B %lld, ties %lld) -> %s",
       judge.name().c_str(), (long long)prompt.size(), (long long)qs.size(),
       (long long)counts[Winner::A], (long long)counts[Winner::B], (long long)counts[Winner::Tie],
       out.c_str());
}

void stage_pairs(const Run& r) {
  if (r.rank0()) fs::create_directories(r.path("pairs"));
  barrier(r.grid.world);
  const uint64_t seed = r.get<uint64_t>("seed");
  for (const char* s : {"pairs", "rm_heldout"}) {
    const std::string samples = r.path(std::string("pairs/") + s + "_samples.h5");
    // The held-out pairs stay two draws a prompt, so RM accuracy means the same for any K.
    const int k = std::string(s) == "pairs" ? r.get<int>("pair_candidates") : 2;
    if (!fs::exists(samples)) sample(r, s, ckpt(r, "sft"), "", k, samples, seed * 7 + 1);
    annotate(r, samples, r.path(std::string("tasks/") + s + ".jsonl"),
             r.path(std::string("pairs/") + s + ".h5"));
    barrier(r.grid.world);
  }
}

void stage_rm(const Run& r) {
  train(r, "rm", "rm",
        {"--data", r.path("pairs/pairs.h5"), "--eval_data", r.path("pairs/rm_heldout.h5"), "--init",
         ckpt(r, "sft"), "--out", r.path("rm")});
}

void stage_sample(const Run& r) {
  const uint64_t seed = r.get<uint64_t>("seed");
  const int K = r.get<int>("num_samples");
  const double t = r.get<double>("set_temperature");
  sample(r, "rl", ckpt(r, "sft"), ckpt(r, "rm"), K, r.path("xwin_set.h5"), seed * 7 + 2, t);
  // Best-of-N takes N independent draws, duplicates kept: a unique set over-weights the tail
  // (at T = 0.5 the SFT model repeats itself: 64 distinct answers took ~190 draws a prompt).
  sample(r, "bon", ckpt(r, "sft"), ckpt(r, "rm"), K, r.path("bon_set.h5"), seed * 7 + 3, t, false);
}

std::vector<int> rs_ablation(const Run& r) {
  std::vector<int> n;
  for (const std::string& x : r.list("rs_candidates")) {
    const int v = std::atoi(x.c_str());
    if (v <= 0 || std::to_string(v) != x)
      throw UsageError("--rs_candidates: '" + x + "' is not a positive number");
    if (v < r.get<int>("num_samples")) n.push_back(v);
  }
  return n;
}

void stage_rs(const Run& r) {
  const std::vector<std::string> common = {"--data", r.path("xwin_set.h5"), "--init",
                                           ckpt(r, "sft")};
  auto run = [&](const std::string& out, std::vector<std::string> extra) {
    if (fs::exists(r.path(out + "/final"))) return;
    std::vector<std::string> a = common;
    a.insert(a.end(), {"--out", r.path(out)});
    a.insert(a.end(), extra.begin(), extra.end());
    train(r, "rs", "rs", a);
  };
  run("rs", {});
  for (int n : rs_ablation(r))
    run("ablations/rs_n" + std::to_string(n), {"--candidates", std::to_string(n)});
}

void stage_dpo(const Run& r) {
  const std::string init = ckpt(r, r.get<std::string>("dpo_init"));
  auto run = [&](const std::string& out, const std::string& rank) {
    if (fs::exists(r.path(out + "/final"))) return;
    train(r, "dpo", "dpo",
          {"--data", r.path("xwin_set.h5"), "--init", init, "--out", r.path(out), "--rejected_rank",
           rank});
  };
  run("dpo", r.get<std::string>("rejected_rank"));
  for (const std::string& rank : r.list("dpo_rejected_ablation"))
    if (rank != r.get<std::string>("rejected_rank")) run("ablations/dpo_" + rank, rank);
}

// ---- eval and report ------------------------------------------------------------------------

struct BestOfN {
  std::vector<int> n;
  std::vector<double> rm_pick, pass;  // accuracy of the RM's pick among the first N; any correct
  std::vector<bool> pick_ok;          // per prompt: the RM's pick among all K draws is correct
  // Per task family: the same two curves, the accuracy of one draw, and how well the RM ranks a
  // prompt's draws: the share of (correct, wrong) draw pairs of one prompt whose correct draw
  // scores higher (ties count half), against every wrong draw and against near misses only
  // (wrong with partial credit: committed answers, not hedges or refusals). 0.5 is chance.
  json by_family;
};

BestOfN best_of_n(const Run& r, const ChatEncoder& enc, const std::vector<tasks::Task>& ts) {
  const XwinSetDataset set = XwinSetDataset::load(r.path("bon_set.h5"));
  require(set.size() == ts.size(), r.path("bon_set.h5"), ": ", set.size(),
          " prompts, but tasks/bon.jsonl has ", ts.size(), "; rerun the sample stage");
  BestOfN b;
  for (int n = 1; n <= set.K; n *= 4) b.n.push_back(n);
  if (b.n.back() != set.K) b.n.push_back((int)set.K);
  // Counted per family; the overall curves are the families' counts over all prompts.
  struct Family {
    int64_t prompts = 0;
    double draw = 0;
    std::vector<double> rm_pick, pass;  // prompts whose RM pick / any draw is correct, per N
    double above[2] = {0, 0}, pairs[2] = {0, 0};  // [0]: every wrong draw, [1]: near misses
  };
  std::map<std::string, Family> fam;
  for (size_t p = 0; p < set.size(); p++) {
    const std::vector<std::string> reply = set.decode_replies(p, enc);
    std::vector<bool> ok(set.K), near(set.K);
    for (int k = 0; k < set.K; k++) {
      const tasks::Grade g = tasks::grade(ts[p], reply[k]);
      ok[k] = g.correct, near[k] = !g.correct && g.credit > 0;
    }
    Family& f = fam[ts[p].family];
    if (f.prompts++ == 0) f.rm_pick.assign(b.n.size(), 0), f.pass.assign(b.n.size(), 0);
    const float* score = set.scores.data() + p * set.K;
    for (int c = 0; c < set.K; c++) {
      f.draw += ok[c] / (double)set.K;
      if (!ok[c]) continue;
      for (int w = 0; w < set.K; w++) {
        if (ok[w]) continue;
        const double above = score[c] > score[w] ? 1 : score[c] == score[w] ? 0.5 : 0;
        f.above[0] += above, f.pairs[0]++;
        if (near[w]) f.above[1] += above, f.pairs[1]++;
      }
    }
    // Responses are stored in draw order, so the first N are N independent draws.
    for (size_t j = 0; j < b.n.size(); j++) {
      int best = 0;
      bool any = false;
      for (int k = 0; k < b.n[j]; k++) {
        if (score[k] > score[best]) best = k;
        any = any || ok[k];
      }
      f.rm_pick[j] += ok[best], f.pass[j] += any;
      if (j + 1 == b.n.size()) b.pick_ok.push_back(ok[best]);
    }
  }
  b.rm_pick.assign(b.n.size(), 0), b.pass.assign(b.n.size(), 0);
  auto share = [](double a, double n) { return n > 0 ? json(a / n) : json(nullptr); };
  for (auto& [name, f] : fam) {
    for (size_t j = 0; j < b.n.size(); j++) {
      b.rm_pick[j] += f.rm_pick[j], b.pass[j] += f.pass[j];
      f.rm_pick[j] /= f.prompts, f.pass[j] /= f.prompts;
    }
    b.by_family[name] = {{"prompts", f.prompts},
                         {"draw", f.draw / f.prompts},
                         {"rm", f.rm_pick},
                         {"oracle", f.pass},
                         {"rm_ranks_correct_above_wrong", share(f.above[0], f.pairs[0])},
                         {"rm_ranks_correct_above_near_miss", share(f.above[1], f.pairs[1])}};
  }
  for (size_t j = 0; j < b.n.size(); j++) b.rm_pick[j] /= set.size(), b.pass[j] /= set.size();
  return b;
}

// Loss curves of a training run: "step loss" rows from OUT/metrics.jsonl.
std::string curve(const std::string& metrics, const std::string& dat) {
  std::ifstream in(metrics);
  std::ofstream out(dat);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("loss") && j.contains("step"))
      out << j["step"].get<int64_t>() << " " << j["loss"].get<double>() << "\n";
  }
  return dat;
}

void plots(const Run& r, const json& res) {
  const std::string dir = r.path("report");
  std::ofstream gp(dir + "/plots.gp");
  gp << "set terminal pngcairo size 900,520\nset grid\nset key outside right\n";
  gp << "set output '" << dir << "/training.png'\nset multiplot layout 2,2 title 'training loss'\n";
  for (const char* s : {"sft", "rm", "rs", "dpo"})
    gp << "set title '" << s << "'\nplot '"
       << curve(r.path(std::string(s) + "/metrics.jsonl"), dir + "/" + s + ".dat")
       << "' using 1:2 with lines notitle\n";
  gp << "unset multiplot\n";
  {
    std::ofstream acc(dir + "/accuracy.dat");
    for (const auto& [name, m] : res["models"].items())
      acc << "\"" << name << "\" " << m["accuracy"].get<double>() << "\n";
  }
  gp << "set output '" << dir << "/accuracy.png'\nset title 'held-out oracle accuracy'\n"
     << "set style fill solid 0.6\nset yrange [0:1]\nset boxwidth 0.6\n"
     << "plot '" << dir << "/accuracy.dat' using 0:2:xtic(1) with boxes notitle\n";
  {
    std::ofstream bon(dir + "/best_of_n.dat");
    for (size_t j = 0; j < res["best_of_n"]["n"].size(); j++)
      bon << res["best_of_n"]["n"][j].get<int>() << " " << res["best_of_n"]["rm"][j].get<double>()
          << " " << res["best_of_n"]["oracle"][j].get<double>() << "\n";
  }
  gp << "set output '" << dir << "/best_of_n.png'\nset title 'best of N on held-out prompts'\n"
     << "set logscale x 2\nset xlabel 'N'\nset yrange [0:1]\n"
     << "plot '" << dir << "/best_of_n.dat' using 1:2 with linespoints title 'RM picks',"
     << " '' using 1:3 with linespoints title 'any correct (oracle)', "
     << res["models"]["rs"]["accuracy"].get<double>() << " title 'RS model'\n";
  gp.close();
  const std::string cmd = "gnuplot '" + dir + "/plots.gp' 2>'" + dir + "/gnuplot.log'";
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    log0("pipeline: gnuplot not found: plots skipped (%s/plots.gp draws them)", dir.c_str());
  else if (std::system(cmd.c_str()) != 0)
    log0("pipeline: gnuplot failed (see %s/gnuplot.log); the report has the numbers", dir.c_str());
}

std::string pct(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100 * x);
  return b;
}

// A share in [0, 1] to two decimals; "-" for null (nothing to measure).
std::string two_decimals(const json& x) {
  char b[32] = "-";
  if (!x.is_null()) std::snprintf(b, sizeof b, "%.2f", x.get<double>());
  return b;
}

// A difference of two shares in points, signed.
std::string points(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%+.1f", 100 * x);
  return b;
}

// Paired differences with 95% intervals: RS - SFT and DPO - RS on the held-out tasks, and the
// RM's pick of the best-of-N draws - RS on the best-of-N prompts, which are the first n_bon
// held-out tasks (left out if they are not).
json differences(const std::vector<tasks::Task>& held, const std::vector<tasks::Task>& bon,
                 const std::map<std::string, std::vector<bool>>& correct, const BestOfN& b) {
  json out = json::array();
  auto add = [&](const std::string& name, const std::vector<bool>& x, const std::vector<bool>& y) {
    const PairedDifference d = paired_difference(x, y);
    out.push_back({{"name", name}, {"n", d.n}, {"diff", d.diff}, {"ci95", {d.lo, d.hi}}});
  };
  const std::vector<bool>& rs = correct.at("rs");
  add("RS - SFT", rs, correct.at("sft"));
  add("DPO - RS", correct.at("dpo"), rs);
  bool prefix = bon.size() <= held.size();
  for (size_t i = 0; prefix && i < bon.size(); i++)
    prefix = tasks::to_json(bon[i]) == tasks::to_json(held[i]);
  if (prefix)
    add("best-of-" + std::to_string(b.n.back()) + " - RS", b.pick_ok,
        std::vector<bool>(rs.begin(), rs.begin() + (long)bon.size()));
  else
    log0(
        "pipeline: the best-of-N prompts are not the first held-out tasks (n_bon > n_eval?): "
        "no paired best-of-N - RS difference");
  return out;
}

// report/outcomes.jsonl: every held-out task's family and whether each model answered it
// correctly, and for the best-of-N prompts whether the RM's pick of all N draws is correct.
void write_outcomes(const Run& r, const std::vector<tasks::Task>& held,
                    const std::map<std::string, std::vector<bool>>& correct, const BestOfN& b) {
  std::ofstream out(r.path("report/outcomes.jsonl"));
  const std::string bon = "best_of_" + std::to_string(b.n.back());
  for (size_t i = 0; i < held.size(); i++) {
    json row = {{"task", i}, {"family", held[i].family}};
    for (const auto& [m, c] : correct) row[m] = (bool)c[i];
    if (i < b.pick_ok.size()) row[bon] = (bool)b.pick_ok[i];
    out << row.dump() << "\n";
  }
  require(out.good(), r.path("report/outcomes.jsonl"), ": write failed");
}

void report(const Run& r, const json& res) {
  std::ostringstream md;
  md << "# xwin pipeline report\n\nRun directory `" << r.dir << "`, deck `"
     << (r.deck.empty() ? "(none)" : r.deck) << "`, seed " << r.get<uint64_t>("seed") << ".\n\n";
  md << "## Held-out oracle accuracy\n\n| model | accuracy | mean credit |\n|---|---|---|\n";
  for (const auto& [name, m] : res["models"].items())
    md << "| " << name << " | " << pct(m["accuracy"]) << " | " << num(m["credit"]) << " |\n";
  md << "\n### By task family\n\n| family |";
  for (const auto& [name, m] : res["models"].items()) md << " " << name << " |";
  md << "\n|---|";
  for (size_t i = 0; i < res["models"].size(); i++) md << "---|";
  md << "\n";
  for (const auto& [fam, f] : res["models"]["sft"]["by_family"].items()) {
    md << "| " << fam << " |";
    for (const auto& [name, m] : res["models"].items())
      md << " " << pct(m["by_family"][fam]["accuracy"]) << " |";
    md << "\n";
  }
  md << "\n### Differences, task by task\n\nEach pair of models compared on the same tasks; the "
        "95% confidence interval comes from the spread of the per-task differences (normal "
        "approximation). Per-task outcomes: `outcomes.jsonl`.\n\n| comparison | tasks | "
        "difference (points) | 95% CI |\n|---|---|---|---|\n";
  for (const json& d : res["differences"])
    md << "| " << d["name"].get<std::string>() << " | " << d["n"] << " | " << points(d["diff"])
       << " | " << points(d["ci95"][0]) << " to " << points(d["ci95"][1]) << " |\n";
  md << "\n## Reward model\n\nHeld-out pairwise accuracy on oracle pairs: "
     << pct(res["rm"]["accuracy"]) << " (" << res["rm"]["pairs"] << " pairs, mean reward gap "
     << num(res["rm"]["mean_gap"]) << "). Trained on " << res["rm"]["train_pairs"]
     << " Xwin-Pair pairs: " << res["rm"]["pair_candidates"]
     << " SFT draws a prompt, judged two by two by the oracle, the best against each draw it "
        "beat.\n\n";
  md << "## Best of N (N independent SFT samples, RM picks; held-out prompts)\n\n| N | RM pick | "
        "any correct "
        "(oracle upper bound) |\n|---|---|---|\n";
  for (size_t j = 0; j < res["best_of_n"]["n"].size(); j++)
    md << "| " << res["best_of_n"]["n"][j] << " | " << pct(res["best_of_n"]["rm"][j]) << " | "
       << pct(res["best_of_n"]["oracle"][j]) << " |\n";
  const json& bf = res["best_of_n"]["by_family"];
  const size_t last = res["best_of_n"]["n"].size() - 1;
  const int n_max = res["best_of_n"]["n"][last];
  md << "\n### By task family\n\nOne draw: accuracy of a single SFT sample. RM ranking: of the "
        "pairs (correct draw, wrong draw) of one prompt, the share the RM scores in the right "
        "order (0.5 is chance); near misses are wrong draws with partial credit (committed "
        "answers, not hedges or refusals). Where the RM ranks near misses at chance, its pick "
        "among many draws is no better than a random committed answer.\n\n"
     << "| family | prompts | one draw | RM pick of " << n_max << " | any correct of " << n_max
     << " | RM ranking vs wrong | vs near misses |\n|---|---|---|---|---|---|---|\n";
  for (const auto& [fam, f] : bf.items())
    md << "| " << fam << " | " << f["prompts"] << " | " << pct(f["draw"]) << " | "
       << pct(f["rm"][last]) << " | " << pct(f["oracle"][last]) << " | "
       << two_decimals(f["rm_ranks_correct_above_wrong"]) << " | "
       << two_decimals(f["rm_ranks_correct_above_near_miss"]) << " |\n";
  md << "\n![accuracy](accuracy.png)\n![best of N](best_of_n.png)\n![training](training.png)\n";
  std::ofstream(r.path("report/report.md")) << md.str();
}

void stage_eval(const Run& r) {
  const Tokenizer tok(r.tokenizer());
  const ChatEncoder enc(tok, chat_template(r.vm));
  const std::vector<tasks::Task> held = read_tasks(r.path("tasks/heldout.jsonl"));
  json res;
  std::map<std::string, std::vector<bool>> correct;  // model -> per held-out task
  std::vector<std::string> models = {"sft", "rs", "dpo"};
  for (int n : rs_ablation(r)) models.push_back("ablations/rs_n" + std::to_string(n));
  for (const std::string& rank : r.list("dpo_rejected_ablation"))
    if (rank != r.get<std::string>("rejected_rank")) models.push_back("ablations/dpo_" + rank);
  for (const std::string& m : models) {
    Llama policy(checkpoint_config(ckpt(r, m)));
    load_checkpoint(ckpt(r, m), policy);
    const std::vector<TaskResult> got =
        score_tasks(policy, enc, held, r.get<int>("max_new_tokens"), r.get<int>("eval_batch"));
    res["models"][m] = summarize(held, got);
    for (const TaskResult& t : got) correct[m].push_back(t.correct);
    log0("pipeline: eval %-18s held-out accuracy %s", m.c_str(),
         pct(res["models"][m]["accuracy"]).c_str());
  }
  {
    Llama rm = load_with_value_head(ckpt(r, "rm"), 0);
    RmObjective held_pairs(
        groups_from_pairs(PairsDataset::load(r.path("pairs/rm_heldout.h5")), false),
        rm.cfg.max_seq_len, false, 0, 0.0);
    const RmEval e = evaluate_rm(rm, held_pairs, r.get<int>("eval_batch"), r.grid.dp);
    res["rm"] = {
        {"accuracy", e.accuracy},
        {"mean_gap", e.mean_gap},
        {"pairs", e.pairs},
        {"train_pairs", DatasetInfo::read(r.path("pairs/pairs.h5")).n_kept},
        {"pair_candidates", h5::File(r.path("pairs/pairs_samples.h5"), 'r').attr_int("/", "K")}};
  }
  if (r.rank0()) {
    const std::vector<tasks::Task> bon = read_tasks(r.path("tasks/bon.jsonl"));
    const BestOfN b = best_of_n(r, enc, bon);
    res["best_of_n"] = {
        {"n", b.n}, {"rm", b.rm_pick}, {"oracle", b.pass}, {"by_family", b.by_family}};
    res["differences"] = differences(held, bon, correct, b);
    fs::create_directories(r.path("report"));
    write_outcomes(r, held, correct, b);
    std::ofstream(r.path("report/results.json")) << res.dump(2) << "\n";
    report(r, res);
    plots(r, res);
    // The table at the end of the run.
    std::printf("\n%-22s %s\n", "model", "held-out oracle accuracy");
    for (const auto& [name, m] : res["models"].items())
      std::printf("%-22s %s\n", name.c_str(), pct(m["accuracy"]).c_str());
    std::printf("%-22s %s (%lld held-out pairs)\n", "RM pairwise accuracy",
                pct(res["rm"]["accuracy"]).c_str(), (long long)res["rm"]["pairs"].get<int64_t>());
    std::printf("%-22s", "best-of-N (RM pick)");
    for (size_t j = 0; j < b.n.size(); j++)
      std::printf("  N=%d %s", b.n[j], pct(b.rm_pick[j]).c_str());
    std::printf("\n%-22s", "any correct of N");
    for (size_t j = 0; j < b.n.size(); j++)
      std::printf("  N=%d %s", b.n[j], pct(b.pass[j]).c_str());
    std::printf("\n");
    for (const json& d : res["differences"])
      std::printf("%-22s %s points (95%% CI %s to %s; %lld paired tasks)\n",
                  d["name"].get<std::string>().c_str(), points(d["diff"]).c_str(),
                  points(d["ci95"][0]).c_str(), points(d["ci95"][1]).c_str(),
                  (long long)d["n"].get<int64_t>());
    std::printf("report: %s\n", r.path("report/report.md").c_str());
    std::fflush(stdout);
  }
  barrier(r.grid.world);
}

}  // namespace

Phase phase_pipeline() {
  Phase p;
  p.name = "pipeline";
  p.summary = "the whole Xwin-LM recipe on verifiable tasks: SFT, RM, Xwin-Set, RS, DPO, eval";
  p.details =
      "Stages: prepare (tasks, tokenizer, datasets), sft, pairs (--pair_candidates SFT samples\n"
      "per prompt judged two by two by the oracle: Xwin-Pair), rm, sample (the Xwin-Set:\n"
      "--num_samples per prompt, RM-scored), rs, dpo (from the RS model), eval (held-out oracle\n"
      "accuracy, RM accuracy, best-of-N, paired differences RS - SFT, DPO - RS and best-of-N -\n"
      "RS with 95% intervals: RUN_DIR/report/report.md with PNG plots, results.json, and\n"
      "outcomes.jsonl with every held-out task's outcome per model). A finished\n"
      "stage leaves RUN_DIR/stages/NAME.done; rerunning resumes (delete the file to redo a\n"
      "stage). The phases take their options from the deck's own sections ([sft], [rm],\n"
      "[sample], [rs], [dpo], [train], [model], ...); the per-stage step counts and learning\n"
      "rates below override [train]. inputs/demo.ini holds the demo's values (families, n_bon,\n"
      "[model]).";
  p.groups = {Group::Model, Group::Train, Group::Template};
  p.add_options = [](po::options_description& d) {
    d.add_options()("run_dir", po::value<std::string>()->default_value("run/demo"),
                    "run directory: every stage's outputs")(
        "stage", po::value<std::vector<std::string>>()->multitoken(),
        "run only these stages (repeatable; earlier stages must be done); default: all")(
        "seed", po::value<uint64_t>()->default_value(1), "seed of the tasks and the sampling")(
        "families", po::value<std::string>()->default_value(""),
        "task families to use, e.g. \"add sort\" (default: all ten; the demo deck picks six)")(
        "n_sft", po::value<int>()->default_value(64000), "SFT demonstrations")(
        "sft_noise", po::value<double>()->default_value(0.3, "0.3"),
        "share of SFT demonstrations that are bad (see sft_noise_kind)")(
        "noisy_families", po::value<std::string>()->default_value("count convert"),
        "families whose demonstrations came mostly from the weak demonstrator, e.g. \"count\" "
        "(real SFT data is uneven across skills)")("noisy_share",
                                                   po::value<double>()->default_value(0.6, "0.6"),
                                                   "share of bad demonstrations in noisy_families")(
        "sft_noise_kind", po::value<std::string>()->default_value("hedged"),
        "what the bad demonstrations say: hedged: the answer and a second guess (\"42, or maybe "
        "43\"); unhelpful: decline (\"I don't know.\"); lazy: restate part of the question (a "
        "systematic mistake); scattered: near misses")(
        "n_pairs", po::value<int>()->default_value(4000), "prompts sampled for Xwin-Pair")(
        "pair_candidates", po::value<int>()->default_value(2),
        "responses sampled per Xwin-Pair prompt; the oracle compares every two and the one "
        "that wins most is paired with each response it beat (2: one pair a prompt)")(
        "n_rl", po::value<int>()->default_value(300), "prompts of the Xwin-Set (RS and DPO)")(
        "n_eval", po::value<int>()->default_value(1000), "held-out tasks for accuracy")(
        "n_rm_eval", po::value<int>()->default_value(300), "held-out prompts for RM accuracy")(
        "n_bon", po::value<int>()->default_value(100), "held-out prompts for best-of-N")(
        "num_samples", po::value<int>()->default_value(64), "responses per prompt (Xwin-Set)")(
        "set_temperature", po::value<double>()->default_value(0.5, "0.5"),
        "sampling temperature of the Xwin-Set and the best-of-N set (the pairs use [sample] "
        "temperature: diverse pairs teach the RM more, while a cooler Xwin-Set keeps RS close to "
        "what the SFT model does best)")("max_new_tokens", po::value<int>()->default_value(24),
                                         "longest response")(
        "eval_batch", po::value<int>()->default_value(64), "sequences per batch in eval")(
        "sft_steps", po::value<int64_t>()->default_value(2000), "SFT steps")(
        "sft_lr", po::value<double>()->default_value(4e-3, "4e-3"), "SFT peak learning rate")(
        "rm_steps", po::value<int64_t>()->default_value(400), "RM steps")(
        "rm_lr", po::value<double>()->default_value(1e-3, "1e-3"), "RM peak learning rate")(
        "rs_steps", po::value<int64_t>()->default_value(20), "RS steps")(
        "rs_lr", po::value<double>()->default_value(2e-4, "2e-4"), "RS peak learning rate")(
        "dpo_steps", po::value<int64_t>()->default_value(40), "DPO steps")(
        "dpo_lr", po::value<double>()->default_value(1e-4, "1e-4"), "DPO peak learning rate")(
        "save_every", po::value<int64_t>()->default_value(0),
        "> 0: every training stage checkpoints every N steps, keeping the newest 2 (0: each "
        "phase's own [sft]/[rm]/[rs]/[dpo] save_every)")(
        "dpo_init", po::value<std::string>()->default_value("rs"),
        "DPO starts from the rs or the sft model")("rejected_rank",
                                                   po::value<std::string>()->default_value("last"),
                                                   "DPO rejected response: last, median or a rank")(
        "rs_candidates", po::value<std::string>()->default_value(""),
        "ablation: also run RS as the best of N random candidates for these N (e.g. \"4 16\")")(
        "dpo_rejected_ablation", po::value<std::string>()->default_value(""),
        "ablation: also run DPO with these rejected ranks (e.g. median)");
  };
  p.run = [](const po::variables_map& vm) {
    Run r{vm, vm.count("config") ? vm["config"].as<std::string>() : "",
          vm["run_dir"].as<std::string>(), Grid::from_world()};
    if (r.grid.tp_size * r.grid.pp_size != 1 && r.rank0())
      log0("pipeline: sampling and evaluation run with pp = 1 only");
    const std::string noise_kind = vm["sft_noise_kind"].as<std::string>();
    const std::vector<std::string>& kinds = tasks::bad_reply_kinds();
    if (std::find(kinds.begin(), kinds.end(), noise_kind) == kinds.end()) {
      std::string names;
      for (size_t i = 0; i < kinds.size(); i++)
        names += (i == 0 ? "" : i + 1 == kinds.size() ? " or " : ", ") + kinds[i];
      throw UsageError("--sft_noise_kind " + noise_kind + ": use " + names);
    }
    if (const std::string d = vm["dpo_init"].as<std::string>(); d != "rs" && d != "sft")
      throw UsageError("--dpo_init " + d + ": use rs or sft");
    const std::vector<std::string>& known = tasks::families();
    for (const char* fam : {"families", "noisy_families"})
      for (const std::string& w : words(vm[fam].as<std::string>()))
        if (std::find(known.begin(), known.end(), w) == known.end())
          throw UsageError(std::string("--") + fam + ": no task family '" + w + "'");
    for (const char* k : {"sft_noise", "noisy_share"})
      if (const double x = vm[k].as<double>(); !(x >= 0 && x < 1))
        throw UsageError(std::string("--") + k + " must be in [0, 1)");
    if (const double x = vm["set_temperature"].as<double>(); !(x > 0))
      throw UsageError("--set_temperature must be > 0 (the Xwin-Set needs distinct samples)");
    if (vm["pair_candidates"].as<int>() < 2)
      throw UsageError("--pair_candidates must be at least 2 (a pair)");
    for (const char* k : {"n_sft", "n_pairs", "n_rl", "n_eval", "n_rm_eval", "n_bon", "num_samples",
                          "max_new_tokens", "eval_batch"})
      if (vm[k].as<int>() <= 0) throw UsageError(std::string("--") + k + " must be positive");
    std::vector<std::string> want = kStages;
    if (vm.count("stage")) {
      want = vm["stage"].as<std::vector<std::string>>();
      for (const std::string& s : want)
        if (std::find(kStages.begin(), kStages.end(), s) == kStages.end())
          throw UsageError("--stage " + s +
                           ": unknown stage; stages are prepare, sft, pairs, "
                           "rm, sample, rs, dpo, eval");
    }
    if (r.rank0()) fs::create_directories(r.path("stages"));
    barrier(r.grid.world);
    // Preemption (SIGUSR1 / SIGTERM): training and sampling stop within a step or a chunk;
    // the other stages finish, and the pipeline stops before the next one, exiting with 75.
    install_preemption_handlers();
    using Fn = void (*)(const Run&);
    const std::map<std::string, Fn> fns = {{"prepare", stage_prepare}, {"sft", stage_sft},
                                           {"pairs", stage_pairs},     {"rm", stage_rm},
                                           {"sample", stage_sample},   {"rs", stage_rs},
                                           {"dpo", stage_dpo},         {"eval", stage_eval}};
    Timer total;
    for (size_t i = 0; i < kStages.size(); i++) {
      const std::string& s = kStages[i];
      const std::string done = r.path("stages/" + s + ".done");
      const bool asked = std::find(want.begin(), want.end(), s) != want.end();
      if (!asked) {
        // A stage asked for needs every earlier stage finished.
        bool later = false;
        for (size_t j = i + 1; j < kStages.size(); j++)
          later = later || std::find(want.begin(), want.end(), kStages[j]) != want.end();
        if (later && !fs::exists(done))
          throw Error("pipeline: stage " + s + " has not finished in " + r.dir +
                      "; run `xwin pipeline --stage " + s + "` (or the whole pipeline) first");
        continue;
      }
      if (fs::exists(done)) {
        log0("pipeline: stage %zu/%zu %s: done before, skipped", i + 1, kStages.size(), s.c_str());
        continue;
      }
      if (allreduce_max(preemption_requested() ? 1 : 0, r.grid.world)) {
        log0(
            "pipeline: preempted before stage %s; exiting with code %d so the job can requeue "
            "and resume",
            s.c_str(), kExitPreempted);
        throw Preempted{(long long)i};
      }
      log0("pipeline: stage %zu/%zu %s | %s elapsed", i + 1, kStages.size(), s.c_str(),
           format_duration(total.seconds()).c_str());
      Timer t;
      fns.at(s)(r);
      barrier(r.grid.world);
      if (r.rank0()) std::ofstream(done) << json{{"seconds", t.seconds()}}.dump() << "\n";
      log0("pipeline: stage %s finished in %s", s.c_str(), format_duration(t.seconds()).c_str());
    }
    log0("pipeline: finished in %s", format_duration(total.seconds()).c_str());
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
