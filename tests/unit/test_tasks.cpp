// The verifiable task suite and the oracle annotator: every family's canonical answer is what an
// independent computation from the spec gives and grades correct in its accepted variants; wrong
// replies grade wrong and lose; nearer numbers and concise replies win; generation is a pure
// function of (seed, split, index); the splits share no instance and held-out has its own
// phrasings; tasks round-trip through JSON; the oracle judges known prompts and rejects others.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "core/error.h"
#include "tasks/oracle.h"
#include "tasks/tasks.h"

using namespace xwin;
using namespace xwin::tasks;
using nlohmann::json;

namespace {

long num(const json& spec, const char* key) {
  return spec.at(key).get<long>();
}

std::string text(const json& spec, const char* key) {
  return spec.at(key).get<std::string>();
}

long apply(long x, const std::string& op, long y) {
  if (op == "+") return x + y;
  if (op == "-") return x - y;
  EXPECT_EQ(op, "*");
  return x * y;
}

std::string to_upper(std::string s) {
  for (char& c : s) c = (char)std::toupper((unsigned char)c);
  return s;
}

std::string to_lower(std::string s) {
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

// The answer computed from the spec, without the code under test.
std::string expected_answer(const Task& t) {
  const json& s = t.spec;
  const std::string& f = t.family;
  if (f == "add") return std::to_string(num(s, "a") + num(s, "b"));
  if (f == "subtract") return std::to_string(num(s, "a") - num(s, "b"));
  if (f == "multiply") return std::to_string(num(s, "a") * num(s, "b"));
  if (f == "compare") return std::to_string(std::max(num(s, "a"), num(s, "b")));
  if (f == "sort") {
    std::vector<long> v = s.at("list").get<std::vector<long>>();
    std::sort(v.begin(), v.end());
    std::string out;
    for (size_t i = 0; i < v.size(); i++) out += (i ? ", " : "") + std::to_string(v[i]);
    return out;
  }
  if (f == "reverse") {
    const std::string w = text(s, "word");
    return std::string(w.rbegin(), w.rend());
  }
  if (f == "count") {
    const std::string w = text(s, "word");
    return std::to_string(std::count(w.begin(), w.end(), text(s, "letter").at(0)));
  }
  if (f == "convert") {
    static const std::map<std::string, long> factor = {
        {"kilometers>meters", 1000}, {"meters>centimeters", 100}, {"kilograms>grams", 1000},
        {"hours>minutes", 60},       {"minutes>seconds", 60},     {"days>hours", 24}};
    return std::to_string(num(s, "value") * factor.at(text(s, "from") + ">" + text(s, "to")));
  }
  if (f == "format") {
    const std::string w = text(s, "word"), mode = text(s, "mode");
    if (mode == "upper") return to_upper(w);
    if (mode == "repeat") return w + ", " + w + ", " + w;
    std::string d;
    for (char c : w) d += (d.empty() ? "" : "-") + std::string(1, c);
    return d;
  }
  if (f == "followup") {
    const long first = apply(num(s, "a"), text(s, "op"), num(s, "b"));
    return std::to_string(apply(first, text(s, "then"), num(s, "c")));
  }
  ADD_FAILURE() << "no independent answer for family " << f;
  return "";
}

bool numeric(const std::string& family) {
  return family != "sort" && family != "reverse" && family != "format";
}

// A few tasks of every family, from both splits.
std::vector<Task> sample(size_t per_split) {
  std::vector<Task> tasks = generate(per_split, 11, Split::Train);
  for (Task& t : generate(per_split, 11, Split::Heldout)) tasks.push_back(std::move(t));
  return tasks;
}

std::string replace_all(const std::string& s, const std::string& pattern, const std::string& by) {
  return std::regex_replace(s, std::regex(pattern), by);
}

// The last question with its values blanked: numbers, the quoted word and letter, unit names.
std::string shape(const Task& t) {
  std::string s = t.prompt.back().text;
  if (t.spec.contains("word")) s = replace_all(s, "'" + text(t.spec, "word") + "'", "'@'");
  if (t.spec.contains("letter")) s = replace_all(s, "'" + text(t.spec, "letter") + "'", "'?'");
  if (t.spec.contains("from")) {
    const std::string from = text(t.spec, "from"), to = text(t.spec, "to");
    s = replace_all(s, "\\b(" + from + "|" + from.substr(0, from.size() - 1) + ")\\b", "FROM");
    s = replace_all(s, "\\b" + to + "\\b", "TO");
  }
  return replace_all(s, "[0-9]+", "#");
}

std::string verbose(const std::string& answer) {
  return "Sure, I can help with that. Let me think it through step by step before I answer. "
         "The answer is " +
         answer + ".";
}

}  // namespace

TEST(Tasks, FamiliesRoundRobin) {
  const std::vector<std::string>& fams = families();
  ASSERT_GE(fams.size(), 8u);
  for (const char* f : {"add", "subtract", "multiply", "compare", "sort", "reverse", "count",
                        "convert", "format", "followup"})
    EXPECT_NE(std::find(fams.begin(), fams.end(), f), fams.end()) << f;
  const std::vector<Task> tasks = generate(3 * fams.size(), 1, Split::Train);
  for (size_t i = 0; i < tasks.size(); i++) EXPECT_EQ(tasks[i].family, fams[i % fams.size()]);
  const std::vector<Task> only = generate(6, 1, Split::Heldout, {"sort", "add"});
  for (size_t i = 0; i < only.size(); i++) {
    EXPECT_EQ(only[i].family, i % 2 ? "add" : "sort");
    EXPECT_EQ(only[i].split, Split::Heldout);
  }
  EXPECT_THROW(generate(3, 1, Split::Train, {"astrology"}), Error);
}

TEST(Tasks, AnswersMatchAnIndependentComputation) {
  for (const Task& t : sample(400)) {
    SCOPED_TRACE(to_json(t).dump());
    EXPECT_EQ(t.answer, expected_answer(t));
    EXPECT_LE(t.answer.size(), 25u);
    ASSERT_FALSE(t.prompt.empty());
    EXPECT_EQ(t.prompt.back().role, Role::User);
    for (const Turn& turn : t.prompt) EXPECT_LE(turn.text.size(), 80u);
    const std::string all = t.prompt.front().text + " " + t.prompt.back().text;
    for (const char* k : {"a", "b", "c", "value"})
      if (t.spec.contains(k)) {
        EXPECT_LE(num(t.spec, k), 999);
        EXPECT_NE(all.find(std::to_string(num(t.spec, k))), std::string::npos) << k;
      }
    if (t.spec.contains("word")) {
      const std::string w = text(t.spec, "word");
      EXPECT_TRUE(w.size() >= 3 && w.size() <= 7 && to_lower(w) == w) << w;
      EXPECT_NE(t.prompt.back().text.find("'" + w + "'"), std::string::npos);
    }
    if (t.family == "sort") {
      const size_t n = t.spec.at("list").size();
      EXPECT_TRUE(n >= 3 && n <= 5);
    }
    if (t.family == "followup") {
      ASSERT_EQ(t.prompt.size(), 3u);
      EXPECT_EQ(t.prompt[1].role, Role::Assistant);
      EXPECT_EQ(t.prompt[1].text,
                std::to_string(apply(num(t.spec, "a"), text(t.spec, "op"), num(t.spec, "b"))));
    } else {
      EXPECT_EQ(t.prompt.size(), 1u);
    }
  }
}

TEST(Tasks, CanonicalAnswerAndItsVariantsGradeCorrect) {
  for (const Task& t : sample(200)) {
    SCOPED_TRACE(to_json(t).dump());
    const Grade g = grade(t, t.answer);
    EXPECT_TRUE(g.correct);
    EXPECT_EQ(g.credit, 1.0);
    EXPECT_EQ(g.style, 1.0);
    const std::string a = t.answer;
    for (const std::string& v : {a + ".", "The answer is " + a + ".", " " + a + " \n",
                                 "Answer: " + a, "It is " + a + "."}) {
      const Grade gv = grade(t, v);
      EXPECT_TRUE(gv.correct) << "'" << v << "'";
      EXPECT_EQ(gv.credit, 1.0) << "'" << v << "'";
      EXPECT_EQ(gv.style, 1.0) << "'" << v << "'";
    }
    if (t.family == "reverse") {
      EXPECT_TRUE(grade(t, to_upper(a)).correct);
      EXPECT_TRUE(grade(t, "'" + a + "'").correct);
    }
    if (t.family == "sort") {
      EXPECT_TRUE(grade(t, replace_all(a, ", ", ",")).correct);
      EXPECT_TRUE(grade(t, replace_all(a, ", ", " ")).correct);
    }
    if (t.family == "convert") {
      EXPECT_TRUE(grade(t, a + " " + text(t.spec, "to")).correct);
    }
    if (t.family == "format") {
      const std::string mode = text(t.spec, "mode");
      // Case is the point of the family; separators are not.
      const std::string other_case = mode == "upper" ? to_lower(a) : to_upper(a);
      EXPECT_FALSE(grade(t, other_case).correct) << other_case;
      EXPECT_TRUE(grade(t, replace_all(a, ", ", ",")).correct);
    }
  }
}

TEST(Tasks, EmptyOrUnparseableRepliesEarnNothing) {
  for (const Task& t : sample(20)) {
    SCOPED_TRACE(to_json(t).dump());
    const Grade empty = grade(t, "  \n");
    EXPECT_FALSE(empty.correct);
    EXPECT_EQ(empty.credit, 0.0);
    EXPECT_EQ(empty.style, 0.0);
    const Grade junk = grade(t, "I don't know.");
    EXPECT_FALSE(junk.correct);
    EXPECT_EQ(junk.credit, 0.0);
  }
}

TEST(Tasks, WrongRepliesGradeWrongAndLose) {
  std::map<std::string, std::set<std::string>> variety;
  for (const Task& t : sample(300)) {
    SCOPED_TRACE(to_json(t).dump());
    const double right = oracle_score(grade(t, t.answer));
    for (uint64_t salt = 0; salt < 8; salt++) {
      const std::string w = wrong_reply(t, salt);
      EXPECT_EQ(w, wrong_reply(t, salt));
      EXPECT_FALSE(w.empty());
      EXPECT_LE(w.size(), t.answer.size() + 10);
      const Grade g = grade(t, w);
      EXPECT_FALSE(g.correct) << w;
      EXPECT_LT(g.credit, 1.0) << w;
      EXPECT_GE(g.credit, 0.0) << w;
      EXPECT_EQ(g.style, 1.0) << w;
      EXPECT_LT(oracle_score(g), right) << w;
      EXPECT_EQ(prefer(t, t.answer, w), Winner::A) << w;
      EXPECT_EQ(prefer(t, w, t.answer), Winner::B) << w;
      variety[t.family].insert(w);
    }
  }
  for (const auto& [family, replies] : variety) EXPECT_GE(replies.size(), 10u) << family;
}

// The kinds of bad demonstration the demo mixes into SFT data: the lazy one restates part of the
// question, the unhelpful one declines, the hedged one adds a second guess. None is ever
// correct, and each loses to the answer.
TEST(Tasks, LazyUnhelpfulAndHedgedRepliesAreNeverCorrect) {
  std::set<std::string> declines;
  for (const Task& t : sample(300)) {
    SCOPED_TRACE(to_json(t).dump());
    const std::string lazy = lazy_reply(t);
    EXPECT_FALSE(grade(t, lazy).correct) << lazy;
    EXPECT_EQ(prefer(t, t.answer, lazy), Winner::A) << lazy;
    for (uint64_t salt = 0; salt < 4; salt++) {
      const std::string u = unhelpful_reply(t, salt);
      EXPECT_EQ(u, unhelpful_reply(t, salt));
      const Grade g = grade(t, u);
      EXPECT_FALSE(g.correct) << u;
      if (numeric(t.family)) {
        EXPECT_EQ(g.credit, 0.0) << u;
      }
      EXPECT_EQ(prefer(t, t.answer, u), Winner::A) << u;
      declines.insert(u);
      const std::string h = hedged_reply(t, salt);
      EXPECT_EQ(h.rfind(t.answer + ", or maybe ", 0), 0u) << h;
      EXPECT_FALSE(grade(t, h).correct) << h;
      if (numeric(t.family)) {
        EXPECT_EQ(grade(t, h).credit, 0.0) << h;
      }
      EXPECT_EQ(prefer(t, t.answer, h), Winner::A) << h;
    }
  }
  EXPECT_GE(declines.size(), 3u);
  const Task t = sample(1)[0];
  for (const std::string& kind : bad_reply_kinds())
    EXPECT_FALSE(grade(t, bad_reply(kind, t, 5)).correct) << kind;
  EXPECT_EQ(bad_reply("hedged", t, 5), hedged_reply(t, 5));
  EXPECT_THROW(bad_reply("sloppy", t, 5), xwin::Error);
}

TEST(Tasks, NearerWrongNumberBeatsFartherOne) {
  for (const Task& t : sample(200)) {
    if (!numeric(t.family)) continue;
    SCOPED_TRACE(to_json(t).dump());
    const long a = std::stol(t.answer);
    const std::string near = std::to_string(a + 1), far = std::to_string(a + std::max(10L, 3 * a));
    const Grade gn = grade(t, near), gf = grade(t, far);
    EXPECT_FALSE(gn.correct);
    EXPECT_GT(gn.credit, gf.credit + 0.05);
    EXPECT_GT(oracle_score(gn), oracle_score(gf));
    EXPECT_EQ(prefer(t, near, far), Winner::A);
    EXPECT_EQ(prefer(t, far, near), Winner::B);
  }
}

TEST(Tasks, StringsAndListsEarnPartialCredit) {
  for (const Task& t : sample(100)) {
    SCOPED_TRACE(to_json(t).dump());
    if (t.family == "reverse") {
      const std::string a = t.answer, swapped = std::string(1, a[1]) + a[0] + a.substr(2);
      if (swapped == a) continue;
      const Grade g = grade(t, swapped), junk = grade(t, "xxxxxxx");
      EXPECT_FALSE(g.correct);
      EXPECT_GT(g.credit, 0.3);  // an adjacent swap is two edits
      EXPECT_EQ(prefer(t, swapped, "xxxxxxx"), Winner::A);
      EXPECT_LT(junk.credit, 0.05);
    }
    if (t.family == "sort") {
      std::vector<long> v = t.spec.at("list").get<std::vector<long>>();
      std::sort(v.begin(), v.end());
      std::swap(v[0], v[1]);
      std::string one_swap;
      for (long x : v) one_swap += (one_swap.empty() ? "" : ", ") + std::to_string(x);
      const Grade g = grade(t, one_swap);
      EXPECT_FALSE(g.correct);
      EXPECT_NEAR(g.credit, double(v.size() - 2) / double(v.size()), 1e-9);
      EXPECT_EQ(prefer(t, one_swap, "100, 200, 300"), Winner::A);
    }
    if (t.family == "format" && text(t.spec, "mode") == "upper") {
      const Grade g = grade(t, to_lower(t.answer));
      EXPECT_FALSE(g.correct);
      EXPECT_NEAR(g.credit, 0.5, 1e-9);  // the letters right, their case wrong
    }
  }
}

TEST(Tasks, ConciseCorrectBeatsVerboseCorrect) {
  for (const Task& t : sample(30)) {
    SCOPED_TRACE(to_json(t).dump());
    const std::string v = verbose(t.answer);
    const Grade g = grade(t, v);
    EXPECT_TRUE(g.correct) << v;
    EXPECT_LT(g.style, 0.95);
    EXPECT_GT(g.style, 0.0);
    EXPECT_EQ(prefer(t, t.answer, v), Winner::A);
    EXPECT_EQ(prefer(t, v, t.answer), Winner::B);
    EXPECT_GT(oracle_score(grade(t, t.answer)), oracle_score(g));
    EXPECT_EQ(prefer(t, t.answer, "The answer is " + t.answer + "."), Winner::Tie);
    EXPECT_EQ(prefer(t, t.answer, t.answer), Winner::Tie);
  }
}

TEST(Tasks, GenerationIsAPureFunctionOfSeedSplitAndIndex) {
  for (Split s : {Split::Train, Split::Heldout}) {
    const std::vector<Task> a = generate(60, 5, s), b = generate(60, 5, s);
    const std::vector<Task> prefix = generate(17, 5, s), other = generate(60, 6, s);
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); i++) {
      EXPECT_EQ(to_json(a[i]), to_json(b[i]));
      if (i < prefix.size()) {
        EXPECT_EQ(to_json(a[i]), to_json(prefix[i]));
      }
      differ += to_json(a[i]) != to_json(other[i]);
      EXPECT_EQ(a[i].split, s);
    }
    EXPECT_GT(differ, 40u);
  }
}

