// The start-up warning about OpenMP threads that oversubscribe their CPUs (core/threads.h):
// silent for one thread, a passive wait policy, or a layout that fits; otherwise it names the
// cause (the rank's affinity, or the node's ranks x threads) and the OMP_NUM_THREADS that fits.
#include <gtest/gtest.h>

#include <string>

#include "core/threads.h"

using xwin::oversubscription_warning;
using xwin::ThreadLayout;

static ThreadLayout layout(int threads, int allowed, int ranks, int cpus, std::string policy = "") {
  ThreadLayout t;
  t.threads = threads, t.cpus_allowed = allowed, t.ranks_on_node = ranks, t.cpus_on_node = cpus;
  t.wait_policy = policy;
  return t;
}

TEST(ThreadWarning, SilentWhenThreadsFit) {
  EXPECT_EQ(oversubscription_warning(layout(2, 2, 1, 2)), "");
  EXPECT_EQ(oversubscription_warning(layout(4, 4, 2, 8)), "");
  EXPECT_EQ(oversubscription_warning(layout(8, 64, 8, 64)), "");
}

TEST(ThreadWarning, SilentForOneThreadOrPassiveWaiting) {
  EXPECT_EQ(oversubscription_warning(layout(1, 1, 16, 2)), "");  // MPI ranks alone: no spin
  EXPECT_EQ(oversubscription_warning(layout(4, 1, 1, 2, "passive")), "");
  EXPECT_EQ(oversubscription_warning(layout(4, 1, 1, 2, "PASSIVE")), "");
  EXPECT_NE(oversubscription_warning(layout(4, 1, 1, 2, "active")), "");
}

TEST(ThreadWarning, MoreThreadsThanTheRanksCpus) {
  // mpirun binds each of 2 ranks to one core; OMP_NUM_THREADS=2 puts two threads on it.
  const std::string w = oversubscription_warning(layout(2, 1, 2, 2));
  EXPECT_NE(w.find("2 OpenMP threads per rank, but this rank may run on 1 CPU:"), std::string::npos)
      << w;
  EXPECT_NE(w.find("OMP_NUM_THREADS=1 "), std::string::npos) << w;
  EXPECT_NE(w.find("OMP_WAIT_POLICY=passive"), std::string::npos) << w;
}

TEST(ThreadWarning, MoreRanksTimesThreadsThanTheNodesCpus) {
  // 4 unbound ranks of 2 threads on a 2-core node (oversubscribed launch).
  const std::string w = oversubscription_warning(layout(2, 2, 4, 2));
  EXPECT_NE(w.find("4 ranks x 2 OpenMP threads on this node, which has 2 CPUs:"), std::string::npos)
      << w;
  EXPECT_NE(w.find("OMP_NUM_THREADS=1 "), std::string::npos) << w;
  // 2 ranks x 8 threads on 8 CPUs: 4 each fits.
  const std::string v = oversubscription_warning(layout(8, 8, 2, 8));
  EXPECT_NE(v.find("OMP_NUM_THREADS=4 "), std::string::npos) << v;
}
