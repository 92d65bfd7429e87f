// Slurm preemption: SIGUSR1 (#SBATCH --signal=USR1@120) or SIGTERM (scancel, requeue) only set
// a flag; the trainer checks it after each step, agrees on it across ranks, saves a checkpoint
// and exits with kExitPreempted so the job script can requeue itself.
#pragma once

namespace xwin {

constexpr int kExitPreempted = 75;  // EX_TEMPFAIL: "try again later"

void install_preemption_handlers();
bool preemption_requested();

// Thrown after the preemption checkpoint is written; main() turns it into kExitPreempted.
struct Preempted {
  long long step;
};

}  // namespace xwin
