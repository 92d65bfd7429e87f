// Phases whose endpoint calls run on rank 0 alone (xwin annotate, xwin eval with an HTTP judge)
// while the other ranks wait: rank 0 tells them how it ended. 0 returns on every rank; a
// preemption (core/signals.h) makes every rank throw Preempted, so all exit with 75. Any other
// error on rank 0 aborts the job from main(), as before.
#pragma once
#include <mpi.h>

#include "core/log.h"
#include "core/signals.h"
#include "judge/chat_client.h"

namespace xwin::cli {

// Rank 0, when its work has ended: 0, or kExitPreempted (then rethrow the Preempted).
inline void share_outcome(int code) {
  MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
}

// The other ranks, instead of a barrier: the outcome rank 0 shares.
inline int rank0_outcome() {
  int code = 0;
  MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (code == kExitPreempted) throw Preempted{0};
  return code;
}

// Rank 0, when its judge client stopped for a preemption (the requests in flight finished into
// the journal): says so, tells the other ranks, and ends the phase; every rank exits with 75 and
// a rerun replays the journal. `phase` prefixes the log line.
[[noreturn]] inline void judge_preempted(const char* phase, const ChatClient& client) {
  log0("%s: preempted: %s; exiting with code %d so the job can requeue and resume", phase,
       client.summary().c_str(), kExitPreempted);
  share_outcome(kExitPreempted);
  throw Preempted{0};
}

}  // namespace xwin::cli
