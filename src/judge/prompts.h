// Judge prompt templates and verdict parsing, in MT-bench's formats (FastChat). Templates are
// data: a JSONL file of {"name", "type": "pairwise"|"single", "system_prompt",
// "prompt_template", "output_format", ...} records (FastChat's judge_prompts.jsonl is read as it
// is), selected by name, so another judge prompt needs a file and no code. A template's
// placeholders are Python str.format fields ({question}, {answer_a}, {ref_answer_1}, ...; "{{"
// and "}}" are literal braces).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "judge/judge.h"

namespace xwin {

struct JudgePrompt {
  std::string name, type, system_prompt, prompt_template, output_format, category;
};

class JudgePrompts {
 public:
  // Reads every record of a judge_prompts.jsonl; errors name the file and line.
  explicit JudgePrompts(const std::string& path);
  // The template called `name`; the error lists the names the file has.
  const JudgePrompt& get(const std::string& name) const;
  bool has(const std::string& name) const { return by_name_.count(name) > 0; }
  const std::string& path() const { return path_; }
  size_t size() const { return by_name_.size(); }

 private:
  std::string path_;
  std::map<std::string, JudgePrompt> by_name_;
};

// Fills the template's fields from vars (Python str.format semantics); a field with no value is
// an error naming the template and the field.
std::string fill_template(const JudgePrompt& p, const std::map<std::string, std::string>& vars);

// OpenAI chat messages for one judge call: the system prompt (when non-empty), then the filled
// template as the user turn, as FastChat sends them.
nlohmann::json judge_messages(const JudgePrompt& p, const std::map<std::string, std::string>& vars);

// Pairwise verdict: the LAST of "[[A]]", "[[B]]", "[[C]]" (tie) in the reply (judges explain
// first and conclude at the end); Failed when none occurs.
Winner parse_pair_verdict(const std::string& reply);

// Single-answer rating, as FastChat reads it: the first "[[x]]", else the first "[x]", with x a
// number in [0, 10]; -1 when there is none.
double parse_rating(const std::string& reply);

// Two verdicts on one question, the second asked with the answers swapped and already mapped
// back to the original positions: agreement stands, disagreement is a tie (position bias
// cancelled), and a missing verdict on either side is Failed.
Winner combine_orders(Winner first, Winner second);

}  // namespace xwin
