// JSON record formats (conversations, pairs, AlpacaEval annotations, prompts, Xwin-Set) and the
// UTF-8 check: what each accepts and the message for what it refuses.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/jsonl.h"
#include "io/records.h"

namespace xwin {
namespace {

using nlohmann::json;
const Role U = Role::User, A = Role::Assistant, S = Role::System;

// The message of the Error that f throws, or "" when it does not throw.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Records, ShareGptAndOpenAiFormsAgree) {
  const json share = json::parse(R"({"conversations": [{"from": "system", "value": "s"},
      {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]})");
  const json openai = json::parse(R"({"messages": [{"role": "system", "content": "s"},
      {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})");
  const Conversation want{{S, "s"}, {U, "q"}, {A, "a"}};
  EXPECT_EQ(conversation_from_json(share), want);
  EXPECT_EQ(conversation_from_json(openai), want);
  EXPECT_EQ(conversation_from_json(conversation_to_json(want, TurnFormat::ShareGPT)), want);
  EXPECT_EQ(conversation_from_json(conversation_to_json(want, TurnFormat::OpenAI)), want);
}

TEST(Records, BadConversationsSayWhy) {
  EXPECT_NE(error_of([] {
              conversation_from_json(
                  json::parse(R"({"conversations": [{"from": "bot", "value": "x"}]})"));
            }).find("unknown role 'bot'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              conversation_from_json(json::parse(R"({"text": "x"})"));
            }).find("no \"conversations\""),
            std::string::npos);
  EXPECT_NE(
      error_of([] {
        conversation_from_json(json::parse(R"({"messages": [{"role": "user", "content": 3}]})"));
      }).find("must be a string"),
      std::string::npos);
  EXPECT_NE(error_of([] { prompt_from_json(json::parse(R"({"messages": []})")); }).find("no turns"),
            std::string::npos);
}

TEST(Records, PairForms) {
  const PairRecord a = pair_from_json(
      json::parse(R"({"prompt": "q", "chosen": "good", "rejected": "bad", "margin": 2})"),
      Ties::Drop);
  EXPECT_EQ(a.prompt, (Conversation{{U, "q"}}));
  EXPECT_EQ(a.chosen, "good");
  EXPECT_EQ(a.rejected, "bad");
  EXPECT_TRUE(a.has_margin);
  EXPECT_EQ(a.margin, 2.f);
  // Multi-turn prompt, replies as one-turn lists.
  const PairRecord b =
      pair_from_json(json::parse(R"({"messages": [{"role": "user", "content": "q1"},
      {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}],
      "chosen": [{"role": "assistant", "content": "c"}], "rejected": "r"})"),
                     Ties::Drop);
  EXPECT_EQ(b.prompt.size(), 3u);
  EXPECT_EQ(b.chosen, "c");
  // Whole conversations with a shared prompt.
  const PairRecord c = pair_from_json(json::parse(R"({
      "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "c"}],
      "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]})"),
                                      Ties::Drop);
  EXPECT_EQ(c.prompt, (Conversation{{U, "q"}}));
  EXPECT_EQ(c.rejected, "r");
  EXPECT_NE(error_of([] {
              pair_from_json(json::parse(R"({
      "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "c"}],
      "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "r"}]})"),
                             Ties::Drop);
            }).find("share every turn"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              pair_from_json(json::parse(R"({"prompt": "q", "chosen": "c"})"), Ties::Drop);
            }).find("needs \"chosen\" and \"rejected\""),
            std::string::npos);
}

TEST(Records, AlpacaEvalPreferences) {
  auto rec = [](json pref) {
    json j{{"instruction", "i"}, {"output_1", "one"}, {"output_2", "two"}};
    j["preference"] = pref;
    return j;
  };
  const PairRecord p1 = pair_from_json(rec(1), Ties::Drop);
  EXPECT_EQ(p1.chosen, "one");
  EXPECT_EQ(p1.rejected, "two");
  const PairRecord p2 = pair_from_json(rec(2.0), Ties::Drop);
  EXPECT_EQ(p2.chosen, "two");
  EXPECT_EQ(p2.prompt, (Conversation{{U, "i"}}));
  EXPECT_TRUE(pair_from_json(rec(0), Ties::Drop).skip);
  const PairRecord tie = pair_from_json(rec(1.5), Ties::Keep);
  EXPECT_TRUE(tie.tie && !tie.skip);
  EXPECT_EQ(tie.chosen, "one");
  EXPECT_TRUE(pair_from_json(rec(json()), Ties::Keep).skip);
  EXPECT_NE(error_of([&] { pair_from_json(rec(3), Ties::Drop); }).find("preference\" is 3"),
            std::string::npos);
}

TEST(Records, PromptsAndXwinSet) {
  EXPECT_EQ(prompt_from_json(json::parse(R"({"instruction": "do", "input": "this"})")),
            (Conversation{{U, "do\n\nthis"}}));
  EXPECT_NE(error_of([] {
              prompt_from_json(json::parse(R"({"conversations": [{"from": "human", "value": "q"},
                  {"from": "gpt", "value": "a"}]})"));
            }).find("must end with a user turn"),
            std::string::npos);
  const XwinSetRecord x = xwin_set_from_json(json::parse(
      R"({"prompt": "q", "responses": ["a", "b", "c"], "scores": [1, 0.5, -2], "ref_logp": [-1, -2, -3]})"));
  EXPECT_EQ(x.responses.size(), 3u);
  EXPECT_EQ(x.scores[2], -2.f);
  EXPECT_EQ(x.ref_logp[1], -2.f);
  const XwinSetRecord y = xwin_set_from_json(json::parse(
      R"({"prompt": "q", "responses": [{"text": "a", "score": 3}, {"text": "b", "score": 4}]})"));
  EXPECT_EQ(y.scores, (std::vector<float>{3, 4}));
  EXPECT_TRUE(y.ref_logp.empty());
  EXPECT_NE(
      error_of([] {
        xwin_set_from_json(json::parse(R"({"prompt": "q", "responses": ["a"], "scores": [1, 2]})"));
      }).find("array of 1 numbers"),
      std::string::npos);
}

TEST(RecordsUtf8, FindsTheFirstBadByte) {
  EXPECT_EQ(invalid_utf8("plain ascii"), std::string::npos);
  EXPECT_EQ(invalid_utf8("ünïcödé 中文 😀"), std::string::npos);
  EXPECT_EQ(invalid_utf8("ab\xff"), 2u);            // never valid
  EXPECT_EQ(invalid_utf8("a\xc3"), 1u);             // truncated sequence
  EXPECT_EQ(invalid_utf8("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(invalid_utf8("x\xed\xa0\x80"), 1u);     // UTF-16 surrogate
  EXPECT_EQ(invalid_utf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(invalid_utf8("caf\xe9"), 3u);           // Latin-1 'é'
}

}  // namespace
}  // namespace xwin
