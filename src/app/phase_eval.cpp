// xwin eval: a checkpoint's scores. Suites:
//   tasks        the embedded demo's verifiable tasks (app/eval_tasks.h)
//   mt-bench     MT-bench's two-turn questions answered with the model's chat template
//                (FastChat's per-category temperatures) into FastChat's model_answer JSONL,
//                graded 1-10 by a judge endpoint (single-v1, single-v1-multi-turn, -math
//                variants against reference answers) into FastChat's judgment JSONL; scores
//                per turn, per category and overall
//   alpaca-eval  AlpacaEval's instructions answered into its model_outputs.json, judged
//                pairwise against a reference outputs file (text-davinci-003 by default in the
//                paper) by an endpoint or offline by a reward model (--judge rm:CKPT); win
//                rate with its standard error, annotations in AlpacaEval's format
// Answers are generated on every rank (prompts shared out over data-parallel ranks and
// gathered); the judge runs on rank 0 (HTTP) or on every rank (reward model).
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "align/rm_objective.h"
#include "app/cli.h"
#include "app/eval_tasks.h"
#include "app/model_source.h"
#include "app/rank0.h"
#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "generate/generator.h"
#include "io/checkpoint.h"
#include "io/jsonl.h"
#include "judge/alpaca_eval.h"
#include "judge/http_judge.h"
#include "judge/mt_bench.h"
#include "parallel/grid.h"

namespace xwin::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const Phase& self() {
  static const Phase p = [] {
    Phase q;
    q.name = "eval";
    return q;
  }();
  return p;
}

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// ---- Answer generation -------------------------------------------------------------------

struct GenJob {
  Conversation prompt;
  float temperature;
  uint64_t sample_id;
};

// Every rank's (job, text) pairs, on every rank.
void allgather_texts(std::vector<std::string>& texts, const std::string& buf) {
  int n = (int)buf.size(), size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int> counts(size), displs(size, 0);
  MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
  for (int r = 1; r < size; r++) displs[r] = displs[r - 1] + counts[r - 1];
  std::vector<char> all(displs[size - 1] + counts[size - 1]);
  MPI_Allgatherv(buf.data(), n, MPI_CHAR, all.data(), counts.data(), displs.data(), MPI_CHAR,
                 MPI_COMM_WORLD);
  for (int r = 0; r < size; r++)
    for (const json& p : json::parse(all.begin() + displs[r], all.begin() + displs[r] + counts[r]))
      texts[p[0].get<size_t>()] = p[1].get<std::string>();
}

// Replies of the model to every job, the same on every rank. Prompts longer than the model's
// context lose their oldest turns; one that cannot fit at all gets an empty reply (warned).
std::vector<std::string> generate(Llama& model, const ChatEncoder& enc,
                                  const std::vector<GenJob>& jobs, const po::variables_map& vm,
                                  float top_p) {
  const Grid grid = Grid::from_world();
  const size_t ctx = (size_t)model.cfg.max_seq_len;
  std::map<float, std::vector<size_t>> by_temp;  // one generator per temperature
  for (size_t j = grid.dp_rank; j < jobs.size(); j += grid.dp_size)
    by_temp[jobs[j].temperature].push_back(j);
  json mine = json::array();
  int64_t too_long = 0;
  Timer timer;
  int64_t tokens = 0;
  for (const auto& [temp, idx] : by_temp) {
    SamplingParams sp;
    sp.temperature = temp, sp.top_p = top_p, sp.max_new_tokens = vm["max_new_tokens"].as<int>();
    sp.eos_id = enc.tokenizer().eos_id(), sp.seed = vm["seed"].as<uint64_t>();
    sp.validate();
    std::vector<GenRequest> reqs;
    std::vector<size_t> owner;
    for (size_t j : idx) {
      EncodedChat e = enc.encode_prompt(jobs[j].prompt);
      if (e.tokens.size() >= ctx && !truncate_left(e, ctx / 2)) {
        too_long++;
        mine.push_back({j, ""});
        continue;
      }
      reqs.push_back({e.tokens, jobs[j].sample_id});
      owner.push_back(j);
    }
    Generator gen(model, vm["batch"].as<int>(), sp);
    gen.run(reqs, [&](size_t i, GenOutput&& o) {
      const auto& p = reqs[i].prompt;
      mine.push_back(
          {owner[i], trim(enc.decode_reply(p.data(), p.size(), o.tokens.data(), o.tokens.size()))});
    });
    tokens += gen.generated_tokens();
  }
  if (too_long)
    log_error(
        "eval: %lld prompts do not fit the model's context of %zu tokens even after "
        "dropping earlier turns; their answers are empty",
        (long long)too_long, ctx);
  const std::string s = mine.dump(-1, ' ', false, json::error_handler_t::replace);
  std::vector<std::string> texts(jobs.size());
  allgather_texts(texts, s);
  log0("eval: generated %zu answers (%.0f tokens/s on rank 0)", jobs.size(),
       tokens / std::max(timer.seconds(), 1e-9));
  return texts;
}

