// The oracle annotator: the embedded demo's stand-in for GPT-4. It answers the judge interface
// (judge/judge.h) from the exact checker, the way a careful annotator would: a correct reply
// beats a wrong one; between two wrong replies more partial credit wins (e.g. the nearer number);
// then better format and concision; otherwise a tie.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "judge/judge.h"
#include "tasks/tasks.h"

namespace xwin::tasks {

// Preference between two replies to one task.
Winner prefer(const Task& t, std::string_view a, std::string_view b);

// A scalar consistent with prefer(): prefer(t, a, b) == A iff score(a) > score(b) by more than
// the tie tolerance. Used for K-wise ranking and best-of-N evaluation.
double oracle_score(const Grade& g);

class Oracle : public PairJudge {
 public:
  explicit Oracle(std::vector<Task> tasks);  // the tasks whose prompts it will be asked about
  std::vector<PairVerdict> judge(const std::vector<PairQuestion>& questions) override;
  std::string name() const override { return "oracle"; }
  // The task asked in a prompt; throws xwin::Error when the prompt is not one of the tasks.
  const Task& task_for(const Conversation& prompt) const;

 private:
  std::vector<Task> tasks_;
  std::unordered_map<std::string, size_t> index_;  // prompt key -> task
};

}  // namespace xwin::tasks
