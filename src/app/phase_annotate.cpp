// xwin annotate: Xwin-Pair. Records of (conversation, response A, response B) are judged
// pairwise by an OpenAI-compatible endpoint (GPT-4 in the paper), both orders asked, and become
// the pairs dataset: chosen = the preferred reply, rejected = the other; ties kept (flagged) or
// dropped; failed judgements never written. Input: JSON records (JSONL or one JSON array) or a
// sampled Xwin-Set (HDF5, K >= 2 responses per prompt, decoded with its tokenizer). With K > 2
// responses, --pairs picks what to ask and keep: the first two responses, every two, or every
// two keeping only the winner of most comparisons against each response it beat (best, as the
// demo pipeline does). Output: pairs JSONL (--out, readable by xwin data pairs) and/or the HDF5
// pairs dataset (--out_h5).
// Every reply goes to a journal first, so a killed or repeated run pays for nothing twice.
// The endpoint is called from rank 0; other ranks wait. SIGUSR1 / SIGTERM (preemption): the
// requests in flight finish, then every rank exits with 75 and a rerun resumes from the journal.
#include <mpi.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "app/cli.h"
#include "app/rank0.h"
#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "io/datasets.h"
#include "io/jsonl.h"
#include "io/records.h"
#include "judge/http_judge.h"

namespace xwin::cli {

using nlohmann::json;

namespace {

struct Item {
  Conversation prompt;
  std::string a, b;
};

bool is_hdf5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in.gcount() == 8 && std::string(magic, 8) == "\x89HDF\r\n\x1a\n";
}

std::string text_of(const json& v, const std::string& what) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("text") && v["text"].is_string())
    return v["text"].get<std::string>();
  fail(what, " must be a string (or {\"text\": ...})");
}

// The candidate replies of a record: "responses" (K >= 2), or AlpacaEval's output_1/output_2,
// or response_a/response_b, or chosen/rejected (re-annotating a pairs file).
std::vector<std::string> responses_of(const json& rec) {
  std::vector<std::string> r;
  if (rec.contains("responses")) {
    require(rec["responses"].is_array(), "\"responses\" must be an array");
    for (const json& x : rec["responses"]) r.push_back(text_of(x, "each response"));
  } else {
    for (auto [a, b] :
         {std::pair{"output_1", "output_2"}, {"response_a", "response_b"}, {"chosen", "rejected"}})
      if (rec.contains(a) && rec.contains(b)) {
        r = {text_of(rec[a], std::string("\"") + a + "\""),
             text_of(rec[b], std::string("\"") + b + "\"")};
        break;
      }
  }
  require(r.size() >= 2,
          "a record to annotate needs two replies: \"responses\": [...] (K >= 2), "
          "\"output_1\"/\"output_2\", \"response_a\"/\"response_b\" or \"chosen\"/\"rejected\"");
  return r;
}

// The questions to ask, and how many responses of each prompt they compare: the questions of
// prompt p are the next round_robin(group[p]).size() items, in that order.
struct Questions {
  std::vector<Item> items;
  std::vector<int> group;
};

// The pairs of K responses to judge: (0, 1), or every (i, j) with i < j.
void add_pairs(Questions& out, const Conversation& prompt, const std::vector<std::string>& r,
               bool all) {
  const int k = all ? (int)r.size() : 2;
  for (const auto& [i, j] : round_robin(k)) out.items.push_back({prompt, r[i], r[j]});
  out.group.push_back(k);
}

Questions read_records(const std::string& path, bool all, size_t limit) {
  const JsonShare in(path, MPI_COMM_SELF);
  Questions items;
  for (size_t i = 0; i < in.size() && (limit == 0 || i < limit); i++) {
    const json rec = in.parse(i);
    try {
      add_pairs(items, prompt_from_json(rec), responses_of(rec), all);
    } catch (const std::exception& e) {
      fail(in.where(i), ": ", e.what());
    }
  }
  return items;
}

