#include "io/chat_template.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace xwin {

const char* role_name(Role r) {
  return r == Role::System ? "system" : r == Role::User ? "user" : "assistant";
}

std::string conversation_problem(const Conversation& c, Ending end) {
  if (c.empty()) return "the conversation has no turns";
  const size_t first = c[0].role == Role::System ? 1 : 0;
  if (c.size() == first) return "the conversation has only a system turn";
  if (c[first].role == Role::Assistant)
    return "the conversation starts with the assistant; the first turn (after an optional "
           "system prompt) must be the user's";
  for (size_t i = first; i < c.size(); i++) {
    const Role want = (i - first) % 2 == 0 ? Role::User : Role::Assistant;
    if (c[i].role == Role::System)
      return "turn " + std::to_string(i + 1) + " is a system turn; a system prompt may only be " +
             "the first turn";
    if (c[i].role != want)
      return "turns " + std::to_string(i) + " and " + std::to_string(i + 1) + " are both the " +
             role_name(want == Role::User ? Role::Assistant : Role::User) +
             "'s; user and assistant turns must alternate";
  }
  if (end == Ending::Reply && c.back().role != Role::Assistant)
    return "the conversation ends with a user turn; training conversations must end with the "
           "assistant's reply (prompts for sampling go to `xwin data prompts`)";
  if (end == Ending::Prompt && c.back().role != Role::User)
    return "the conversation ends with the assistant's reply; a prompt for sampling must end "
           "with a user turn";
  return "";
}

static bool is_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}
static bool starts_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}
static bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string ChatTemplate::assistant_cue() const {
  size_t n = assistant_prefix.size();
  while (n > 0 && is_space(assistant_prefix[n - 1])) n--;
  return assistant_prefix.substr(0, n);
}

void ChatTemplate::validate() const {
  require(!user_prefix.empty(), "[template] user_prefix is empty; it marks where user turns ",
          "begin (Vicuna: \"USER: \")");
  require(!assistant_cue().empty(), "[template] assistant_prefix '", assistant_prefix,
          "' has no visible text; it marks where replies begin (Vicuna: \"ASSISTANT: \")");
}

std::string ChatTemplate::to_json() const {
  return nlohmann::json{{"name", name},
                        {"system", system},
                        {"system_suffix", system_suffix},
                        {"user_prefix", user_prefix},
                        {"user_suffix", user_suffix},
                        {"assistant_prefix", assistant_prefix}}
      .dump();
}

ChatTemplate ChatTemplate::from_json(const std::string& json, const std::string& where) {
  ChatTemplate t;
  try {
    const auto j = nlohmann::json::parse(json);
    t.name = j.at("name").get<std::string>();
    t.system = j.at("system").get<std::string>();
    t.system_suffix = j.at("system_suffix").get<std::string>();
    t.user_prefix = j.at("user_prefix").get<std::string>();
    t.user_suffix = j.at("user_suffix").get<std::string>();
    t.assistant_prefix = j.at("assistant_prefix").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": the template attribute is not a chat template (", e.what(),
         "); was this file written by xwin data?");
  }
  return t;
}

ChatEncoder::ChatEncoder(const Tokenizer& tok, ChatTemplate t) : tok_(tok), t_(std::move(t)) {
  t_.validate();
  cue_ = t_.assistant_cue();
  cue_ws_ = t_.assistant_prefix.substr(cue_.size());
}

// The text of the segment holding user turn i, up to the assistant cue.
std::string ChatEncoder::segment_prompt(const Conversation& c, size_t i) const {
  std::string s;
  const bool has_system = c[0].role == Role::System;
  if (i == (has_system ? 1u : 0u)) {
    const std::string& sys = has_system ? c[0].text : t_.system;
    if (!sys.empty()) s += sys + t_.system_suffix;
  }
  s += t_.user_prefix + c[i].text + t_.user_suffix + cue_;
  return s;
}

// Encodes a segment as one string and finds where its pieces change role.
ChatEncoder::Split ChatEncoder::encode_segment(const std::string& text, size_t cue_end,
                                               std::vector<int32_t>& out) const {
  const std::vector<TokenSpan> spans = tok_.encode_spans(text);
  // The first piece covering any byte at or after pos (empty byte-fallback pieces included).
  auto first_from = [&](size_t pos) {
    size_t i = 0;
    while (i < spans.size() && spans[i].begin < pos && spans[i].end <= pos) i++;
    return i;
  };
  const Split s{first_from(cue_end - cue_.size() - t_.user_suffix.size()), first_from(cue_end)};
  if (s.reply < spans.size() && spans[s.reply].begin < cue_end)
    fail("the tokenizer joins the end of the assistant prefix '", t_.assistant_prefix,
         "' and the reply into one piece ('", tok_.piece(spans[s.reply].id),
         "'), so the loss mask cannot separate them; end [template] assistant_prefix with a space");
  for (const TokenSpan& sp : spans) out.push_back(sp.id);
  return s;
}