std::unique_ptr<Llama> load_policy(const po::variables_map& vm, const Tokenizer& tok) {
  const std::string ckpt = required(vm, "ckpt", self());
  auto m = std::make_unique<Llama>(checkpoint_config(ckpt));
  load_checkpoint(ckpt, *m);
  require(m->cfg.vocab_size >= tok.vocab_size(), ckpt, ": vocab_size ", m->cfg.vocab_size,
          " is smaller than the tokenizer's ", tok.vocab_size(),
          " (pass the tokenizer the model was trained with)");
  return m;
}

std::string model_id(const po::variables_map& vm) {
  if (const std::string id = vm["model_id"].as<std::string>(); !id.empty()) return id;
  std::string c = vm.count("ckpt") ? vm["ckpt"].as<std::string>() : "model";
  while (c.size() > 1 && c.back() == '/') c.pop_back();
  return fs::path(c).filename().string();
}

std::string out_dir(const po::variables_map& vm) {
  const std::string out = vm["out"].as<std::string>();
  if (out.empty()) throw UsageError("xwin eval: give --out DIR (answers, judgments, scores)");
  if (world_rank() == 0) fs::create_directories(out);
  return out;
}

// ---- Reward-model judge ------------------------------------------------------------------

// The offline judge: the reply with the higher reward wins (equal rewards tie). Sequences
// longer than the model's context keep their end (the reply), as in training.
class RmJudge : public PairJudge {
 public:
  RmJudge(const std::string& ckpt, const ChatEncoder& enc, int batch)
      : ckpt_(ckpt), enc_(enc), batch_(std::max(2, batch)), rm_(load_with_value_head(ckpt, 0)) {
    require(checkpoint_config(ckpt).value_head, ckpt,
            ": not a reward model (no value head); train one with xwin rm");
  }
  std::vector<PairVerdict> judge(const std::vector<PairQuestion>& qs) override {
    std::vector<PreferenceGroup> groups(qs.size());
    for (size_t i = 0; i < qs.size(); i++) {
      const std::vector<int32_t> p = enc_.encode_prompt(qs[i].prompt).tokens;
      for (const std::string* r : {&qs[i].a, &qs[i].b}) {
        std::vector<int32_t> seq = p;
        const std::vector<int32_t> ids = reply_ids(qs[i].prompt, p, *r);
        seq.insert(seq.end(), ids.begin(), ids.end());
        groups[i].sequences.push_back(std::move(seq));
      }
    }
    RmObjective scorer(std::move(groups), rm_.cfg.max_seq_len, false, 0, 0.0);
    std::vector<PairVerdict> out(qs.size());
    std::vector<int32_t> tokens;
    const size_t per = (size_t)batch_ / 2;
    for (size_t s0 = 0; s0 < qs.size(); s0 += per) {
      std::vector<int64_t> samples;
      for (size_t s = s0; s < std::min(qs.size(), s0 + per); s++) samples.push_back((int64_t)s);
      int B = 0, T = 0;
      scorer.inputs(samples, tokens, B, T);
      rm_.forward(tokens.data(), B, T);
      const std::vector<double> r = scorer.rewards(rm_, samples);
      for (size_t k = 0; k < samples.size(); k++) {
        const double ra = r[2 * k], rb = r[2 * k + 1];
        PairVerdict& v = out[samples[k]];
        v.winner = ra > rb ? Winner::A : rb > ra ? Winner::B : Winner::Tie;
        v.explanation = "reward A " + std::to_string(ra) + ", B " + std::to_string(rb);
      }
    }
    return out;
  }
  std::string name() const override { return "rm:" + ckpt_; }

