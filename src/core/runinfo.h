// Where a run executes: the Slurm job, array task and nodes (from the SLURM_* environment that
// sbatch/srun set), the host and the start time. Phases record it in their run metadata so a
// result can be traced back to the job and its log (slurm/*.sbatch name logs %x-%j / %x-%A_%a).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace xwin {

// {"host", "started" (UTC, ISO 8601), "slurm": {"job_id", "array_job_id", "array_task_id",
// "nodelist", "restart_count", "ntasks", "job_name"} or null outside Slurm}. Absent
// variables are left out of "slurm".
nlohmann::json run_info();

// For log and metadata file names: "" outside Slurm, "-<job>" in a job, "-<array job>_<task>"
// in an array task (the %j and %A_%a of sbatch's --output), plus ".r<n>" after n requeues.
std::string run_suffix();

}  // namespace xwin
