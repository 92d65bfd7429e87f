// xwin eval --suite tasks: greedy replies to held-out tasks, graded by the exact checker.
#include "app/eval_tasks.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "generate/generator.h"
#include "io/checkpoint.h"
#include "io/jsonl.h"
#include "parallel/grid.h"

namespace xwin::cli {

using nlohmann::json;

std::vector<tasks::Task> read_tasks(const std::string& path) {
  std::ifstream in(path);
  require(in.good(), path, ": cannot open the tasks file (write one with xwin data tasks)");
  std::vector<tasks::Task> out;
  std::string line;
  for (size_t n = 1; std::getline(in, line); n++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(tasks::from_json(json::parse(line)));
    } catch (const std::exception& e) {
      throw Error(path + ":" + std::to_string(n) + ": not a task record: " + e.what() +
                  " (regenerate the file with xwin data tasks)");
    }
  }
  return out;
}

void write_tasks(const std::string& path, const std::vector<tasks::Task>& tasks) {
  JsonlWriter w(path);
  for (const tasks::Task& t : tasks) w.write(tasks::to_json(t));
  w.commit();
}

std::vector<TaskResult> score_tasks(Llama& policy, const ChatEncoder& enc,
                                    const std::vector<tasks::Task>& tasks, int max_new_tokens,
                                    int batch, std::vector<std::string>* replies) {
  const Grid grid = Grid::from_world();
  SamplingParams sp;
  sp.temperature = 0.f;
  sp.max_new_tokens = max_new_tokens;
  sp.eos_id = enc.tokenizer().eos_id();
  std::vector<GenRequest> reqs;
  std::vector<size_t> index;
  for (size_t i = grid.dp_rank; i < tasks.size(); i += grid.dp_size) {
    GenRequest r;
    r.prompt = enc.encode_prompt(tasks[i].prompt).tokens;
    r.sample_id = i;
    index.push_back(i);
    reqs.push_back(std::move(r));
  }
  // correct and credit of every task, zero where another rank answered: summed over ranks.
  std::vector<double> correct(tasks.size(), 0.0), credit(tasks.size(), 0.0);
  if (replies) replies->assign(tasks.size(), "");
  Generator gen(policy, batch, sp);
  gen.run(reqs, [&](size_t j, GenOutput&& o) {
    const size_t i = index[j];
    const std::string text = enc.decode_reply(reqs[j].prompt.data(), reqs[j].prompt.size(),
                                              o.tokens.data(), o.tokens.size());
    const tasks::Grade g = tasks::grade(tasks[i], text);
    correct[i] = g.correct, credit[i] = g.credit;
    if (replies) (*replies)[i] = text;
  });
  allreduce_sum(correct.data(), correct.size(), grid.dp);
  allreduce_sum(credit.data(), credit.size(), grid.dp);
  std::vector<TaskResult> out(tasks.size());
  for (size_t i = 0; i < tasks.size(); i++) out[i] = {correct[i] > 0.5, credit[i]};
  return out;
}

json summarize(const std::vector<tasks::Task>& tasks, const std::vector<TaskResult>& results) {
  std::map<std::string, std::pair<int64_t, int64_t>> fam;  // family -> (n, correct)
  int64_t n = 0, c = 0;
  double credit = 0;
  for (size_t i = 0; i < tasks.size(); i++) {
    auto& f = fam[tasks[i].family];
    f.first++, f.second += results[i].correct;
    n++, c += results[i].correct, credit += results[i].credit;
  }
  json by = json::object();
  for (const auto& [name, f] : fam)
    by[name] = {{"n", f.first}, {"accuracy", f.first ? (double)f.second / f.first : 0.0}};
  return {{"n", n},
          {"accuracy", n ? (double)c / n : 0.0},
          {"credit", n ? credit / n : 0.0},
          {"by_family", by}};
}

PairedDifference paired_difference(const std::vector<bool>& a, const std::vector<bool>& b) {
  require(a.size() == b.size(), "paired_difference: ", a.size(), " outcomes against ", b.size());
  PairedDifference p;
  p.n = (int64_t)a.size();
  if (p.n == 0) return p;
  double sum = 0, sq = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = (double)a[i] - (double)b[i];
    sum += d, sq += d * d;
  }
  p.diff = sum / p.n;
  const double var = p.n > 1 ? std::max(0.0, (sq - p.n * p.diff * p.diff) / (p.n - 1)) : 0.0;
  const double half = 1.96 * std::sqrt(var / p.n);
  p.lo = p.diff - half, p.hi = p.diff + half;
  return p;
}

void add_eval_tasks_options(po::options_description& d) {
  d.add_options()("tasks", po::value<std::string>()->default_value(""),
                  "tasks suite: tasks JSONL (xwin data tasks; empty: generate --tasks_n "
                  "held-out tasks from --tasks_seed)")(
      "tasks_n", po::value<int>()->default_value(400), "tasks suite: held-out tasks to generate")(
      "tasks_seed", po::value<uint64_t>()->default_value(1),
      "tasks suite: seed of the generated held-out tasks");
}

int eval_tasks(const po::variables_map& vm) {
  static const Phase self = [] {
    Phase p;
    p.name = "eval";
    return p;
  }();
  const std::string ckpt = required(vm, "ckpt", self);
  const Tokenizer tok(tokenizer_model(vm, self));
  const ChatEncoder enc(tok, chat_template(vm));
  std::vector<tasks::Task> ts;
  if (const std::string path = vm["tasks"].as<std::string>(); !path.empty())
    ts = read_tasks(path);
  else
    ts = tasks::generate(vm["tasks_n"].as<int>(), vm["tasks_seed"].as<uint64_t>(),
                         tasks::Split::Heldout);
  require(!ts.empty(), "eval: no tasks to score");
  Llama policy(checkpoint_config(ckpt));
  load_checkpoint(ckpt, policy);
  require(policy.cfg.vocab_size >= tok.vocab_size(), ckpt, ": vocab_size ", policy.cfg.vocab_size,
          " is smaller than the tokenizer's ", tok.vocab_size(),
          " (pass the tokenizer the model was trained with)");
  Timer timer;
  std::vector<std::string> replies;
  const std::vector<TaskResult> res =
      score_tasks(policy, enc, ts, vm["max_new_tokens"].as<int>(), vm["batch"].as<int>(), &replies);
  const json summary = summarize(ts, res);
  log0("eval: tasks | %s | %lld held-out tasks | accuracy %.3f | mean credit %.3f | %.1f s",
       ckpt.c_str(), (long long)summary["n"].get<int64_t>(), summary["accuracy"].get<double>(),
       summary["credit"].get<double>(), timer.seconds());
  for (const auto& [fam, f] : summary["by_family"].items())
    log0("eval:   %-10s n=%-4lld accuracy %.3f", fam.c_str(), (long long)f["n"].get<int64_t>(),
         f["accuracy"].get<double>());
  const Grid grid = Grid::from_world();
  if (const std::string out = vm["out"].as<std::string>(); !out.empty() && grid.rank == 0) {
    JsonlWriter w(out);
    json head = summary;
    head["suite"] = "tasks", head["ckpt"] = ckpt;
    w.write(head);
    for (size_t i = 0; i < ts.size(); i++)
      if (!replies[i].empty() || res[i].correct)
        w.write({{"task", i},
                 {"family", ts[i].family},
                 {"reply", replies[i]},
                 {"correct", res[i].correct},
                 {"credit", res[i].credit}});
    w.commit();
  }
  return 0;
}

}  // namespace xwin::cli