 private:
  std::string ckpt_;
  const ChatEncoder& enc_;
  int batch_;
  Llama rm_;

  // The reply's ids as the template places them; a reply that would re-tokenize the prompt's
  // end is encoded on its own (the reward reads the last token either way).
  std::vector<int32_t> reply_ids(const Conversation& prompt, const std::vector<int32_t>& p,
                                 const std::string& reply) const {
    try {
      return enc_.encode_reply(prompt, p, reply);
    } catch (const Error&) {
      std::vector<int32_t> ids = enc_.tokenizer().encode(reply);
      ids.push_back(enc_.tokenizer().eos_id());
      return ids;
    }
  }
};

// ---- MT-bench ----------------------------------------------------------------------------

std::vector<MtQuestion> select_questions(const po::variables_map& vm) {
  const std::string path = vm["questions"].as<std::string>();
  if (path.empty())
    throw UsageError("--suite mt-bench needs --questions (MT-bench's question.jsonl)");
  std::vector<MtQuestion> all = read_mt_questions(path), qs;
  std::set<std::string> cats;
  std::string c = vm["categories"].as<std::string>();
  for (size_t a = 0; a < c.size();) {
    const size_t b = std::min(c.find(',', a), c.size());
    if (b > a) cats.insert(c.substr(a, b - a));
    a = b + 1;
  }
  const size_t limit = vm["limit"].as<size_t>();
  for (MtQuestion& q : all)
    if ((cats.empty() || cats.count(q.category)) && (limit == 0 || qs.size() < limit))
      qs.push_back(std::move(q));
  require(!qs.empty(), path, ": no questions in --categories '", c, "'");
  return qs;
}

std::map<int64_t, MtAnswer> mt_answers(const po::variables_map& vm,
                                       const std::vector<MtQuestion>& qs, const std::string& out,
                                       const std::string& model) {
  if (const std::string path = vm["answers"].as<std::string>(); !path.empty()) {
    std::map<int64_t, MtAnswer> a = read_mt_answers(path);
    for (const MtQuestion& q : qs)
      require(a.count(q.id), path, ": no answer to question ", q.id,
              " (answer every selected question, or narrow --categories / --limit)");
    return a;
  }
  const Tokenizer tok(tokenizer_model(vm, self()));
  const ChatEncoder enc(tok, chat_template(vm));
  std::unique_ptr<Llama> policy = load_policy(vm, tok);
  const float t = vm["temperature"].as<float>();
  const float top_p = vm["top_p"].as<float>();
  std::vector<GenJob> jobs;
  for (const MtQuestion& q : qs)
    jobs.push_back(
        {{{Role::User, q.turns[0]}}, t >= 0 ? t : mt_temperature(q.category), (uint64_t)q.id * 2});
  const std::vector<std::string> first = generate(*policy, enc, jobs, vm, top_p);
  std::vector<GenJob> second;
  std::vector<size_t> has_two;
  for (size_t i = 0; i < qs.size(); i++)
    if (qs[i].turns.size() >= 2) {
      Conversation c = {
          {Role::User, qs[i].turns[0]}, {Role::Assistant, first[i]}, {Role::User, qs[i].turns[1]}};
      second.push_back({c, jobs[i].temperature, (uint64_t)qs[i].id * 2 + 1});
      has_two.push_back(i);
    }
  const std::vector<std::string> next = generate(*policy, enc, second, vm, top_p);
  std::map<int64_t, MtAnswer> answers;
  for (size_t i = 0; i < qs.size(); i++) {
    MtAnswer& a = answers[qs[i].id];
    a.question_id = qs[i].id, a.model_id = model, a.answer_id = mt_answer_id(model, qs[i].id);
    a.turns = {first[i]}, a.tstamp = (double)std::time(nullptr);
  }
  for (size_t k = 0; k < has_two.size(); k++) answers[qs[has_two[k]].id].turns.push_back(next[k]);
  if (world_rank() == 0) {
    const std::string path = out + "/model_answer/" + model + ".jsonl";
    fs::create_directories(out + "/model_answer");
    JsonlWriter w(path);
    for (const MtQuestion& q : qs) w.write(to_json(answers[q.id]));
    w.commit();
    log0("eval: mt-bench answers -> %s", path.c_str());
  }
  return answers;
}

