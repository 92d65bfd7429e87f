#include "judge/mt_bench.h"

#include <fstream>

#include "core/error.h"
#include "core/rng.h"

namespace xwin {

using nlohmann::json;

template <typename F>
static void each_line(const std::string& path, const char* what, F f) {
  std::ifstream in(path);
  require(in.good(), path, ": cannot open the ", what);
  std::string line;
  for (size_t n = 1; std::getline(in, line); n++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      f(json::parse(line));
    } catch (const std::exception& e) {
      fail(path, ":", n, ": not a FastChat ", what, " record: ", e.what());
    }
  }
}

static std::vector<std::string> strings(const json& a) {
  require(a.is_array() && !a.empty(), "\"turns\" must be a non-empty array of strings");
  return a.get<std::vector<std::string>>();
}

std::vector<MtQuestion> read_mt_questions(const std::string& path) {
  std::vector<MtQuestion> qs;
  each_line(path, "MT-bench question", [&](const json& j) {
    MtQuestion q;
    q.id = j.at("question_id").get<int64_t>();
    q.category = j.at("category").get<std::string>();
    q.turns = strings(j.at("turns"));
    qs.push_back(std::move(q));
  });
  require(!qs.empty(), path, ": no questions");
  return qs;
}

std::map<int64_t, MtAnswer> read_mt_answers(const std::string& path) {
  std::map<int64_t, MtAnswer> out;
  each_line(path, "model_answer", [&](const json& j) {
    MtAnswer a;
    a.question_id = j.at("question_id").get<int64_t>();
    a.answer_id = j.value("answer_id", "");
    a.model_id = j.value("model_id", "");
    a.tstamp = j.value("tstamp", 0.0);
    const json& ch = j.at("choices");
    require(ch.is_array() && !ch.empty(), "\"choices\" must be a non-empty array");
    a.turns = strings(ch[0].at("turns"));
    out[a.question_id] = std::move(a);
  });
  return out;
}

json to_json(const MtAnswer& a) {
  return {{"question_id", a.question_id},
          {"answer_id", a.answer_id},
          {"model_id", a.model_id},
          {"choices", json::array({{{"index", 0}, {"turns", a.turns}}})},
          {"tstamp", a.tstamp}};
}

std::string mt_answer_id(const std::string& model_id, int64_t question_id) {
  static const char* alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  const uint64_t seed = hash_name(model_id.c_str());
  std::string id;
  for (int i = 0; i < 22; i++) id += alphabet[rng_u64(seed, (uint64_t)question_id, i) % 57];
  return id;
}

float mt_temperature(const std::string& c) {
  if (c == "writing" || c == "roleplay") return 0.7f;
  if (c == "extraction" || c == "math" || c == "coding" || c == "reasoning") return 0.0f;
  if (c == "stem" || c == "humanities") return 0.1f;
  return 0.7f;
}

bool mt_needs_reference(const std::string& c) {
  return c == "math" || c == "reasoning" || c == "coding";
}

MtJudgeCall mt_single_call(const JudgePrompts& prompts, const MtQuestion& q, const MtAnswer& a,
                           const MtAnswer* ref, int turn) {
  const bool math = mt_needs_reference(q.category);
  require(!math || ref, "MT-bench question ", q.id, " (", q.category,
          ") is graded against a reference answer: give --reference (FastChat's "
          "reference_answer/gpt-4.jsonl)");
  require(turn == 1 || (q.turns.size() >= 2 && a.turns.size() >= 2), "MT-bench question ", q.id,
          ": turn 2 needs two question turns and two answer turns");
  MtJudgeCall c;
  c.prompt_name =
      std::string(math ? "single-math-v1" : "single-v1") + (turn == 2 ? "-multi-turn" : "");
  std::map<std::string, std::string> vars;
  if (turn == 1) {
    vars = {{"question", q.turns[0]}, {"answer", a.turns[0]}};
  } else {
    vars = {{"question_1", q.turns[0]},
            {"question_2", q.turns[1]},
            {"answer_1", a.turns[0]},
            {"answer_2", a.turns[1]}};
  }
  if (math) {
    require(ref->turns.size() >= (size_t)turn, "MT-bench question ", q.id,
            ": the reference answer has no turn ", turn);
    vars["ref_answer_1"] = ref->turns[0];
    if (turn == 2) vars["ref_answer_2"] = ref->turns[1];
  }
  const JudgePrompt& p = prompts.get(c.prompt_name);
  c.user_prompt = fill_template(p, vars);
  c.messages = judge_messages(p, vars);
  return c;
}

void MtScores::add(const std::string& category, int turn, double score) {
  for (MtScore* s : {&overall, &this->turn[turn - 1], &by_category[category]}) {
    if (score < 0) {
      s->failed++;
    } else {
      s->sum += score, s->n++;
    }
  }
}

json MtScores::to_json() const {
  auto one = [](const MtScore& s) {
    return json{{"score", s.mean()}, {"n", s.n}, {"failed", s.failed}};
  };
  json cats = json::object();
  for (const auto& [c, s] : by_category) cats[c] = one(s);
  return {{"overall", one(overall)},
          {"turn_1", one(turn[0])},
          {"turn_2", one(turn[1])},
          {"by_category", cats}};
}

}  // namespace xwin
