#include "judge/judge.h"

#include "core/error.h"

namespace xwin {

const char* winner_name(Winner w) {
  switch (w) {
    case Winner::A:
      return "A";
    case Winner::B:
      return "B";
    case Winner::Tie:
      return "tie";
    case Winner::Failed:
      break;
  }
  return "failed";
}

std::vector<std::pair<int, int>> round_robin(int k) {
  std::vector<std::pair<int, int>> q;
  for (int i = 0; i < k; i++)
    for (int j = i + 1; j < k; j++) q.push_back({i, j});
  return q;
}

std::vector<size_t> best_won(int k, const std::vector<Winner>& verdicts) {
  const std::vector<std::pair<int, int>> q = round_robin(k);
  if (verdicts.size() != q.size())
    throw Error("best_won: " + std::to_string(verdicts.size()) + " verdicts for " +
                std::to_string(k) + " responses (want " + std::to_string(q.size()) + ")");
  std::vector<int> wins(k, 0);
  for (size_t i = 0; i < q.size(); i++) {
    if (verdicts[i] == Winner::A) wins[q[i].first]++;
    if (verdicts[i] == Winner::B) wins[q[i].second]++;
  }
  int best = 0;
  for (int i = 1; i < k; i++)
    if (wins[i] > wins[best]) best = i;
  std::vector<size_t> won;
  for (size_t i = 0; i < q.size(); i++)
    if ((q[i].first == best && verdicts[i] == Winner::A) ||
        (q[i].second == best && verdicts[i] == Winner::B))
      won.push_back(i);
  return won;
}

std::vector<std::pair<int, int>> best_vs_beaten(int k, const std::vector<Winner>& verdicts) {
  const std::vector<std::pair<int, int>> q = round_robin(k);
  std::vector<std::pair<int, int>> pairs;
  for (const size_t i : best_won(k, verdicts)) {
    const auto [a, b] = q[i];
    pairs.push_back(verdicts[i] == Winner::A ? std::pair{a, b} : std::pair{b, a});
  }
  return pairs;
}

}  // namespace xwin
