// The pairwise judge behind an OpenAI-compatible endpoint, the way Xwin-LM annotated
// Xwin-Pair with GPT-4: MT-bench's pair-v2 prompt (any template file), each question asked in
// both orders so that position bias cancels (inconsistent verdicts become ties), verdicts
// parsed from [[A]] / [[B]] / [[C]], unparseable replies asked again and then recorded as
// failures. Requests go through ChatClient (concurrency, retries, journal, cost).
//
// Conversations: a prompt with one user turn fills {question}; with two, the multi-turn
// template ({question_1}, {answer_a_1} = {answer_b_1} = the shared first reply, {question_2},
// {answer_a_2}, {answer_b_2}); with more, the single-turn template gets the earlier turns as a
// "### User: / ### Assistant:" transcript ending with the last question. System turns are not
// shown to the judge.
#pragma once
#include <boost/program_options.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "judge/chat_client.h"
#include "judge/judge.h"
#include "judge/prompts.h"

namespace xwin {

struct HttpJudgeOptions {
  ChatClientOptions client;
  std::string prompts;  // judge_prompts.jsonl
  std::string prompt = "pair-v2", prompt_multi = "pair-v2-multi-turn";
  int orders = 2;  // 1: as given; 2: also swapped
};

// The judge messages for one question; swapped shows b as Assistant A.
nlohmann::json pair_messages(const JudgePrompt& single, const JudgePrompt& multi,
                             const PairQuestion& q, bool swapped);

class HttpJudge : public PairJudge {
 public:
  explicit HttpJudge(const HttpJudgeOptions& o);
  std::vector<PairVerdict> judge(const std::vector<PairQuestion>& questions) override;
  std::string name() const override { return "http:" + o_.client.model; }
  ChatClient& client() { return client_; }

 private:
  HttpJudgeOptions o_;
  JudgePrompts prompts_;
  ChatClient client_;
};

// Command-line options of every phase that calls a judge endpoint (--judge_url, ...).
void add_judge_options(boost::program_options::options_description& d);
// The options back; `journal` is used when --journal is not given.
HttpJudgeOptions judge_options(const boost::program_options::variables_map& vm,
                               const std::string& journal);

}  // namespace xwin