// BOS, then the complete (user, assistant) turns before index `end`, each closed by EOS.
EncodedChat ChatEncoder::encode_turns(const Conversation& c, size_t end) const {
  EncodedChat e;
  e.tokens.push_back(tok_.bos_id());
  for (size_t i = c[0].role == Role::System ? 1 : 0; i + 1 < end; i += 2) {
    std::string text = segment_prompt(c, i);
    const size_t cue_end = text.size(), start = e.tokens.size();
    text += cue_ws_ + c[i + 1].text;
    const Split s = encode_segment(text, cue_end, e.tokens);
    e.last_reply = start + s.reply;
    e.tokens.push_back(tok_.eos_id());
    // The reply, from its first piece through the EOS that closes it, is the target.
    e.loss_mask.resize(e.last_reply, 0);
    e.loss_mask.resize(e.tokens.size(), 1);
    e.tail.resize(start + s.tail, 0);
    e.tail.resize(e.tokens.size(), 1);
  }
  e.loss_mask.resize(e.tokens.size(), 0);
  e.tail.resize(e.tokens.size(), 0);
  return e;
}

EncodedChat ChatEncoder::encode(const Conversation& c) const {
  const std::string problem = conversation_problem(c, Ending::Reply);
  require(problem.empty(), problem);
  return encode_turns(c, c.size());
}

EncodedChat ChatEncoder::encode_prompt(const Conversation& c) const {
  const std::string problem = conversation_problem(c, Ending::Prompt);
  require(problem.empty(), problem);
  EncodedChat e = encode_turns(c, c.size() - 1);
  const size_t start = e.tokens.size();
  const std::string text = segment_prompt(c, c.size() - 1);
  const Split s = encode_segment(text, text.size(), e.tokens);
  e.loss_mask.resize(e.tokens.size(), 0);
  e.tail.resize(start + s.tail, 0);
  e.tail.resize(e.tokens.size(), 1);
  e.last_reply = e.tokens.size();
  return e;
}

std::vector<int32_t> ChatEncoder::encode_reply(const Conversation& prompt,
                                               const std::vector<int32_t>& prompt_ids,
                                               const std::string& reply) const {
  std::string text = segment_prompt(prompt, prompt.size() - 1);
  const size_t cue_end = text.size();
  std::vector<int32_t> seg;
  const size_t split = encode_segment(text + cue_ws_ + reply, cue_end, seg).reply;
  size_t start = prompt_ids.size();  // the prompt's last segment: after its last EOS or BOS
  while (start > 0 && prompt_ids[start - 1] != tok_.eos_id() &&
         prompt_ids[start - 1] != tok_.bos_id())
    start--;
  require(prompt_ids.size() - start == split &&
              std::equal(seg.begin(), seg.begin() + split, prompt_ids.begin() + start),
          "the tokenizer splits the prompt differently when this reply follows it; end ",
          "[template] assistant_prefix with a space");
  std::vector<int32_t> out(seg.begin() + split, seg.end());
  out.push_back(tok_.eos_id());
  return out;
}

bool truncate_left(EncodedChat& e, size_t max_len) {
  const size_t n = e.tokens.size();
  if (n <= max_len) return true;
  if (max_len < 2) return false;
  size_t c = n - max_len + 1;  // first kept token after BOS
  // Never keep a reply, or the cue before it, without its question: skip to the next turn.
  while (c < n && e.tail[c]) c++;
  if (c >= e.last_reply) return false;
  e.tokens.erase(e.tokens.begin() + 1, e.tokens.begin() + c);
  e.loss_mask.erase(e.loss_mask.begin() + 1, e.loss_mask.begin() + c);
  e.tail.erase(e.tail.begin() + 1, e.tail.begin() + c);
  e.last_reply -= c - 1;
  return true;
}

