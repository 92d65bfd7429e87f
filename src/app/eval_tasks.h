// xwin eval --suite tasks: a policy's held-out accuracy on the verifiable tasks of the embedded
// demo (src/tasks). Greedy replies, graded by the exact checker; per family and overall.
// phase_eval.cpp owns the command and its common options (--ckpt, --out, --max_new_tokens,
// --batch); these add and run the tasks suite. score_tasks is the library form the pipeline uses.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli.h"
#include "io/chat_template.h"
#include "model/llama.h"
#include "tasks/tasks.h"

namespace xwin::cli {

void add_eval_tasks_options(po::options_description& d);
int eval_tasks(const po::variables_map& vm);

struct TaskResult {
  bool correct = false;
  double credit = 0.0;
};

// Greedy replies of `policy` to every task, graded. Tasks are shared out over the data-parallel
// ranks; every rank returns all results. `replies` (optional) receives this rank's reply texts
// (empty strings for tasks another rank answered).
std::vector<TaskResult> score_tasks(Llama& policy, const ChatEncoder& enc,
                                    const std::vector<tasks::Task>& tasks, int max_new_tokens,
                                    int batch, std::vector<std::string>* replies = nullptr);

// {"n", "accuracy", "credit", "by_family": {family: {"n", "accuracy"}}}
nlohmann::json summarize(const std::vector<tasks::Task>& tasks,
                         const std::vector<TaskResult>& results);

// Two models' outcomes on the same tasks, compared task by task: the mean of a_i - b_i (a share
// of the tasks) and its 95% confidence interval, mean +- 1.96 standard errors from the sample
// standard deviation of the differences (normal approximation; n < 2: no width).
struct PairedDifference {
  int64_t n = 0;
  double diff = 0, lo = 0, hi = 0;
};
PairedDifference paired_difference(const std::vector<bool>& a, const std::vector<bool>& b);

// Tasks from a JSONL file written by `xwin data tasks` (one tasks::to_json record a line).
std::vector<tasks::Task> read_tasks(const std::string& path);
void write_tasks(const std::string& path, const std::vector<tasks::Task>& tasks);

}  // namespace xwin::cli