Questions read_xwin_set(const std::string& path, const ChatEncoder& enc, bool all, size_t limit) {
  const XwinSetDataset d = XwinSetDataset::load(path, enc.tokenizer().hash());
  require(d.K >= 2, path, ": K = ", d.K, " responses per prompt; annotating needs at least 2");
  Questions items;
  for (size_t p = 0; p < d.size() && (limit == 0 || p < limit); p++)
    add_pairs(items, d.decode_prompt(p, enc), d.decode_replies(p, enc), all);
  return items;
}

struct Counts {
  int64_t a = 0, b = 0, tie = 0, failed = 0, written = 0, dropped = 0;
  int64_t unselected = 0;  // --pairs best: verdicts that made no pair
  int64_t incomplete = 0;  // --pairs best: prompts left out because a judgement failed
};

// --pairs best: of each prompt's questions, those won by the response that won the most
// (best_won). A prompt with a failed judgement keeps none: its winner is not known until a rerun
// asks again. The kept questions keep their verdicts, so the writers need no change.
struct Kept {
  std::vector<Item> items;
  std::vector<PairVerdict> v;
};

Kept keep_best(const Questions& q, const std::vector<PairVerdict>& v, Counts& n) {
  Kept kept;
  size_t at = 0;
  for (const int k : q.group) {
    const size_t asked = size_t(k) * size_t(k - 1) / 2;  // round_robin(k).size()
    std::vector<Winner> w;
    for (size_t i = at; i < at + asked; i++) w.push_back(v[i].winner);
    if (std::find(w.begin(), w.end(), Winner::Failed) != w.end()) {
      n.incomplete++;
    } else {
      for (const size_t i : best_won(k, w)) {
        kept.items.push_back(q.items[at + i]);
        kept.v.push_back(v[at + i]);
      }
    }
    at += asked;
  }
  n.unselected = (int64_t)(v.size() - kept.v.size());
  return kept;
}

void write_jsonl(const std::string& path, const std::vector<Item>& items,
                 const std::vector<PairVerdict>& v, bool keep_ties, const std::string& judge) {
  JsonlWriter w(path);
  for (size_t i = 0; i < items.size(); i++) {
    const Winner win = v[i].winner;
    if (win == Winner::Failed || (win == Winner::Tie && !keep_ties)) continue;
    json j = conversation_to_json(items[i].prompt, TurnFormat::ShareGPT);
    const bool b_wins = win == Winner::B;
    j["chosen"] = b_wins ? items[i].b : items[i].a;
    j["rejected"] = b_wins ? items[i].a : items[i].b;
    if (win == Winner::Tie) j["tie"] = true;
    j["judge"] = judge;
    j["verdict"] = winner_name(win);
    w.write(j);
  }
  w.commit();
}

void write_h5(const std::string& path, const std::string& source, const std::vector<Item>& items,
              const std::vector<PairVerdict>& v, bool keep_ties, const ChatEncoder& enc,
              int64_t max_seq_len, Counts& n) {
  TokenDataset prompt, chosen, rejected;
  std::vector<uint8_t> tie;
  int64_t n_ties = 0, skipped = 0;
  for (size_t i = 0; i < items.size(); i++) {
    const Winner win = v[i].winner;
    n_ties += win == Winner::Tie;
    if (win == Winner::Failed || (win == Winner::Tie && !keep_ties)) {
      skipped++;
      continue;
    }
    const bool b_wins = win == Winner::B;
    const EncodedChat pe = enc.encode_prompt(items[i].prompt);
    const auto c = enc.encode_reply(items[i].prompt, pe.tokens, b_wins ? items[i].b : items[i].a);
    const auto r = enc.encode_reply(items[i].prompt, pe.tokens, b_wins ? items[i].a : items[i].b);
    if ((int64_t)(pe.tokens.size() + std::max(c.size(), r.size())) > max_seq_len) {
      n.dropped++;
      continue;
    }
    prompt.append(pe.tokens, {}), chosen.append(c, {}), rejected.append(r, {});
    tie.push_back(win == Winner::Tie);
  }
  require(prompt.size() > 0, source, ": no pairs to write to ", path, " (", skipped,
          " failed or tied, ", n.dropped, " longer than --max_seq_len ", max_seq_len, ")");
  DatasetWriter w(path, MPI_COMM_SELF);
  w.ragged("/prompt", prompt, false);
  w.ragged("/chosen", chosen, false);
  w.ragged("/rejected", rejected, false);
  if (keep_ties && n_ties > 0) w.rows("/tie", tie);
  w.attr("n_ties", n_ties);
  DatasetInfo info;
  info.schema = kSchemaPairs, info.tokenizer_hash = enc.tokenizer().hash();
  info.tokenizer_path = enc.tokenizer().path(), info.template_json = enc.chat_template().to_json();
  info.source = source, info.overlong = overlong_name(Overlong::Drop);
  info.max_seq_len = max_seq_len, info.n_kept = (int64_t)prompt.size();
  info.n_dropped = n.dropped, info.n_skipped = skipped + n.unselected;
  w.info(info);
  w.commit();
}