void print_mt_scores(const MtScores& s, const std::string& model) {
  log0(
      "eval: mt-bench | %s | first turn %.3f | second turn %.3f | overall %.3f (%lld ratings, "
      "%lld failed)",
      model.c_str(), s.turn[0].mean(), s.turn[1].mean(), s.overall.mean(), (long long)s.overall.n,
      (long long)s.overall.failed);
  for (const auto& [c, x] : s.by_category)
    log0("eval:   %-12s %.3f (n=%lld)", c.c_str(), x.mean(), (long long)x.n);
}

int eval_mt_bench(const po::variables_map& vm) {
  const std::string out = out_dir(vm), model = model_id(vm);
  const std::string judge = vm["judge"].as<std::string>();
  if (judge != "http" && judge != "none")
    throw UsageError("--suite mt-bench grades with an HTTP judge: --judge http (or none)");
  const std::vector<MtQuestion> qs = select_questions(vm);
  // Preempted while rank 0 judges: judge_preempted (app/rank0.h). The answers are generated
  // again by the rerun unless --answers names the file this run wrote.
  if (judge == "http") install_preemption_handlers();
  const std::map<int64_t, MtAnswer> answers = mt_answers(vm, qs, out, model);
  if (judge == "none") return MPI_Barrier(MPI_COMM_WORLD), 0;
  if (world_rank() != 0) return rank0_outcome();

  const HttpJudgeOptions jo = judge_options(vm, out + "/judge_journal.jsonl");
  std::map<int64_t, MtAnswer> refs;
  if (const std::string r = vm["reference"].as<std::string>(); !r.empty())
    refs = read_mt_answers(r);
  const JudgePrompts prompts(jo.prompts);
  struct Call {
    const MtQuestion* q;
    int turn;
    MtJudgeCall c;
  };
  std::vector<Call> calls;
  for (const MtQuestion& q : qs) {
    const auto ref = refs.find(q.id);
    const MtAnswer& a = answers.at(q.id);
    for (int t = 1; t <= (int)std::min<size_t>(2, std::min(q.turns.size(), a.turns.size())); t++)
      calls.push_back(
          {&q, t, mt_single_call(prompts, q, a, ref == refs.end() ? nullptr : &ref->second, t)});
  }
  std::vector<json> msgs;
  for (const Call& c : calls) msgs.push_back(c.c.messages);
  ChatClient client(jo.client);
  std::vector<ChatReply> replies;
  try {
    replies = client.complete(msgs, [](const std::string& r) { return parse_rating(r) >= 0; });
  } catch (const Preempted&) {
    judge_preempted("eval", client);
  }
  MtScores scores;
  const std::string path = out + "/model_judgment/" + jo.client.model + "_single.jsonl";
  fs::create_directories(out + "/model_judgment");
  JsonlWriter w(path);
  for (size_t i = 0; i < calls.size(); i++) {
    const double score = replies[i].ok ? parse_rating(replies[i].content) : -1;
    scores.add(calls[i].q->category, calls[i].turn, score);
    w.write({{"question_id", calls[i].q->id},
             {"model", model},
             {"judge", {jo.client.model, calls[i].c.prompt_name}},
             {"user_prompt", calls[i].c.user_prompt},
             {"judgment", replies[i].ok ? replies[i].content : "$ERROR$ " + replies[i].error},
             {"score", score},
             {"turn", calls[i].turn},
             {"tstamp", (double)std::time(nullptr)}});
  }
  w.commit();
  std::ofstream(out + "/mt_bench_scores.json") << scores.to_json().dump(2) << "\n";
  log0("eval: judge: %s", client.summary().c_str());
  log0("eval: judgments -> %s", path.c_str());
  print_mt_scores(scores, model);
  share_outcome(0);
  return 0;
}

