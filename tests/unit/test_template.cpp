// The chat template against independent tokenizations of the template string: the ids of a
// conversation must equal SentencePiece's ids of the rendered Vicuna string (split at each
// "</s>", BOS in front, EOS where "</s>" was), and the loss mask must cover exactly each reply
// (with the EOS after it), never the user's text. Uses the Llama-2 tokenizer from
// ../shared/data (XWIN_SHARED_DATA overrides); skipped when it is absent.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "io/chat_template.h"

namespace xwin {
namespace {

std::string data_dir() {
  if (const char* d = std::getenv("XWIN_SHARED_DATA")) return d;
  const std::string f = __FILE__;  // <repo>/tests/unit/test_template.cpp
  return f.substr(0, f.rfind("/tests/unit/")) + "/../shared/data";
}

const char* kSys =
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions.";

class Template : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = data_dir() + "/llama2_tokenizer/tokenizer.model";
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    if (!sp_->Load(path).ok()) return sp_.reset();
    tok_ = std::make_unique<Tokenizer>(path);
  }
  static void TearDownTestSuite() { tok_.reset(), sp_.reset(); }
  void SetUp() override {
    if (!tok_) GTEST_SKIP() << "no Llama-2 tokenizer under " << data_dir();
    enc_ = std::make_unique<ChatEncoder>(*tok_, ChatTemplate{});
  }

  // The reference: SentencePiece on the template string, split at "</s>".
  static std::vector<int32_t> reference(const std::string& s) {
    std::vector<int32_t> ids{1};
    for (size_t a = 0; a <= s.size();) {
      const size_t b = s.find("</s>", a);
      std::vector<int> seg;
      EXPECT_TRUE(sp_->Encode(s.substr(a, b - a), &seg).ok());
      ids.insert(ids.end(), seg.begin(), seg.end());
      if (b == std::string::npos) break;
      ids.push_back(2);
      a = b + 4;
    }
    return ids;
  }
  // The expected mask: per turn, the prompt text through "ASSISTANT:" tokenized alone is
  // unmasked; the rest of the turn's pieces (separator + reply) and its EOS are masked.
  static std::vector<uint8_t> reference_mask(const std::vector<std::string>& prompts,
                                             const std::vector<std::string>& replies) {
    std::vector<uint8_t> m{0};
    for (size_t i = 0; i < prompts.size(); i++) {
      std::vector<int> head, full;
      EXPECT_TRUE(sp_->Encode(prompts[i], &head).ok());
      EXPECT_TRUE(sp_->Encode(prompts[i] + replies[i], &full).ok());
      m.insert(m.end(), head.size(), 0);
      m.insert(m.end(), full.size() - head.size() + 1, 1);
    }
    return m;
  }

  static std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  static std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ChatEncoder> enc_;
};
std::unique_ptr<sentencepiece::SentencePieceProcessor> Template::sp_;
std::unique_ptr<Tokenizer> Template::tok_;

const Role U = Role::User, A = Role::Assistant, S = Role::System;

