// MT-bench in FastChat's own formats: question.jsonl ({"question_id", "category", "turns"}),
// model_answer / reference_answer JSONL ({"question_id", "answer_id", "model_id", "choices":
// [{"index": 0, "turns": [...]}], "tstamp"}), and single-answer grading as FastChat's
// gen_judgment.py does it: turn 1 with single-v1, turn 2 with single-v1-multi-turn, and the
// -math variants with GPT-4's reference answers for math, reasoning and coding. Judgments are
// written as FastChat's model_judgment JSONL ({"question_id", "model", "judge": [model,
// prompt], "user_prompt", "judgment", "score", "turn", "tstamp"}; score -1 = no rating).
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "judge/prompts.h"

namespace xwin {

struct MtQuestion {
  int64_t id = 0;
  std::string category;
  std::vector<std::string> turns;
};
std::vector<MtQuestion> read_mt_questions(const std::string& path);

struct MtAnswer {
  int64_t question_id = 0;
  std::string answer_id, model_id;
  std::vector<std::string> turns;  // of choices[0]
  double tstamp = 0;
};
// question_id -> answer; errors name the file and line.
std::map<int64_t, MtAnswer> read_mt_answers(const std::string& path);
nlohmann::json to_json(const MtAnswer& a);
// A stable 22-character id in shortuuid's alphabet (FastChat's answer_id format).
std::string mt_answer_id(const std::string& model_id, int64_t question_id);

// FastChat's temperature_config: 0.7 writing/roleplay, 0 extraction/math/coding/reasoning,
// 0.1 stem/humanities; 0.7 otherwise.
float mt_temperature(const std::string& category);
// math, reasoning, coding: graded against a reference answer.
bool mt_needs_reference(const std::string& category);

struct MtJudgeCall {
  std::string prompt_name, user_prompt;
  nlohmann::json messages;
};
// The grading call for turn 1 or 2 of an answer; ref is required for mt_needs_reference.
MtJudgeCall mt_single_call(const JudgePrompts& prompts, const MtQuestion& q, const MtAnswer& a,
                           const MtAnswer* ref, int turn);

struct MtScore {
  double sum = 0;
  int64_t n = 0, failed = 0;
  double mean() const { return n ? sum / n : 0.0; }
};
struct MtScores {
  MtScore overall, turn[2];
  std::map<std::string, MtScore> by_category;
  void add(const std::string& category, int turn, double score);  // score -1: failed
  nlohmann::json to_json() const;
};

}  // namespace xwin