TEST(Tasks, SplitsShareNoInstanceAndHeldoutHasItsOwnPhrasings) {
  const std::vector<Task> train = generate(2000, 3, Split::Train);
  const std::vector<Task> heldout = generate(2000, 3, Split::Heldout);
  std::set<std::string> train_values, train_shapes;
  for (const Task& t : train) {
    train_values.insert(t.family + ":" + t.spec.dump());
    train_shapes.insert(t.family + ":" + shape(t));
  }
  std::set<std::string> heldout_values;
  std::map<std::string, size_t> unseen_shapes;
  size_t unseen = 0;
  for (const Task& t : heldout) {
    const std::string key = t.family + ":" + t.spec.dump();
    heldout_values.insert(key);
    EXPECT_EQ(train_values.count(key), 0u) << key;
    if (!train_shapes.count(t.family + ":" + shape(t))) unseen_shapes[t.family]++, unseen++;
  }
  EXPECT_GT(train_values.size(), 1000u);
  EXPECT_GT(heldout_values.size(), 1000u);
  for (const std::string& f : families()) EXPECT_GT(unseen_shapes[f], 0u) << f;
  // About a quarter of held-out tasks use a held-out-only phrasing.
  EXPECT_GT(unseen, 2000u * 12 / 100);
  EXPECT_LT(unseen, 2000u * 40 / 100);
}

