// OpenMP threads against the CPUs they can run on. GNU OpenMP threads spin while they wait for
// each other (OMP_WAIT_POLICY unset): with more threads than CPUs, or other ranks and jobs on the
// same CPUs, a thread spins on the CPU that the thread it waits for needs, and every step slows
// many times over (a small SFT on a 2-core machine running two other jobs: 34 s with 2 threads,
// 2.3 s with OMP_WAIT_POLICY=passive, 1.2 s with 1 thread). xwin cannot change the policy after
// libgomp has started, so it warns once at start-up and says what to set.
#pragma once
#include <mpi.h>

#include <string>

namespace xwin {

struct ThreadLayout {
  int threads = 1;          // omp_get_max_threads() of this rank
  int cpus_allowed = 1;     // CPUs in this rank's affinity mask (mpirun/srun binding, taskset)
  int ranks_on_node = 1;    // ranks of the job on this rank's node
  int cpus_on_node = 1;     // online CPUs of the node
  std::string wait_policy;  // $OMP_WAIT_POLICY ("" when unset)
};

// The warning for this layout, or "" when it is fine: one thread, a passive wait policy, or
// threads that fit both the rank's CPUs and, with the node's other ranks, the node's CPUs.
std::string oversubscription_warning(const ThreadLayout& t);

// This rank's layout (collective over comm: counts the ranks that share the node).
ThreadLayout thread_layout(MPI_Comm comm);

// Collective: the lowest rank whose layout oversubscribes its CPUs prints the warning (once for
// the job) to stderr. Nothing else changes; the run goes on.
void warn_if_oversubscribed(MPI_Comm comm);

}  // namespace xwin
