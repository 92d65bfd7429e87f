// The pairwise judge interface: given a conversation (ending with a user turn) and two candidate
// replies, which is better? Two implementations stand behind it: the HTTP judge (an
// OpenAI-compatible chat-completions endpoint such as GPT-4 or a local vLLM server, the way
// Xwin-LM annotated Xwin-Pair) and the oracle of the embedded demo (src/tasks/oracle.h), which
// answers from an exact checker. Callers (xwin annotate, xwin pipeline) see only this.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/chat_template.h"

namespace xwin {

struct PairQuestion {
  Conversation prompt;  // ends with the user turn both replies answer
  std::string a, b;     // the two candidate replies (assistant text)
};

enum class Winner { A, B, Tie, Failed };  // Failed: no usable verdict (recorded, never a tie)
const char* winner_name(Winner w);        // "A", "B", "tie", "failed"

struct PairVerdict {
  Winner winner = Winner::Failed;
  std::string explanation;  // the judge's reasoning or the oracle's grades (for the journal)
};

class PairJudge {
 public:
  virtual ~PairJudge() = default;
  // One verdict per question, in order. Implementations may judge questions concurrently.
  virtual std::vector<PairVerdict> judge(const std::vector<PairQuestion>& questions) = 0;
  // A short name for logs and dataset attributes ("oracle", "http:gpt-4-0613").
  virtual std::string name() const = 0;
};

// K responses to one prompt judged two by two: the questions of round_robin(k) compare
// responses (i, j), i < j, in that order. best_vs_beaten takes their verdicts and returns the
// preference pairs (chosen, rejected): the response that won the most comparisons (the lowest
// index among equals) against each response it beat. Ties and failures make no pair, so k = 2
// gives the single judged pair or none. best_won returns the same pairs as the indices of the
// questions they come from (the best response won those), for callers that keep questions.
std::vector<std::pair<int, int>> round_robin(int k);
std::vector<std::pair<int, int>> best_vs_beaten(int k, const std::vector<Winner>& verdicts);
std::vector<size_t> best_won(int k, const std::vector<Winner>& verdicts);

}  // namespace xwin