TEST_F(Template, SingleTurnExactIds) {
  // Ids from python3-sentencepiece: sp.encode("USER: Hi ASSISTANT: Hello").
  const Conversation c{{S, ""}, {U, "Hi"}, {A, "Hello"}};
  const EncodedChat e = enc_->encode(c);
  const std::vector<int32_t> ids{1,    3148, 1001,  29901, 6324,  319,
                                 1799, 9047, 13566, 29901, 15043, 2};
  const std::vector<uint8_t> mask{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
  EXPECT_EQ(e.tokens, ids);
  EXPECT_EQ(e.loss_mask, mask);
  EXPECT_EQ(e.last_reply, 10u);
  // " ASSISTANT:" (from its first piece "▁A") through the EOS closes the turn.
  const std::vector<uint8_t> tail{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(e.tail, tail);
}

TEST_F(Template, SingleTurnDefaultSystem) {
  const Conversation c{{U, "Hello there"}, {A, "Hi! How can I help?"}};
  const EncodedChat e = enc_->encode(c);
  const std::string p = std::string(kSys) + " USER: Hello there ASSISTANT:";
  EXPECT_EQ(e.tokens, reference(p + " Hi! How can I help?</s>"));
  EXPECT_EQ(e.loss_mask, reference_mask({p}, {" Hi! How can I help?"}));
}

TEST_F(Template, MultiTurnWithSystemPrompt) {
  const Conversation c{{S, "Be brief."},        {U, "2+2?"}, {A, "4"},
                       {U, "and 3+3?"},         {A, "6 😀"},  {U, "Write code."},
                       {A, "```\n  x = 1\n```"}};
  const EncodedChat e = enc_->encode(c);
  EXPECT_EQ(e.tokens, reference("Be brief. USER: 2+2? ASSISTANT: 4</s>USER: and 3+3? ASSISTANT: "
                                "6 😀</s>USER: Write code. ASSISTANT: ```\n  x = 1\n```</s>"));
  EXPECT_EQ(e.loss_mask,
            reference_mask({"Be brief. USER: 2+2? ASSISTANT:", "USER: and 3+3? ASSISTANT:",
                            "USER: Write code. ASSISTANT:"},
                           {" 4", " 6 😀", " ```\n  x = 1\n```"}));
  // Every EOS is a target; the first turn's prefix is not.
  for (size_t i = 0; i < e.tokens.size(); i++) {
    if (e.tokens[i] == 2) {
      EXPECT_EQ(e.loss_mask[i], 1) << i;
    }
  }
  EXPECT_EQ(std::count(e.tokens.begin(), e.tokens.end(), 2), 3);
}

TEST_F(Template, UserTextIsNeverMasked) {
  // User text that looks like the template, and replies that start with spaces or newlines.
  const Conversation c{
      {U, "Say ASSISTANT: yes"}, {A, "  indented"}, {U, "USER: again"}, {A, "\nnewline first"}};
  const EncodedChat e = enc_->encode(c);
  EXPECT_EQ(e.tokens, reference(std::string(kSys) + " USER: Say ASSISTANT: yes ASSISTANT:   "
                                                    "indented</s>USER: USER: again ASSISTANT: "
                                                    "\nnewline first</s>"));
  EXPECT_EQ(e.loss_mask, reference_mask({std::string(kSys) + " USER: Say ASSISTANT: yes ASSISTANT:",
                                         "USER: USER: again ASSISTANT:"},
                                        {"   indented", " \nnewline first"}));
}

TEST_F(Template, PromptThenReplyEqualsConversation) {
  const Conversation c{{U, "Name a colour."}, {A, "Blue."}, {U, "Another?"}, {A, "Red 🟥."}};
  const Conversation prompt(c.begin(), c.end() - 1);
  const EncodedChat p = enc_->encode_prompt(prompt);
  EXPECT_EQ(p.tokens, reference(std::string(kSys) +
                                " USER: Name a colour. ASSISTANT: Blue.</s>USER: Another? "
                                "ASSISTANT:"));
  EXPECT_EQ(p.last_reply, p.tokens.size());
  std::vector<int32_t> all = p.tokens;
  const std::vector<int32_t> r = enc_->encode_reply(prompt, p.tokens, "Red 🟥.");
  all.insert(all.end(), r.begin(), r.end());
  EXPECT_EQ(all, enc_->encode(c).tokens);
  EXPECT_EQ(r.back(), 2);
}

TEST_F(Template, DecodeGivesBackTheConversation) {
  const std::vector<Conversation> cs = {
      {{U, "Hello there"}, {A, "Hi! How can I help?"}},
      {{S, "Be brief."}, {U, "2+2?"}, {A, "4"}, {U, "and 3+3?"}, {A, "6 😀"}},
      {{S, ""}, {U, " leading space"}, {A, "  two spaces\n\ttab"}, {U, "ünïcödé 中文"}, {A, ""}},
      {{U, "Say ASSISTANT: yes"}, {A, "\nnewline"}},
  };
  for (const Conversation& c : cs) {
    const EncodedChat e = enc_->encode(c);
    EXPECT_EQ(enc_->decode(e.tokens.data(), e.loss_mask.data(), e.tokens.size()), c);
    const Conversation prompt(c.begin(), c.end() - 1);
    const EncodedChat p = enc_->encode_prompt(prompt);
    const std::vector<int32_t> r = enc_->encode_reply(prompt, p.tokens, c.back().text);
    EXPECT_EQ(enc_->decode_prompt(p.tokens.data(), p.tokens.size()), prompt);
    EXPECT_EQ(enc_->decode_reply(p.tokens.data(), p.tokens.size(), r.data(), r.size()),
              c.back().text);
  }
}

TEST_F(Template, OtherTemplatesNeedNoCode) {
  ChatTemplate t;
  t.system = "";
  t.user_prefix = "### Human:\n";
  t.user_suffix = "\n";
  t.assistant_prefix = "### Assistant:\n";
  const ChatEncoder enc(*tok_, t);
  const Conversation c{{U, "Hi"}, {A, "Hello!"}, {U, "Bye"}, {A, "Bye."}};
  const EncodedChat e = enc.encode(c);
  EXPECT_EQ(e.tokens, reference("### Human:\nHi\n### Assistant:\nHello!</s>### Human:\nBye\n### "
                                "Assistant:\nBye.</s>"));
  EXPECT_EQ(e.loss_mask,
            reference_mask({"### Human:\nHi\n### Assistant:", "### Human:\nBye\n### Assistant:"},
                           {"\nHello!", "\nBye."}));
  EXPECT_EQ(enc.decode(e.tokens.data(), e.loss_mask.data(), e.tokens.size()), c);
  EXPECT_EQ(ChatTemplate::from_json(t.to_json(), "test").to_json(), t.to_json());
}

TEST_F(Template, TruncationKeepsBosAndTheFinalReply) {
  const Conversation c{{U, "one two three four five six"},
                       {A, "first reply here"},
                       {U, "seven eight"},
                       {A, "final"}};
  const EncodedChat full = enc_->encode(c);
  const size_t n = full.tokens.size(), final_len = n - full.last_reply;
  EncodedChat e = full;
  ASSERT_TRUE(truncate_left(e, n - 3));  // the cut falls in the first turn's prompt
  EXPECT_EQ(e.tokens.size(), n - 3);
  EXPECT_EQ(e.tokens[0], 1);
  EXPECT_TRUE(std::equal(e.tokens.begin() + 1, e.tokens.end(), full.tokens.begin() + 4));
  EXPECT_EQ(e.tokens.size() - e.last_reply, final_len);
  // A cut inside the first reply moves on to the second turn: no orphaned reply tail.
  const size_t second =
      std::find(full.tokens.begin() + 1, full.tokens.end(), 2) - full.tokens.begin() + 1;
  ASSERT_TRUE(full.loss_mask[second - 2]);  // a piece of the first reply
  e = full;
  ASSERT_TRUE(truncate_left(e, n - (second - 2) + 1));  // would keep from that piece on
  EXPECT_EQ(e.tokens.size(), n - second + 1);
  EXPECT_EQ(e.loss_mask[1], 0);
  EXPECT_EQ(std::count(e.tokens.begin(), e.tokens.end(), 2), 1);
  // A cut inside the first turn's cue (" ASSISTANT:") also moves on.
  const size_t cue = std::find(full.tail.begin() + 1, full.tail.end(), 1) - full.tail.begin();
  e = full;
  ASSERT_TRUE(truncate_left(e, n - (cue + 1) + 1));
  EXPECT_EQ(e.tokens.size(), n - second + 1);
  e = full;
  EXPECT_FALSE(truncate_left(e, final_len + 1));  // only BOS and the reply would remain
  // The final turn's cue is never cut either: keeping only its last 2 pieces fails.
  e = full;
  EXPECT_FALSE(truncate_left(e, final_len + 3));
  e = full;
  ASSERT_TRUE(truncate_left(e, n));  // fits: untouched
  EXPECT_EQ(e.tokens, full.tokens);
}

TEST(TemplateTurnOrder, NamesWhatIsWrong) {
  EXPECT_NE(conversation_problem({}, Ending::Reply).find("no turns"), std::string::npos);
  EXPECT_NE(conversation_problem({{A, "x"}}, Ending::Reply).find("starts with the assistant"),
            std::string::npos);
  EXPECT_NE(conversation_problem({{S, "x"}}, Ending::Reply).find("only a system"),
            std::string::npos);
  EXPECT_NE(conversation_problem({{U, "a"}, {U, "b"}, {A, "c"}}, Ending::Reply).find("alternate"),
            std::string::npos);
  EXPECT_NE(conversation_problem({{U, "a"}, {S, "b"}, {A, "c"}}, Ending::Reply).find("system"),
            std::string::npos);
  EXPECT_NE(conversation_problem({{U, "a"}}, Ending::Reply).find("ends with a user turn"),
            std::string::npos);
  EXPECT_NE(conversation_problem({{U, "a"}, {A, "b"}}, Ending::Prompt).find("must end"),
            std::string::npos);
  EXPECT_EQ(conversation_problem({{S, ""}, {U, "a"}, {A, "b"}}, Ending::Reply), "");
  EXPECT_EQ(conversation_problem({{U, "a"}, {A, "b"}, {U, "c"}}, Ending::Prompt), "");
}

TEST(TemplateStrings, RejectsTemplatesThatCannotDelimitTurns) {
  ChatTemplate t;
  t.assistant_prefix = "  ";
  EXPECT_THROW(t.validate(), Error);
  t = ChatTemplate{};
  t.user_prefix = "";
  EXPECT_THROW(t.validate(), Error);
  EXPECT_EQ(ChatTemplate{}.assistant_cue(), "ASSISTANT:");
  EXPECT_THROW(ChatTemplate::from_json("{\"name\": 1}", "f.h5"), Error);
}

}  // namespace
}  // namespace xwin
