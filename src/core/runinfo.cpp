#include "core/runinfo.h"

#include <unistd.h>

#include <cstdlib>
#include <ctime>

namespace xwin {

static const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

nlohmann::json run_info() {
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  char started[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  nlohmann::json info = {{"host", host}, {"started", started}, {"slurm", nullptr}};
  if (!env("SLURM_JOB_ID")) return info;
  nlohmann::json slurm = nlohmann::json::object();
  const std::pair<const char*, const char*> keys[] = {{"job_id", "SLURM_JOB_ID"},
                                                      {"array_job_id", "SLURM_ARRAY_JOB_ID"},
                                                      {"array_task_id", "SLURM_ARRAY_TASK_ID"},
                                                      {"nodelist", "SLURM_JOB_NODELIST"},
                                                      {"restart_count", "SLURM_RESTART_COUNT"},
                                                      {"ntasks", "SLURM_NTASKS"},
                                                      {"job_name", "SLURM_JOB_NAME"}};
  for (const auto& [key, var] : keys)
    if (const char* v = env(var)) slurm[key] = v;
  info["slurm"] = slurm;
  return info;
}

std::string run_suffix() {
  const char* job = env("SLURM_JOB_ID");
  if (!job) return "";
  const char* array_job = env("SLURM_ARRAY_JOB_ID");
  const char* task = env("SLURM_ARRAY_TASK_ID");
  std::string s =
      array_job && task ? std::string("-") + array_job + "_" + task : std::string("-") + job;
  const char* restarts = env("SLURM_RESTART_COUNT");
  if (restarts && std::string(restarts) != "0") s += std::string(".r") + restarts;
  return s;
}

}  // namespace xwin