// Splits the system prompt off the first segment's text and returns the rest. A system prompt
// equal to the template's default is not a turn of its own (it was filled in).
static std::string take_system(const ChatTemplate& t, const std::string& text, Conversation& out) {
  const std::string def = t.system.empty() ? "" : t.system + t.system_suffix;
  if (!def.empty() && starts_with(text, def + t.user_prefix)) return text.substr(def.size());
  if (starts_with(text, t.user_prefix)) {
    if (!t.system.empty()) out.push_back({Role::System, ""});
    return text;
  }
  const size_t pos = text.find(t.system_suffix + t.user_prefix);
  if (pos == std::string::npos) return text;  // a prompt truncated from the left
  out.push_back({Role::System, text.substr(0, pos)});
  return text.substr(pos + t.system_suffix.size());
}

// "[SYSTEM ]USER: q ASSISTANT:" -> the system (first segment only) and user turns.
void ChatEncoder::parse_prompt(std::string text, bool first, Conversation& out) const {
  if (first) text = take_system(t_, text, out);
  const std::string tail = t_.user_suffix + cue_;
  require(ends_with(text, tail), "the prompt text does not end with '", tail,
          "'; the record was not written with the template stored in the dataset");
  const size_t begin = starts_with(text, t_.user_prefix) ? t_.user_prefix.size() : 0;
  out.push_back({Role::User, text.substr(begin, text.size() - tail.size() - begin)});
}

std::string ChatEncoder::reply_text(const int32_t* prompt, size_t np, const int32_t* reply,
                                    size_t nr) const {
  if (nr > 0 && reply[nr - 1] == tok_.eos_id()) nr--;
  std::vector<int32_t> all(prompt, prompt + np);
  all.insert(all.end(), reply, reply + nr);
  const std::string head = tok_.decode(prompt, np), full = tok_.decode(all);
  require(starts_with(full, head), "decoding the reply changed the prompt text; the ids do not ",
          "come from this tokenizer and template");
  std::string r = full.substr(head.size());
  return starts_with(r, cue_ws_) ? r.substr(cue_ws_.size()) : r;
}

Conversation ChatEncoder::decode(const int32_t* tok, const uint8_t* mask, size_t n) const {
  Conversation c;
  size_t i = n > 0 && tok[0] == tok_.bos_id() ? 1 : 0;
  for (bool first = true; i < n; first = false) {
    size_t end = i;
    while (end < n && tok[end] != tok_.eos_id()) end++;
    require(end < n, "the record does not end with EOS; it is not a conversation");
    size_t k = i;
    while (k < end && !mask[k]) k++;
    for (size_t j = k; j <= end; j++)
      require(mask[j], "the loss mask is not one reply per turn; it is not an xwin.sft record");
    parse_prompt(tok_.decode(tok + i, k - i), first, c);
    c.push_back({Role::Assistant, reply_text(tok + i, k - i, tok + k, end - k)});
    i = end + 1;
  }
  return c;
}

Conversation ChatEncoder::decode_prompt(const int32_t* tok, size_t n) const {
  Conversation c;
  size_t i = n > 0 && tok[0] == tok_.bos_id() ? 1 : 0;
  const std::string mid = t_.user_suffix + t_.assistant_prefix;
  for (bool first = true; i < n; first = false) {
    size_t end = i;
    while (end < n && tok[end] != tok_.eos_id()) end++;
    std::string text = tok_.decode(tok + i, end - i);
    if (end == n) {
      parse_prompt(text, first, c);
      break;
    }
    // An earlier, complete turn: without a mask, the first "USER_SUFFIX ASSISTANT_PREFIX"
    // after the system prompt separates question and reply.
    Conversation sys;
    if (first) text = take_system(t_, text, sys);
    const size_t m = text.find(mid);
    require(m != std::string::npos, "a turn of the prompt lacks '", mid,
            "'; the record was not written with the template stored in the dataset");
    c.insert(c.end(), sys.begin(), sys.end());
    parse_prompt(text.substr(0, m + t_.user_suffix.size() + cue_.size()), false, c);
    c.push_back({Role::Assistant, text.substr(m + mid.size())});
    i = end + 1;
  }
  return c;
}

std::string ChatEncoder::decode_reply(const int32_t* prompt, size_t np, const int32_t* reply,
                                      size_t nr) const {
  size_t start = np;  // the prompt's last segment: after its last EOS (or its BOS)
  while (start > 0 && prompt[start - 1] != tok_.eos_id() && prompt[start - 1] != tok_.bos_id())
    start--;
  return reply_text(prompt + start, np - start, reply, nr);
}

}  // namespace xwin
