#include "io/records.h"

#include <algorithm>

#include "core/error.h"

namespace xwin {

using nlohmann::json;

static Role role_of(const std::string& r, size_t turn) {
  if (r == "human" || r == "user") return Role::User;
  if (r == "gpt" || r == "assistant") return Role::Assistant;
  if (r == "system") return Role::System;
  fail("turn ", turn, " has the unknown role '", r,
       "'; roles are human/user, gpt/assistant and system");
}

static std::string text_of(const json& j, const char* what) {
  require(j.is_string(), what, " must be a string, not ", j.type_name());
  return j.get<std::string>();
}

Conversation turns_from_json(const json& turns) {
  require(turns.is_array(), "the turns must be a JSON array, not ", turns.type_name());
  Conversation c;
  for (size_t i = 0; i < turns.size(); i++) {
    const json& t = turns[i];
    const std::string n = std::to_string(i + 1);
    require(t.is_object(), "turn ", n, " is not an object");
    const bool sharegpt = t.contains("from");
    require(sharegpt || t.contains("role"), "turn ", n,
            " has neither \"from\" (ShareGPT) nor \"role\" (OpenAI)");
    const json& role = t[sharegpt ? "from" : "role"];
    require(role.is_string(), "turn ", n, ": the role must be a string");
    const char* key = sharegpt ? "value" : "content";
    require(t.contains(key), "turn ", n, " has no \"", key, "\"");
    c.push_back({role_of(role.get<std::string>(), i + 1), text_of(t[key], key)});
  }
  return c;
}

Conversation conversation_from_json(const json& rec) {
  require(rec.is_object(), "the record is a JSON ", rec.type_name(), ", not an object");
  if (rec.contains("conversations")) return turns_from_json(rec["conversations"]);
  if (rec.contains("messages")) return turns_from_json(rec["messages"]);
  fail("the record has no \"conversations\" (ShareGPT) or \"messages\" (OpenAI) array");
}

static void check(const Conversation& c, Ending end) {
  const std::string problem = conversation_problem(c, end);
  require(problem.empty(), problem);
}

// Alpaca's instruction and optional input, joined the way Alpaca's prompts join them.
static std::string instruction_of(const json& rec) {
  std::string s = text_of(rec["instruction"], "\"instruction\"");
  if (rec.contains("input") && rec["input"].is_string() && !rec["input"].get<std::string>().empty())
    s += "\n\n" + rec["input"].get<std::string>();
  return s;
}

static bool has_prompt(const json& rec) {
  return rec.contains("conversations") || rec.contains("messages") || rec.contains("prompt") ||
         rec.contains("instruction");
}

Conversation prompt_from_json(const json& rec) {
  require(rec.is_object(), "the record is a JSON ", rec.type_name(), ", not an object");
  Conversation c;
  if (rec.contains("conversations") || rec.contains("messages")) {
    c = conversation_from_json(rec);
  } else if (rec.contains("prompt")) {
    const json& p = rec["prompt"];
    c = p.is_string() ? Conversation{{Role::User, p.get<std::string>()}} : turns_from_json(p);
  } else if (rec.contains("instruction")) {
    c = {{Role::User, instruction_of(rec)}};
  } else {
    fail("the record has no prompt: give \"conversations\", \"messages\", \"prompt\" or ",
         "\"instruction\"");
  }
  check(c, Ending::Prompt);
  return c;
}

static std::string reply_of(const json& rec, const char* key) {
  const json& r = rec[key];
  if (r.is_string()) return r.get<std::string>();
  const Conversation c = turns_from_json(r);
  require(c.size() == 1 && c[0].role == Role::Assistant, "\"", key,
          "\" must be a string or one assistant turn when the record has a prompt");
  return c[0].text;
}

static PairRecord alpaca_eval_pair(const json& rec, Ties ties) {
  PairRecord p;
  p.prompt = {{Role::User, instruction_of(rec)}};
  const std::string o1 = text_of(rec["output_1"], "\"output_1\"");
  const std::string o2 = text_of(rec["output_2"], "\"output_2\"");
  const json pref = rec.contains("preference") ? rec["preference"] : json();
  if (pref.is_null()) return p.skip = true, p;  // the annotator gave no verdict
  require(pref.is_number(), "\"preference\" must be a number, not ", pref.type_name());
  const double v = pref.get<double>();
  p.tie = v == 0 || v == 1.5;
  require(p.tie || v == 1 || v == 2, "\"preference\" is ", v,
          "; AlpacaEval annotations use 1 (output_1 wins), 2 (output_2 wins) or 0 / 1.5 (tie)");
  p.skip = p.tie && ties == Ties::Drop;
  p.chosen = v == 2 ? o2 : o1;
  p.rejected = v == 2 ? o1 : o2;
  return p;
}

PairRecord pair_from_json(const json& rec, Ties ties) {
  require(rec.is_object(), "the record is a JSON ", rec.type_name(), ", not an object");
  if (rec.contains("output_1") && rec.contains("output_2")) return alpaca_eval_pair(rec, ties);
  require(rec.contains("chosen") && rec.contains("rejected"),
          "a pair needs \"chosen\" and \"rejected\" (or AlpacaEval's output_1, output_2, "
          "preference)");
  PairRecord p;
  if (has_prompt(rec)) {
    p.prompt = prompt_from_json(rec);
    p.chosen = reply_of(rec, "chosen");
    p.rejected = reply_of(rec, "rejected");
  } else {
    // Whole conversations that differ only in the last reply.
    const Conversation c = turns_from_json(rec["chosen"]), r = turns_from_json(rec["rejected"]);
    check(c, Ending::Reply);
    check(r, Ending::Reply);
    require(c.size() == r.size() && std::equal(c.begin(), c.end() - 1, r.begin()),
            "\"chosen\" and \"rejected\" must share every turn but the last reply");
    p.prompt.assign(c.begin(), c.end() - 1);
    p.chosen = c.back().text;
    p.rejected = r.back().text;
  }
  if (rec.contains("margin")) {
    require(rec["margin"].is_number(), "\"margin\" must be a number");
    p.margin = rec["margin"].get<float>(), p.has_margin = true;
  }
  return p;
}

static std::vector<float> numbers(const json& j, const char* key, size_t k) {
  require(j.is_array() && j.size() == k, "\"", key, "\" must be an array of ", k,
          " numbers, one per response");
  std::vector<float> v;
  for (const json& x : j) {
    require(x.is_number(), "\"", key, "\" holds a ", x.type_name(), ", not a number");
    v.push_back(x.get<float>());
  }
  return v;
}

XwinSetRecord xwin_set_from_json(const json& rec) {
  XwinSetRecord x;
  x.prompt = prompt_from_json(rec);
  require(rec.contains("responses") && rec["responses"].is_array() && !rec["responses"].empty(),
          "an Xwin-Set record needs a non-empty \"responses\" array");
  json scores = json::array(), ref = json::array();
  for (const json& r : rec["responses"]) {
    if (r.is_string()) {
      x.responses.push_back(r.get<std::string>());
      continue;
    }
    require(r.is_object() && r.contains("text"),
            "each response is a string or an object {\"text\", \"score\", \"ref_logp\"}");
    x.responses.push_back(text_of(r["text"], "\"text\""));
    if (r.contains("score")) scores.push_back(r["score"]);
    if (r.contains("ref_logp")) ref.push_back(r["ref_logp"]);
  }
  const size_t k = x.responses.size();
  x.scores = numbers(rec.contains("scores") ? rec["scores"] : scores, "scores", k);
  if (rec.contains("ref_logp") || !ref.empty())
    x.ref_logp = numbers(rec.contains("ref_logp") ? rec["ref_logp"] : ref, "ref_logp", k);
  return x;
}

json turns_to_json(const Conversation& c, TurnFormat f) {
  json turns = json::array();
  for (const Turn& t : c) {
    if (f == TurnFormat::OpenAI) {
      turns.push_back({{"role", role_name(t.role)}, {"content", t.text}});
    } else {
      const char* from = t.role == Role::User        ? "human"
                         : t.role == Role::Assistant ? "gpt"
                                                     : "system";
      turns.push_back({{"from", from}, {"value", t.text}});
    }
  }
  return turns;
}

json conversation_to_json(const Conversation& c, TurnFormat f) {
  return {{f == TurnFormat::OpenAI ? "messages" : "conversations", turns_to_json(c, f)}};
}

}  // namespace xwin
