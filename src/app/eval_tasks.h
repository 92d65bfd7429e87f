// xwin eval --suite tasks: a policy's held-out accuracy on the verifiable tasks of the embedded
// demo (src/tasks). Greedy replies, graded by the exact checker; per family and overall.
// phase_eval.cpp owns the command and its common options (--ckpt, --out, --max_new_tokens,
// --batch); these add and run the tasks suite. score_tasks is the library form the pipeline uses.
#pragma once
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

// Tasks from a JSONL file written by `xwin data tasks` (one tasks::to_json record a line).
std::vector<tasks::Task> read_tasks(const std::string& path);
void write_tasks(const std::string& path, const std::vector<tasks::Task>& tasks);

}  // namespace xwin::cli
