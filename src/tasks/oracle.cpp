// The oracle annotator: preferences from the exact checker.
//
// prefer() is lexicographic with tolerances: correctness, then credit (when the credits differ
// by more than kCreditTie), then style (by more than kStyleTie). oracle_score() = 2 * correct +
// credit + kStyleWeight * style agrees with it in sign whenever prefer() decides by correctness
// or by credit (a correct reply scores at least 3, a wrong one below 1 + kStyleWeight; a credit
// gap over kCreditTie outweighs any style gap because kStyleWeight < kCreditTie), and exactly
// when both replies are correct (prefer() == A iff score(a) - score(b) > kStyleWeight *
// kStyleTie). Only between two wrong replies whose credits lie within kCreditTie can the score
// order differ from prefer()'s style-based verdict; no scalar can match tolerance ties exactly.
#include "tasks/oracle.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace xwin::tasks {

namespace {

constexpr double kCreditTie = 0.05, kStyleTie = 0.05, kStyleWeight = 0.04;

Winner prefer_grades(const Grade& a, const Grade& b) {
  if (a.correct != b.correct) return a.correct ? Winner::A : Winner::B;
  if (std::abs(a.credit - b.credit) > kCreditTie)
    return a.credit > b.credit ? Winner::A : Winner::B;
  if (std::abs(a.style - b.style) > kStyleTie) return a.style > b.style ? Winner::A : Winner::B;
  return Winner::Tie;
}

std::string describe(const Grade& g) {
  std::ostringstream os;
  os.precision(2);
  os << (g.correct ? "correct" : "wrong") << " credit=" << g.credit << " style=" << g.style;
  return os.str();
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Roles and texts of the user and assistant turns. System turns are left out: the task is the
// same whichever system prompt frames it, and decoding a stored prompt may restore the default.
std::string prompt_key(const Conversation& c) {
  std::string key;
  for (const Turn& t : c) {
    if (t.role == Role::System) continue;
    key += role_name(t.role);
    key += '\x1f' + trim(t.text) + '\x1e';
  }
  return key;
}

}  // namespace

Winner prefer(const Task& t, std::string_view a, std::string_view b) {
  return prefer_grades(grade(t, a), grade(t, b));
}

double oracle_score(const Grade& g) {
  return 2.0 * (g.correct ? 1.0 : 0.0) + g.credit + kStyleWeight * g.style;
}

Oracle::Oracle(std::vector<Task> tasks) : tasks_(std::move(tasks)) {
  for (size_t i = 0; i < tasks_.size(); i++) index_.emplace(prompt_key(tasks_[i].prompt), i);
}

const Task& Oracle::task_for(const Conversation& prompt) const {
  const auto it = index_.find(prompt_key(prompt));
  if (it == index_.end()) {
    const std::string last = prompt.empty() ? "" : prompt.back().text;
    fail("the oracle knows no task with the prompt \"", last, "\" (", prompt.size(),
         " turns); it judges only the ", tasks_.size(),
         " generated tasks it was given: annotate prompts made by the same task deck");
  }
  return tasks_[it->second];
}

std::vector<PairVerdict> Oracle::judge(const std::vector<PairQuestion>& questions) {
  std::vector<PairVerdict> verdicts;
  verdicts.reserve(questions.size());
  for (const PairQuestion& q : questions) {
    const Task& t = task_for(q.prompt);
    const Grade a = grade(t, q.a), b = grade(t, q.b);
    verdicts.push_back({prefer_grades(a, b), "A: " + describe(a) + "; B: " + describe(b)});
  }
  return verdicts;
}

}  // namespace xwin::tasks