// ---- AlpacaEval --------------------------------------------------------------------------

void report_win_rate(const std::vector<json>& ann, const std::string& model,
                     const std::string& out) {
  std::vector<double> prefs;
  double length = 0;
  for (const json& a : ann) {
    prefs.push_back(preference_of(a));
    length += a["output_2"].get<std::string>().size();
  }
  const WinRate w = win_rate(prefs);
  const double avg_len = ann.empty() ? 0 : length / ann.size();
  log0(
      "eval: alpaca-eval | %s | win rate %.2f%% +- %.2f (standard error) | wins %lld, "
      "losses %lld, draws %lld of %lld%s",
      model.c_str(), w.win_rate, w.standard_error, (long long)w.n_wins, (long long)w.n_wins_base,
      (long long)w.n_draws, (long long)w.n_total,
      w.n_missing ? (", " + std::to_string(w.n_missing) + " without a verdict").c_str() : "");
  if (out.empty() || world_rank() != 0) return;
  std::ofstream csv(out + "/leaderboard.csv");
  csv << ",win_rate,standard_error,n_wins,n_wins_base,n_draws,n_total,mode,avg_length\n";
  char row[512];
  std::snprintf(row, sizeof row, "%s,%.17g,%.17g,%lld,%lld,%lld,%lld,community,%.0f\n",
                model.c_str(), w.win_rate, w.standard_error, (long long)w.n_wins,
                (long long)w.n_wins_base, (long long)w.n_draws, (long long)w.n_total, avg_len);
  csv << row;
}

std::vector<json> alpaca_outputs(const po::variables_map& vm, const std::vector<json>& ref,
                                 const std::string& out, const std::string& model) {
  std::vector<json> outputs;
  if (const std::string path = vm["outputs"].as<std::string>(); !path.empty()) {
    std::map<std::string, json> by_instr;
    for (json& o : read_model_outputs(path)) by_instr[o["instruction"].get<std::string>()] = o;
    for (const json& r : ref) {
      const auto it = by_instr.find(r["instruction"].get<std::string>());
      require(it != by_instr.end(), path, ": no output for the instruction \"",
              r["instruction"].get<std::string>().substr(0, 60), "...\" of --reference_outputs");
      outputs.push_back(it->second);
    }
    return outputs;
  }
  const Tokenizer tok(tokenizer_model(vm, self()));
  const ChatEncoder enc(tok, chat_template(vm));
  std::unique_ptr<Llama> policy = load_policy(vm, tok);
  const float t = vm["temperature"].as<float>();
  std::vector<GenJob> jobs;
  for (size_t i = 0; i < ref.size(); i++)
    jobs.push_back(
        {{{Role::User, ref[i]["instruction"].get<std::string>()}}, t >= 0 ? t : 0.7f, (uint64_t)i});
  const std::vector<std::string> texts = generate(*policy, enc, jobs, vm, vm["top_p"].as<float>());
  for (size_t i = 0; i < ref.size(); i++)
    outputs.push_back({{"dataset", ref[i].value("dataset", "")},
                       {"instruction", ref[i]["instruction"]},
                       {"output", texts[i]},
                       {"generator", model}});
  if (world_rank() == 0) {
    write_json_records(out + "/model_outputs.json", outputs);
    log0("eval: alpaca-eval outputs -> %s/model_outputs.json", out.c_str());
  }
  return outputs;
}

