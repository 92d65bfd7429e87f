#include "judge/prompts.h"

#include <cctype>
#include <cstdlib>
#include <fstream>

#include "core/error.h"

namespace xwin {

using nlohmann::json;

static std::string field(const json& rec, const char* key, bool required) {
  if (!rec.contains(key)) {
    require(!required, "the record has no \"", key, "\"");
    return "";
  }
  require(rec[key].is_string(), "\"", key, "\" must be a string");
  return rec[key].get<std::string>();
}

JudgePrompts::JudgePrompts(const std::string& path) : path_(path) {
  std::ifstream in(path);
  require(in.good(), path,
          ": cannot open the judge prompts (FastChat's judge_prompts.jsonl; set --judge_prompts)");
  std::string line;
  for (size_t n = 1; std::getline(in, line); n++) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const json rec = json::parse(line);
      require(rec.is_object(), "not a JSON object");
      JudgePrompt p;
      p.name = field(rec, "name", true);
      p.type = field(rec, "type", false);
      p.system_prompt = field(rec, "system_prompt", false);
      p.prompt_template = field(rec, "prompt_template", true);
      p.output_format = field(rec, "output_format", false);
      p.category = field(rec, "category", false);
      by_name_[p.name] = p;
    } catch (const std::exception& e) {
      fail(path, ":", n, ": not a judge prompt record: ", e.what(),
           " (each line: {\"name\", \"system_prompt\", \"prompt_template\", ...})");
    }
  }
  require(!by_name_.empty(), path, ": no judge prompts in the file");
}

const JudgePrompt& JudgePrompts::get(const std::string& name) const {
  const auto it = by_name_.find(name);
  if (it != by_name_.end()) return it->second;
  std::string names;
  for (const auto& [n, p] : by_name_) names += (names.empty() ? "" : ", ") + n;
  fail(path_, ": no judge prompt named '", name, "' (the file has: ", names, ")");
}

std::string fill_template(const JudgePrompt& p, const std::map<std::string, std::string>& vars) {
  const std::string& t = p.prompt_template;
  std::string out;
  out.reserve(t.size() * 2);
  for (size_t i = 0; i < t.size(); i++) {
    const char c = t[i];
    if ((c == '{' || c == '}') && i + 1 < t.size() && t[i + 1] == c) {
      out += c, i++;
      continue;
    }
    if (c == '{') {
      const size_t end = t.find('}', i);
      const std::string name = end == std::string::npos ? "" : t.substr(i + 1, end - i - 1);
      bool ident = !name.empty() && !std::isdigit((unsigned char)name[0]);
      for (char k : name) ident = ident && (std::isalnum((unsigned char)k) || k == '_');
      if (ident) {
        const auto it = vars.find(name);
        require(it != vars.end(), "judge prompt '", p.name, "' has the field {", name,
                "}, which this kind of question does not provide; pick another --judge_prompt");
        out += it->second;
        i = end;
        continue;
      }
    }
    out += c;
  }
  return out;
}

json judge_messages(const JudgePrompt& p, const std::map<std::string, std::string>& vars) {
  json m = json::array();
  if (!p.system_prompt.empty()) m.push_back({{"role", "system"}, {"content", p.system_prompt}});
  m.push_back({{"role", "user"}, {"content", fill_template(p, vars)}});
  return m;
}

Winner parse_pair_verdict(const std::string& reply) {
  size_t best = std::string::npos;
  Winner w = Winner::Failed;
  for (auto [tag, v] :
       {std::pair{"[[A]]", Winner::A}, {"[[B]]", Winner::B}, {"[[C]]", Winner::Tie}}) {
    const size_t at = reply.rfind(tag);
    if (at != std::string::npos && (best == std::string::npos || at > best)) best = at, w = v;
  }
  return w;
}

// The number inside the first `open` x `close` with x = digits[.digits], or -1.
static double bracketed_number(const std::string& s, const std::string& open,
                               const std::string& close) {
  for (size_t at = s.find(open); at != std::string::npos; at = s.find(open, at + 1)) {
    size_t i = at + open.size(), j = i;
    while (j < s.size() && std::isdigit((unsigned char)s[j])) j++;
    if (j == i) continue;
    if (j < s.size() && s[j] == '.') {
      j++;
      while (j < s.size() && std::isdigit((unsigned char)s[j])) j++;
    }
    if (s.compare(j, close.size(), close) == 0) return std::strtod(s.c_str() + i, nullptr);
  }
  return -1;
}

double parse_rating(const std::string& reply) {
  double r = bracketed_number(reply, "[[", "]]");
  if (r < 0) r = bracketed_number(reply, "[", "]");
  return r >= 0 && r <= 10 ? r : -1;
}

Winner combine_orders(Winner first, Winner second) {
  if (first == Winner::Failed || second == Winner::Failed) return Winner::Failed;
  return first == second ? first : Winner::Tie;
}

}  // namespace xwin