int run(const Phase& p, const po::variables_map& vm) {
  const std::string in = required(vm, "in", p);
  const std::string out = vm["out"].as<std::string>(), out_h5 = vm["out_h5"].as<std::string>();
  if (out.empty() && out_h5.empty()) throw UsageError("xwin annotate: give --out and/or --out_h5");
  const std::string ties = vm["ties"].as<std::string>(), pairs = vm["pairs"].as<std::string>();
  if (ties != "drop" && ties != "keep") throw UsageError("--ties = '" + ties + "': drop or keep");
  if (pairs != "first" && pairs != "all" && pairs != "best")
    throw UsageError("--pairs = '" + pairs + "': first, all or best");
  if (pairs == "best" && ties == "keep")
    throw UsageError(
        "--pairs best pairs the winner with what it beat; --ties keep has no ties to keep");
  const HttpJudgeOptions jo = judge_options(vm, (out.empty() ? out_h5 : out) + ".journal.jsonl");
  // SIGUSR1 / SIGTERM (Slurm preemption, the time limit): the client finishes the requests in
  // flight and stops; every rank exits with 75 and a rerun resumes from the journal.
  install_preemption_handlers();
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return rank0_outcome();

  const bool h5_in = is_hdf5(in);
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ChatEncoder> enc;
  if (h5_in || !out_h5.empty()) {
    tok = std::make_unique<Tokenizer>(tokenizer_model(vm, p));
    ChatTemplate t = chat_template(vm);
    if (h5_in) {
      const DatasetInfo info = DatasetInfo::read(in);
      info.check_schema(in, kSchemaXwinSet);
      if (!info.template_json.empty()) t = ChatTemplate::from_json(info.template_json, in);
    }
    enc = std::make_unique<ChatEncoder>(*tok, t);
  }
  const size_t limit = vm["limit"].as<size_t>();
  const Questions q = h5_in ? read_xwin_set(in, *enc, pairs != "first", limit)
                            : read_records(in, pairs != "first", limit);
  const std::vector<Item>& items = q.items;
  require(!items.empty(), in, ": no records to annotate");
  log0("annotate: %zu pairs from %s, judged by %s (%d order%s)", items.size(), in.c_str(),
       jo.client.model.c_str(), jo.orders, jo.orders == 2 ? "s" : "");

  HttpJudge judge(jo);
  std::vector<PairQuestion> qs;
  for (const Item& it : items) qs.push_back({it.prompt, it.a, it.b});
  std::vector<PairVerdict> v;
  try {
    v = judge.judge(qs);
  } catch (const Preempted&) {
    judge_preempted("annotate", judge.client());
  }
  Counts n;
  std::string first_error;
  for (const PairVerdict& x : v) {
    n.a += x.winner == Winner::A, n.b += x.winner == Winner::B;
    n.tie += x.winner == Winner::Tie, n.failed += x.winner == Winner::Failed;
    if (x.winner == Winner::Failed && first_error.empty()) first_error = x.explanation;
  }
  log0("annotate: verdicts: A %lld, B %lld, tie %lld, failed %lld", (long long)n.a, (long long)n.b,
       (long long)n.tie, (long long)n.failed);
  log0("annotate: judge: %s", judge.client().summary().c_str());
  require(n.failed < (int64_t)items.size(),
          "annotate: every judgement failed; the first: ", first_error);
  Kept best;
  if (pairs == "best") {
    best = keep_best(q, v, n);
    log0(
        "annotate: the winner of each prompt against what it beat: %zu pairs from %zu prompts "
        "(%lld left out until a rerun answers their failed judgements)",
        best.items.size(), q.group.size(), (long long)n.incomplete);
  }
  const std::vector<Item>& out_items = pairs == "best" ? best.items : items;
  const std::vector<PairVerdict>& out_v = pairs == "best" ? best.v : v;
  const bool keep = ties == "keep";
  if (!out.empty()) write_jsonl(out, out_items, out_v, keep, judge.name());
  if (!out_h5.empty())
    write_h5(out_h5, in, out_items, out_v, keep, *enc, vm["max_seq_len"].as<int64_t>(), n);
  int64_t written = -n.dropped;
  for (const PairVerdict& x : out_v)
    written += x.winner == Winner::A || x.winner == Winner::B || (keep && x.winner == Winner::Tie);
  log0("annotate: wrote %lld pairs (ties %s%s) -> %s%s%s", (long long)written,
       keep ? "kept" : "dropped",
       n.dropped ? (", " + std::to_string(n.dropped) + " too long for HDF5").c_str() : "",
       out.c_str(), !out.empty() && !out_h5.empty() ? ", " : "", out_h5.c_str());
  if (n.failed > 0) {
    log0(
        "annotate: %lld failed judgements were left out; rerun to ask them again (the "
        "journal answers the rest). The first ones:",
        (long long)n.failed);
    for (size_t i = 0, shown = 0; i < items.size() && shown < 5; i++)
      if (v[i].winner == Winner::Failed) {
        shown++;
        log0("annotate:   pair %zu (\"%.60s\"): %s", i, items[i].prompt.back().text.c_str(),
             v[i].explanation.c_str());
      }
  }
  share_outcome(0);
  return 0;
}

}  // namespace

