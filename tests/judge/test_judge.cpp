// Unit tests of the judge's pure parts: verdict and rating parsing, the two-order rule, prompt
// templates (MT-bench's real judge_prompts.jsonl), the journal (torn lines), request keys, and
// the MT-bench / AlpacaEval formats on the real files (round trips, the published win rate).
// Tests that need ../shared/data skip where it is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "judge/alpaca_eval.h"
#include "judge/http_judge.h"
#include "judge/journal.h"
#include "judge/mt_bench.h"
#include "judge/prompts.h"

namespace xwin {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kData = XWIN_SHARED_DATA;

#define NEED_DATA(rel) \
  if (!fs::exists(kData + "/" + rel)) GTEST_SKIP() << "no " << kData << "/" << rel;

std::string tmp_dir(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("xwin_judge_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

TEST(Verdict, PairTags) {
  EXPECT_EQ(parse_pair_verdict("A is better. [[A]]"), Winner::A);
  EXPECT_EQ(parse_pair_verdict("[[B]]"), Winner::B);
  EXPECT_EQ(parse_pair_verdict("Both are fine: [[C]]"), Winner::Tie);
  // The last tag is the verdict (judges may quote the format earlier).
  EXPECT_EQ(parse_pair_verdict("Format: [[A]] or [[B]]. Final verdict: [[B]]"), Winner::B);
  EXPECT_EQ(parse_pair_verdict("I say [[B]] ... no wait, [[A]]"), Winner::A);
  EXPECT_EQ(parse_pair_verdict("I cannot decide."), Winner::Failed);
  EXPECT_EQ(parse_pair_verdict("[A] is better"), Winner::Failed);
  EXPECT_EQ(parse_pair_verdict(""), Winner::Failed);
}

TEST(Verdict, Ratings) {
  EXPECT_EQ(parse_rating("Rating: [[7]]"), 7);
  EXPECT_EQ(parse_rating("Rating: [[8.5]]"), 8.5);
  EXPECT_EQ(parse_rating("Rating: [6]"), 6);  // FastChat's backup pattern
  EXPECT_EQ(parse_rating("see [[x]] then [[3]]"), 3);
  EXPECT_EQ(parse_rating("[[10]]"), 10);
  EXPECT_EQ(parse_rating("no rating"), -1);
  EXPECT_EQ(parse_rating("[[11]]"), -1);
  EXPECT_EQ(parse_rating("[[]]"), -1);
}

TEST(Verdict, BothOrders) {
  EXPECT_EQ(combine_orders(Winner::A, Winner::A), Winner::A);
  EXPECT_EQ(combine_orders(Winner::B, Winner::B), Winner::B);
  EXPECT_EQ(combine_orders(Winner::A, Winner::B), Winner::Tie);  // position bias
  EXPECT_EQ(combine_orders(Winner::Tie, Winner::A), Winner::Tie);
  EXPECT_EQ(combine_orders(Winner::Tie, Winner::Tie), Winner::Tie);
  EXPECT_EQ(combine_orders(Winner::A, Winner::Failed), Winner::Failed);
  EXPECT_EQ(combine_orders(Winner::Failed, Winner::B), Winner::Failed);
}

using Pairs = std::vector<std::pair<int, int>>;

TEST(RoundRobin, EveryTwoResponsesOnceInOrder) {
  EXPECT_EQ(round_robin(2), (Pairs{{0, 1}}));
  EXPECT_EQ(round_robin(4), (Pairs{{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}}));
  EXPECT_EQ(round_robin(8).size(), 28u);
}

TEST(RoundRobin, TwoResponsesGiveTheJudgedPairOrNone) {
  EXPECT_EQ(best_vs_beaten(2, {Winner::A}), (Pairs{{0, 1}}));
  EXPECT_EQ(best_vs_beaten(2, {Winner::B}), (Pairs{{1, 0}}));
  EXPECT_TRUE(best_vs_beaten(2, {Winner::Tie}).empty());
  EXPECT_TRUE(best_vs_beaten(2, {Winner::Failed}).empty());
}

TEST(RoundRobin, MostWinsIsPairedWithWhatItBeat) {
  using W = Winner;
  // (0,1) (0,2) (0,3) (1,2) (1,3) (2,3): 2 beats 0 and 1, ties 3; 3 beats 0 and 1, ties 2 ->
  // 2 and 3 both win twice; the lower index (2) is chosen, against 0 and 1 but not 3.
  EXPECT_EQ(best_vs_beaten(4, {W::A, W::B, W::B, W::B, W::B, W::Tie}), (Pairs{{2, 0}, {2, 1}}));
  // 1 beats everyone; the other verdicts make no pair.
  EXPECT_EQ(best_vs_beaten(4, {W::B, W::A, W::A, W::A, W::A, W::B}),
            (Pairs{{1, 0}, {1, 2}, {1, 3}}));
  // A cycle (0 > 1 > 2 > 0): one win each, the first response is chosen, its one win paired.
  EXPECT_EQ(best_vs_beaten(3, {W::A, W::B, W::A}), (Pairs{{0, 1}}));
  // All ties: nothing to learn from.
  EXPECT_TRUE(best_vs_beaten(3, {W::Tie, W::Tie, W::Failed}).empty());
  EXPECT_THROW(best_vs_beaten(3, {W::A}), Error);
  // best_won: the same pairs as question indices, (0,2) (1,2) above for {2, 0} and {2, 1}.
  EXPECT_EQ(best_won(4, {W::A, W::B, W::B, W::B, W::B, W::Tie}), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(best_won(4, {W::B, W::A, W::A, W::A, W::A, W::B}), (std::vector<size_t>{0, 3, 4}));
  EXPECT_THROW(best_won(3, {W::A}), Error);
}

TEST(Template, FillsFieldsLikePythonFormat) {
  JudgePrompt p;
  p.name = "t";
  p.prompt_template = "Q: {question}\n{{literal}} A: {answer_a} {not a field}";
  EXPECT_EQ(fill_template(p, {{"question", "why?"}, {"answer_a", "because {x}"}}),
            "Q: why?\n{literal} A: because {x} {not a field}");
  EXPECT_THROW(fill_template(p, {{"question", "why?"}}), Error);
}

TEST(Template, RealMtBenchPrompts) {
  NEED_DATA("mt_bench/judge_prompts.jsonl");
  const JudgePrompts ps(kData + "/mt_bench/judge_prompts.jsonl");
  EXPECT_EQ(ps.size(), 8u);
  for (const char* n :
       {"pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn", "single-v1",
        "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"})
    EXPECT_TRUE(ps.has(n)) << n;
  EXPECT_EQ(ps.get("pair-v2").type, "pairwise");
  EXPECT_EQ(ps.get("pair-v2").output_format, "[[A]]");
  EXPECT_THROW(ps.get("pair-v3"), Error);

  const JudgePrompt &single = ps.get("pair-v2"), &multi = ps.get("pair-v2-multi-turn");
  PairQuestion q{{{Role::User, "What is 2+2?"}}, "four", "It is 4."};
  const json m = pair_messages(single, multi, q, false);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[0]["content"], single.system_prompt);
  const std::string u = m[1]["content"];
  EXPECT_EQ(
      u,
      "[User Question]\nWhat is 2+2?\n\n[The Start of Assistant A's Answer]\nfour\n[The End "
      "of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\nIt is 4.\n[The End of "
      "Assistant B's Answer]");
  const std::string swapped = pair_messages(single, multi, q, true)[1]["content"];
  EXPECT_LT(swapped.find("It is 4."), swapped.find("four"));

  PairQuestion two{
      {{Role::System, "be brief"}, {Role::User, "q1"}, {Role::Assistant, "a1"}, {Role::User, "q2"}},
      "x",
      "y"};
  const std::string mt = pair_messages(single, multi, two, false)[1]["content"];
  EXPECT_NE(
      mt.find("### User:\nq1\n\n### Assistant A:\na1\n\n### User:\nq2\n\n### Assistant A:\nx"),
      std::string::npos);
  EXPECT_NE(mt.find("### Assistant B:\ny"), std::string::npos);
  EXPECT_EQ(mt.find("be brief"), std::string::npos);

  PairQuestion three{{{Role::User, "q1"},
                      {Role::Assistant, "a1"},
                      {Role::User, "q2"},
                      {Role::Assistant, "a2"},
                      {Role::User, "q3"}},
                     "x",
                     "y"};
  const std::string tr = pair_messages(single, multi, three, false)[1]["content"];
  EXPECT_NE(tr.find("[User Question]\n### User:\nq1\n\n### Assistant:\na1\n\n### User:\nq2\n\n"
                    "### Assistant:\na2\n\n### User:\nq3\n"),
            std::string::npos);
}

TEST(Journal, KeysAreStableAndSensitive) {
  const json b = {{"model", "gpt-4"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  json c = b;
  c["model"] = "gpt-4-0613";
  EXPECT_EQ(request_key(b), request_key(json::parse(b.dump())));
  EXPECT_EQ(request_key(b).size(), 32u);
  EXPECT_NE(request_key(b), request_key(c));
}

TEST(Journal, ReplaysAppendsAndSurvivesATornLine) {
  const std::string dir = tmp_dir("journal"), path = dir + "/j.jsonl";
  {
    Journal j(path);
    j.append("k1", {"first", 10, 2});
    j.append("k2", {"other", 5, 1});
    j.append("k1", {"second", 10, 3});
  }
  {
    std::ofstream(path, std::ios::app) << "{\"key\": \"k3\", \"rep";  // killed mid-write
  }
  {
    Journal j(path);
    EXPECT_TRUE(j.dropped_torn_line());
    EXPECT_EQ(j.size(), 3u);
    const auto* k1 = j.find("k1");
    ASSERT_NE(k1, nullptr);
    ASSERT_EQ(k1->size(), 2u);
    EXPECT_EQ((*k1)[0].reply, "first");
    EXPECT_EQ((*k1)[1].reply, "second");
    EXPECT_EQ((*k1)[1].completion_tokens, 3);
    EXPECT_EQ(j.find("k3"), nullptr);
    j.append("k3", {"third", 1, 1});
  }
  {
    Journal j(path);
    EXPECT_FALSE(j.dropped_torn_line());
    EXPECT_EQ(j.size(), 4u);
    ASSERT_NE(j.find("k3"), nullptr);
  }
  { std::ofstream(path, std::ios::app) << "garbage\n{\"key\": \"k4\", \"reply\": \"x\"}\n"; }
  try {
    Journal j(path);
    FAIL() << "a damaged middle line must stop the run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("j.jsonl:5"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(MtBench, RealQuestionsAndReferenceCalls) {
  NEED_DATA("mt_bench/question.jsonl");
  const std::vector<MtQuestion> qs = read_mt_questions(kData + "/mt_bench/question.jsonl");
  ASSERT_EQ(qs.size(), 80u);
  std::map<std::string, int> cats;
  for (const MtQuestion& q : qs) {
    cats[q.category]++;
    EXPECT_EQ(q.turns.size(), 2u);
  }
  EXPECT_EQ(cats.size(), 8u);
  for (const auto& [c, n] : cats) EXPECT_EQ(n, 10) << c;
  EXPECT_EQ(mt_temperature("writing"), 0.7f);
  EXPECT_EQ(mt_temperature("math"), 0.0f);
  EXPECT_EQ(mt_temperature("stem"), 0.1f);

  const auto refs = read_mt_answers(kData + "/mt_bench/reference_answer_gpt-4.jsonl");
  EXPECT_EQ(refs.size(), 30u);
  const JudgePrompts ps(kData + "/mt_bench/judge_prompts.jsonl");
  const MtQuestion& writing = qs[0];
  MtAnswer a;
  a.question_id = writing.id, a.turns = {"first answer", "second answer"};
  const MtJudgeCall c1 = mt_single_call(ps, writing, a, nullptr, 1);
  EXPECT_EQ(c1.prompt_name, "single-v1");
  EXPECT_NE(c1.user_prompt.find(writing.turns[0]), std::string::npos);
  EXPECT_NE(c1.user_prompt.find("[The Start of Assistant's Answer]\nfirst answer\n"),
            std::string::npos);
  EXPECT_EQ(c1.messages[0]["content"], "You are a helpful assistant.");
  const MtJudgeCall c2 = mt_single_call(ps, writing, a, nullptr, 2);
  EXPECT_EQ(c2.prompt_name, "single-v1-multi-turn");
  EXPECT_NE(c2.user_prompt.find("### Assistant A:\nsecond answer"), std::string::npos);

  const MtQuestion* math = nullptr;
  for (const MtQuestion& q : qs)
    if (q.category == "math") math = math ? math : &q;
  ASSERT_NE(math, nullptr);
  EXPECT_THROW(mt_single_call(ps, *math, a, nullptr, 1), Error);
  const MtAnswer& ref = refs.at(math->id);
  const MtJudgeCall m2 = mt_single_call(ps, *math, a, &ref, 2);
  EXPECT_EQ(m2.prompt_name, "single-math-v1-multi-turn");
  EXPECT_NE(m2.user_prompt.find(ref.turns[1]), std::string::npos);
  EXPECT_EQ(mt_answer_id("m", 81).size(), 22u);
  EXPECT_EQ(mt_answer_id("m", 81), mt_answer_id("m", 81));
  EXPECT_NE(mt_answer_id("m", 81), mt_answer_id("m", 82));
}

TEST(AlpacaEval, RoundTripsRealFiles) {
  NEED_DATA("alpaca_eval/text_davinci_003.model_outputs.json");
  const std::string dir = tmp_dir("alpaca");
  for (const char* f : {"text_davinci_003.model_outputs.json", "xwinlm-7b-v0.1.model_outputs.json",
                        "alpaca-7b.alpaca_eval_gpt4.annotations.json"}) {
    const std::string in = kData + "/alpaca_eval/" + f, out = dir + "/" + f;
    const bool ann = std::string(f).find("annotations") != std::string::npos;
    const std::vector<json> r = ann ? read_annotations(in) : read_model_outputs(in);
    EXPECT_EQ(r.size(), 805u) << f;
    write_json_records(out, r);
    std::ifstream a(in), b(out);
    EXPECT_EQ(json::parse(a), json::parse(b)) << f;
  }
  fs::remove_all(dir);
}

TEST(AlpacaEval, PublishedWinRateOfAlpaca7b) {
  NEED_DATA("alpaca_eval/alpaca-7b.alpaca_eval_gpt4.annotations.json");
  std::vector<double> prefs;
  for (const json& a :
       read_annotations(kData + "/alpaca_eval/alpaca-7b.alpaca_eval_gpt4.annotations.json"))
    prefs.push_back(preference_of(a));
  const WinRate w = win_rate(prefs);
  EXPECT_EQ(w.n_wins, 205);
  EXPECT_EQ(w.n_wins_base, 584);
  EXPECT_EQ(w.n_draws, 16);
  EXPECT_EQ(w.n_total, 805);
  EXPECT_NEAR(w.win_rate, 26.46, 0.005);  // AlpacaEval's leaderboard (alpaca_eval_gpt4)
}

TEST(AlpacaEval, WinRateAndAnnotation) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const WinRate w = win_rate({1, 2, 1.5, nan});
  EXPECT_EQ(w.n_total, 3);
  EXPECT_EQ(w.n_missing, 1);
  EXPECT_DOUBLE_EQ(w.win_rate, 50.0);
  EXPECT_NEAR(w.standard_error, 100 * std::sqrt(0.25 / 3), 1e-9);
  const json ref = {{"instruction", "i"}, {"output", "r"}, {"generator", "base"}, {"dataset", "d"}};
  const json mod = {{"instruction", "i"}, {"output", "m"}, {"generator", "mine"}};
  const json a = annotation(ref, mod, "http:gpt-4", Winner::B);
  EXPECT_EQ(a["preference"], 2);
  EXPECT_EQ(a["output_1"], "r");
  EXPECT_EQ(a["generator_2"], "mine");
  EXPECT_TRUE(std::isnan(preference_of(annotation(ref, mod, "x", Winner::Failed))));
  EXPECT_EQ(preference_of(annotation(ref, mod, "x", Winner::Tie)), 1.5);
}

}  // namespace
}  // namespace xwin
