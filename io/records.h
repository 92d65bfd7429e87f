// The JSON record formats xwin reads and writes, as typed values. Parsers throw xwin::Error with
// what is wrong inside the record; the caller prefixes the file and line.
//
// Conversations: ShareGPT {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}
// or OpenAI {"messages": [{"role": "user"|"assistant"|"system", "content": ...}]} (either
// spelling of the roles is accepted in either form).
// Pairs: {"prompt": TEXT|TURNS or "conversations"/"messages": TURNS, "chosen": REPLY,
// "rejected": REPLY, "margin": x (optional)}, where REPLY is a string or a one-turn assistant
// list; or chosen/rejected as whole conversations sharing their prompt turns; or AlpacaEval's
// annotations {"instruction", "output_1", "output_2", "preference": 1|2, 0 or 1.5 = tie}.
// Prompts: conversations ending with a user turn, {"prompt": TEXT|TURNS} or {"instruction": TEXT}.
// Xwin-Set: a prompt as above, "responses": [TEXT...] (K of them), "scores": [K numbers],
// optional "ref_logp": [K numbers]; responses may also be objects {"text", "score", "ref_logp"}.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/chat_template.h"

namespace xwin {

// Conversation turns from a JSON array of turn objects (ShareGPT or OpenAI form).
Conversation turns_from_json(const nlohmann::json& turns);
// A record's conversation: its "conversations" or "messages" array.
Conversation conversation_from_json(const nlohmann::json& record);
// A prompt ending with a user turn: conversations/messages, "prompt" or "instruction".
Conversation prompt_from_json(const nlohmann::json& record);

enum class Ties { Drop, Keep };

struct PairRecord {
  Conversation prompt;
  std::string chosen, rejected;
  float margin = 0.f;
  bool has_margin = false;
  bool tie = false;   // the annotator preferred neither (kept as output_1, output_2)
  bool skip = false;  // a tie under Ties::Drop, or an AlpacaEval record without a preference
};
PairRecord pair_from_json(const nlohmann::json& record, Ties ties);

struct XwinSetRecord {
  Conversation prompt;
  std::vector<std::string> responses;
  std::vector<float> scores, ref_logp;  // ref_logp empty when not given
};
XwinSetRecord xwin_set_from_json(const nlohmann::json& record);

enum class TurnFormat { ShareGPT, OpenAI };
nlohmann::json turns_to_json(const Conversation& c, TurnFormat f);
// {"conversations": [...]} or {"messages": [...]}
nlohmann::json conversation_to_json(const Conversation& c, TurnFormat f);

}  // namespace xwin