Phase phase_annotate() {
  Phase p;
  p.name = "annotate";
  p.summary = "judge response pairs with an OpenAI-compatible endpoint -> pairs (Xwin-Pair)";
  p.details =
      "Input records: a prompt (\"conversations\", \"messages\", \"prompt\" or \"instruction\")\n"
      "and two replies (\"responses\": [...], \"output_1\"/\"output_2\", \"response_a\"/\n"
      "\"response_b\" or \"chosen\"/\"rejected\"), or an Xwin-Set HDF5 from xwin sample.\n"
      "Each pair is judged in both orders with MT-bench's pair-v2 prompt (--judge_prompts);\n"
      "disagreeing orders are ties. Replies are journaled (--journal, default OUT.journal.jsonl),\n"
      "so a rerun sends only what is missing. Exit 1 only when every judgement failed.\n"
      "SIGUSR1 or SIGTERM (Slurm preemption or time limit): nothing new is sent, the requests\n"
      "in flight finish into the journal, and the command exits with 75 (rerun to resume).";
  p.groups = {Group::Tokenizer, Group::Template};
  p.add_options = [](po::options_description& d) {
    d.add_options()("in", po::value<std::string>(),
                    "records to judge: JSONL / JSON array, or an Xwin-Set HDF5 (required)")(
        "out", po::value<std::string>()->default_value(""), "pairs JSONL to write")(
        "out_h5", po::value<std::string>()->default_value(""),
        "pairs HDF5 dataset to write (needs --tokenizer.model)")(
        "ties", po::value<std::string>()->default_value("drop"),
        "ties: drop, or keep (chosen = A, flagged \"tie\" / in /tie)")(
        "pairs", po::value<std::string>()->default_value("first"),
        "with K > 2 responses: first (responses 0 and 1), all (every i < j), or best (every "
        "i < j judged; the response that wins the most, the lowest index among equals, paired "
        "with each response it beat; a prompt with a failed judgement makes no pair)")(
        "limit", po::value<size_t>()->default_value(0), "annotate the first N records (0: all)")(
        "max_seq_len", po::value<int64_t>()->default_value(4096),
        "HDF5 output: drop pairs longer than this (prompt + longer reply)");
    add_judge_options(d);
  };
  p.run = [p](const po::variables_map& vm) { return run(p, vm); };
  return p;
}

}  // namespace xwin::cli
