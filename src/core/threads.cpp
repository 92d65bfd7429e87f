#include "core/threads.h"

#include <omp.h>
#include <sched.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/log.h"

namespace xwin {

std::string oversubscription_warning(const ThreadLayout& t) {
  if (t.threads <= 1 || strcasecmp(t.wait_policy.c_str(), "passive") == 0) return "";
  const int fit =
      std::max(1, std::min(t.cpus_allowed, t.cpus_on_node / std::max(1, t.ranks_on_node)));
  char what[256];
  if (t.threads > t.cpus_allowed)
    std::snprintf(what, sizeof what,
                  "%d OpenMP threads per rank, but this rank may run on %d CPU%s", t.threads,
                  t.cpus_allowed, t.cpus_allowed == 1 ? "" : "s");
  else if (static_cast<long>(t.threads) * t.ranks_on_node > t.cpus_on_node)
    std::snprintf(what, sizeof what, "%d ranks x %d OpenMP threads on this node, which has %d CPUs",
                  t.ranks_on_node, t.threads, t.cpus_on_node);
  else
    return "";
  return std::string(what) +
         ": threads that spin while they wait for each other slow every step many times over. "
         "Set OMP_NUM_THREADS=" +
         std::to_string(fit) +
         " (the CPUs each rank has), or OMP_WAIT_POLICY=passive if the CPUs are shared on purpose";
}

ThreadLayout thread_layout(MPI_Comm comm) {
  ThreadLayout t;
  t.threads = omp_get_max_threads();
  cpu_set_t set;
  CPU_ZERO(&set);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  t.cpus_on_node = online > 0 ? static_cast<int>(online) : 1;
  t.cpus_allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : t.cpus_on_node;
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &t.ranks_on_node);
  MPI_Comm_free(&node);
  if (const char* p = std::getenv("OMP_WAIT_POLICY")) t.wait_policy = p;
  return t;
}

void warn_if_oversubscribed(MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const std::string w = oversubscription_warning(thread_layout(comm));
  int mine = w.empty() ? size : rank, first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (rank == first) log_warning("%s", w.c_str());
}

}  // namespace xwin
