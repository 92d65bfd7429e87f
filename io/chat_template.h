// The chat template: how a conversation becomes token ids and a loss mask. The strings are data
// (deck section [template]); the default is the Vicuna v1.1 format Xwin-LM uses:
//
//   <s>SYSTEM USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>
//
// Tokenization rule. The text between two EOS tokens (a "turn segment": optional system prompt,
// user prefix, user text, user suffix, assistant prefix, reply) is encoded by SentencePiece as ONE
// string, exactly as `sp.encode(segment)` would (dummy-prefix space included). So the ids equal
// those of the whole template string split at each "</s>", with BOS in front and EOS where each
// "</s>" was — never a piecewise concatenation that could tokenize a boundary differently. The
// loss mask comes from the byte spans of the pieces: a piece belongs to the reply when it covers
// any byte after the stripped assistant prefix ("ASSISTANT:"). SentencePiece attaches a space to
// the word after it, so the prefix's trailing space travels with the first reply piece
// ("▁Sure"); that piece, every later reply piece and the EOS are masked, nothing before it.
// A prompt for sampling therefore ends at "ASSISTANT:" (trailing whitespace stripped), and
// prompt ids + reply ids equal the ids of the whole conversation (tests/unit/test_template.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace xwin {

enum class Role { System, User, Assistant };
const char* role_name(Role r);  // "system", "user", "assistant"

struct Turn {
  Role role;
  std::string text;
  bool operator==(const Turn& o) const { return role == o.role && text == o.text; }
};
// Optional system turn first, then user and assistant turns alternating, starting with user.
using Conversation = std::vector<Turn>;

enum class Ending { Reply, Prompt };  // last turn: assistant's (training) or user's (sampling)
// Empty when the turn order is valid; otherwise what is wrong and how to fix it.
std::string conversation_problem(const Conversation& c, Ending end);

struct ChatTemplate {
  std::string name = "vicuna_v1.1";
  // Used when a conversation has no system turn; a system turn (even an empty one) replaces it.
  std::string system =
      "A chat between a curious user and an artificial intelligence assistant. The assistant "
      "gives helpful, detailed, and polite answers to the user's questions.";
  std::string system_suffix = " ";  // after a non-empty system prompt
  std::string user_prefix = "USER: ";
  std::string user_suffix = " ";
  std::string assistant_prefix = "ASSISTANT: ";

  std::string to_json() const;
  // `where` names the source (a dataset file) in errors.
  static ChatTemplate from_json(const std::string& json, const std::string& where);
  // Throws when the strings cannot delimit turns (e.g. an assistant prefix of only spaces).
  void validate() const;
  // The assistant prefix without trailing whitespace: where prompts end.
  std::string assistant_cue() const;
};

struct EncodedChat {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss_mask;  // for a prompt: its earlier replies (never a training target)
  // 1 from each turn's closing text (user suffix, assistant cue) through its EOS: a turn cut
  // there would have lost its question, so truncation never starts a record inside it.
  std::vector<uint8_t> tail;
  size_t last_reply = 0;  // index of the final reply's first token (tokens.size() for a prompt)
};

// Keeps BOS and drops tokens after it until at most max_len remain. A cut inside a turn's
// user text keeps the rest of that turn; a cut inside its cue or reply moves on to the next
// turn. The final reply and its cue are never cut: false when they do not fit (drop the record).
bool truncate_left(EncodedChat& e, size_t max_len);

class ChatEncoder {
 public:
  ChatEncoder(const Tokenizer& tok, ChatTemplate t);
  const ChatTemplate& chat_template() const { return t_; }
  const Tokenizer& tokenizer() const { return tok_; }

  // A conversation ending with an assistant turn: BOS, segments, EOS after every reply.
  EncodedChat encode(const Conversation& c) const;
  // A conversation ending with a user turn, up to and including the assistant cue.
  EncodedChat encode_prompt(const Conversation& c) const;
  // The ids (+ EOS) of a reply as they follow encode_prompt(prompt).tokens in a full
  // conversation; checks that the reply does not change how the prompt tokenizes.
  std::vector<int32_t> encode_reply(const Conversation& prompt,
                                    const std::vector<int32_t>& prompt_ids,
                                    const std::string& reply) const;

  // Inverse of encode on a stored record (tokens with their loss mask).
  Conversation decode(const int32_t* tokens, const uint8_t* mask, size_t n) const;
  // Inverse of encode_prompt.
  Conversation decode_prompt(const int32_t* tokens, size_t n) const;
  // The reply text of response ids (EOS optional) that follow a stored prompt.
  std::string decode_reply(const int32_t* prompt, size_t np, const int32_t* reply, size_t nr) const;

 private:
  const Tokenizer& tok_;
  ChatTemplate t_;
  std::string cue_, cue_ws_;  // assistant prefix = cue_ + cue_ws_

  EncodedChat encode_turns(const Conversation& c, size_t end) const;
  std::string segment_prompt(const Conversation& c, size_t user_turn) const;
  struct Split {
    size_t tail, reply;  // first piece of the closing text (user suffix + cue), of the reply
  };
  Split encode_segment(const std::string& text, size_t cue_end, std::vector<int32_t>& out) const;
  void parse_prompt(std::string text, bool first, Conversation& out) const;
  std::string reply_text(const int32_t* prompt, size_t np, const int32_t* reply, size_t nr) const;
};

}  // namespace xwin