int eval_alpaca(const po::variables_map& vm) {
  if (const std::string a = vm["annotations"].as<std::string>(); !a.empty()) {
    const std::vector<json> ann = read_annotations(a);
    require(!ann.empty(), a, ": no annotations");
    const std::string out = vm["out"].as<std::string>();
    if (!out.empty() && world_rank() == 0) fs::create_directories(out);
    report_win_rate(ann, ann[0].value("generator_2", "model"), out);
    return 0;
  }
  const std::string out = out_dir(vm);
  std::string model = model_id(vm);
  const std::string rpath = vm["reference_outputs"].as<std::string>();
  if (rpath.empty())
    throw UsageError(
        "--suite alpaca-eval needs --reference_outputs (AlpacaEval's model_outputs.json of the "
        "baseline, e.g. text_davinci_003)");
  const std::string judge = vm["judge"].as<std::string>();
  if (judge != "http" && judge != "none" && judge.rfind("rm:", 0) != 0)
    throw UsageError("--judge '" + judge + "': http, rm:CKPT or none");
  if (judge == "http") install_preemption_handlers();  // as in eval_mt_bench
  std::vector<json> ref = read_model_outputs(rpath);
  if (const size_t limit = vm["limit"].as<size_t>(); limit > 0 && ref.size() > limit)
    ref.resize(limit);
  const std::vector<json> outputs = alpaca_outputs(vm, ref, out, model);
  if (!vm["outputs"].as<std::string>().empty() && vm["model_id"].as<std::string>().empty())
    model = outputs[0].value("generator", model);
  if (judge == "none") return 0;

  std::vector<PairQuestion> qs;
  for (size_t i = 0; i < ref.size(); i++)
    qs.push_back({{{Role::User, ref[i]["instruction"].get<std::string>()}},
                  ref[i]["output"].get<std::string>(),
                  outputs[i]["output"].get<std::string>()});
  std::vector<PairVerdict> v;
  std::string annotator;
  if (judge.rfind("rm:", 0) == 0) {
    const Tokenizer tok(tokenizer_model(vm, self()));
    const ChatEncoder enc(tok, chat_template(vm));
    RmJudge rm(judge.substr(3), enc, vm["batch"].as<int>());
    v = rm.judge(qs), annotator = rm.name();
  } else {
    if (world_rank() != 0) return rank0_outcome();
    HttpJudge http(judge_options(vm, out + "/judge_journal.jsonl"));
    try {
      v = http.judge(qs), annotator = http.name();
    } catch (const Preempted&) {
      judge_preempted("eval", http.client());
    }
    log0("eval: judge: %s", http.client().summary().c_str());
  }
  std::vector<json> ann;
  for (size_t i = 0; i < ref.size(); i++)
    ann.push_back(annotation(ref[i], outputs[i], annotator, v[i].winner));
  if (world_rank() == 0) {
    write_json_records(out + "/annotations.json", ann);
    log0("eval: annotations -> %s/annotations.json", out.c_str());
  }
  report_win_rate(ann, model, out);
  if (judge == "http") share_outcome(0);
  return 0;
}

}  // namespace