TEST(Tasks, JsonRoundTrip) {
  for (const Task& t : sample(30)) {
    const json j = to_json(t);
    ASSERT_TRUE(j.at("messages").is_array());
    EXPECT_TRUE(j["messages"][0].contains("role") && j["messages"][0].contains("content"));
    const Task back = from_json(j);
    EXPECT_EQ(back.family, t.family);
    EXPECT_EQ(back.split, t.split);
    EXPECT_EQ(back.prompt, t.prompt);
    EXPECT_EQ(back.answer, t.answer);
    EXPECT_EQ(back.spec, t.spec);
    EXPECT_EQ(to_json(back), j);
  }
  const json good = to_json(generate(1, 2, Split::Train)[0]);
  for (const char* key : {"family", "split", "messages", "answer", "spec"}) {
    json bad = good;
    bad.erase(key);
    try {
      from_json(bad);
      ADD_FAILURE() << "no error without " << key;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, json>>{{"split", "test"},
                                                 {"family", "astrology"},
                                                 {"answer", 42},
                                                 {"messages", json::array()}}) {
    json bad = good;
    bad[key] = value;
    EXPECT_THROW(from_json(bad), Error) << key;
  }
  EXPECT_THROW(from_json(json::array()), Error);
}

TEST(Oracle, PreferIsAntisymmetricAndAgreesWithTheScore) {
  for (const Task& t : sample(40)) {
    SCOPED_TRACE(to_json(t).dump());
    std::vector<std::string> replies = {t.answer,  verbose(t.answer), "",
                                        "no idea", wrong_reply(t, 1), wrong_reply(t, 2)};
    if (numeric(t.family)) replies.push_back(std::to_string(std::stol(t.answer) + 500));
    for (const std::string& a : replies)
      for (const std::string& b : replies) {
        const Winner ab = prefer(t, a, b), ba = prefer(t, b, a);
        const Winner mirrored = ab == Winner::A ? Winner::B : ab == Winner::B ? Winner::A : ab;
        EXPECT_EQ(ba, mirrored) << "'" << a << "' vs '" << b << "'";
        const Grade ga = grade(t, a), gb = grade(t, b);
        const bool by_credit =
            ga.correct != gb.correct || ga.correct || std::abs(ga.credit - gb.credit) > 0.05;
        if (ab == Winner::A && by_credit) {
          EXPECT_GT(oracle_score(ga), oracle_score(gb)) << "'" << a << "' vs '" << b << "'";
        }
      }
  }
}

TEST(Oracle, JudgesKnownPromptsFromTheChecker) {
  const std::vector<Task> tasks = generate(30, 4, Split::Heldout);
  Oracle oracle(tasks);
  EXPECT_EQ(oracle.name(), "oracle");
  EXPECT_EQ(oracle.task_for(tasks[7].prompt).answer, tasks[7].answer);

  Conversation with_system = tasks[3].prompt;
  with_system.insert(with_system.begin(), Turn{Role::System, "Be brief."});
  const std::vector<PairQuestion> questions = {
      {tasks[0].prompt, tasks[0].answer, wrong_reply(tasks[0], 9)},
      {tasks[1].prompt, wrong_reply(tasks[1], 9), tasks[1].answer},
      {tasks[2].prompt, tasks[2].answer, tasks[2].answer},
      {with_system, verbose(tasks[3].answer), tasks[3].answer},
      {tasks[9].prompt, tasks[9].answer, "The answer is " + tasks[9].answer + "."}};
  const std::vector<PairVerdict> v = oracle.judge(questions);
  ASSERT_EQ(v.size(), questions.size());
  EXPECT_EQ(v[0].winner, Winner::A);
  EXPECT_EQ(v[0].explanation.rfind("A: correct credit=1 style=1; B: wrong credit=", 0), 0u)
      << v[0].explanation;
  EXPECT_EQ(v[1].winner, Winner::B);
  EXPECT_EQ(v[2].winner, Winner::Tie);
  EXPECT_EQ(v[3].winner, Winner::B);
  EXPECT_EQ(v[4].winner, Winner::Tie);
}

TEST(Oracle, UnknownPromptFailsClearly) {
  Oracle oracle(generate(10, 4, Split::Train));
  const Conversation unknown = {{Role::User, "What is the meaning of life?"}};
  try {
    oracle.task_for(unknown);
    ADD_FAILURE() << "no error for an unknown prompt";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("What is the meaning of life?"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(oracle.judge({{unknown, "a", "b"}}), Error);
}