Phase phase_eval() {
  Phase p;
  p.name = "eval";
  p.summary = "score a checkpoint: demo tasks, MT-bench or AlpacaEval (judge endpoint or RM)";
  p.details =
      "--suite tasks: held-out verifiable tasks of the demo, graded exactly.\n"
      "--suite mt-bench: answers --questions (question.jsonl) into OUT/model_answer/MODEL.jsonl,\n"
      "  grades them 1-10 with --judge_prompts (single-v1, -multi-turn, -math with --reference)\n"
      "  into OUT/model_judgment/JUDGE_single.jsonl; --answers judges an existing answer file.\n"
      "--suite alpaca-eval: answers the instructions of --reference_outputs into\n"
      "  OUT/model_outputs.json (--outputs: use an existing one), judges each against the\n"
      "  reference output (--judge http or rm:CKPT), writes OUT/annotations.json and\n"
      "  OUT/leaderboard.csv; --annotations FILE only computes the win rate of a file.\n"
      "Judge replies are journaled in OUT/judge_journal.jsonl: a rerun pays for nothing twice.\n"
      "With --judge http, SIGUSR1 or SIGTERM (Slurm preemption) stops the judging after the\n"
      "requests in flight and exits with 75; the rerun replays the journal.";
  p.groups = {Group::Tokenizer, Group::Template};
  p.add_options = [](po::options_description& d) {
    d.add_options()("suite", po::value<std::string>()->default_value("tasks"),
                    "tasks, mt-bench or alpaca-eval")("ckpt", po::value<std::string>(),
                                                      "checkpoint to evaluate")(
        "out", po::value<std::string>()->default_value(""),
        "output (tasks: a JSONL file; mt-bench, alpaca-eval: a directory)")(
        "max_new_tokens", po::value<int>()->default_value(1024), "longest answer in tokens")(
        "batch", po::value<int>()->default_value(16), "sequences decoded (or scored) at once")(
        "seed", po::value<uint64_t>()->default_value(1), "sampling seed");
    add_eval_tasks_options(d);
    po::options_description j("Options of --suite mt-bench and alpaca-eval");
    j.add_options()("model_id", po::value<std::string>()->default_value(""),
                    "model name in the output files (default: the checkpoint's folder name)")(
        "limit", po::value<size_t>()->default_value(0),
        "first N questions / instructions (0: all)")(
        "temperature", po::value<float>()->default_value(-1.f, "-1"),
        "sampling temperature; -1: the suite's (mt-bench: FastChat's per category, "
        "alpaca-eval: 0.7)")("top_p", po::value<float>()->default_value(1.f, "1"),
                             "nucleus sampling threshold")(
        "judge", po::value<std::string>()->default_value("http"),
        "http (the judge endpoint), rm:CKPT (a reward model, alpaca-eval) or none")(
        "questions", po::value<std::string>()->default_value(""),
        "mt-bench: question.jsonl (FastChat format)")(
        "categories", po::value<std::string>()->default_value(""),
        "mt-bench: comma-separated categories to keep (default: all)")(
        "reference", po::value<std::string>()->default_value(""),
        "mt-bench: reference answers (FastChat's reference_answer/gpt-4.jsonl) for math, "
        "reasoning, coding")("answers", po::value<std::string>()->default_value(""),
                             "mt-bench: judge this model_answer JSONL instead of generating")(
        "reference_outputs", po::value<std::string>()->default_value(""),
        "alpaca-eval: the baseline's model_outputs.json (its instructions are asked)")(
        "outputs", po::value<std::string>()->default_value(""),
        "alpaca-eval: judge this model_outputs.json instead of generating")(
        "annotations", po::value<std::string>()->default_value(""),
        "alpaca-eval: only report the win rate of this annotations file");
    d.add(j);
    add_judge_options(d);
  };
  p.run = [](const po::variables_map& vm) {
    const std::string suite = vm["suite"].as<std::string>();
    if (suite == "tasks") return eval_tasks(vm);
    if (suite == "mt-bench") return eval_mt_bench(vm);
    if (suite == "alpaca-eval") return eval_alpaca(vm);
    throw UsageError("--suite '" + suite + "': tasks, mt-bench or alpaca-eval");
  };
  return p;
}

}  // namespace xwin::cli
