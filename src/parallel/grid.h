// The process grid. Today: data parallelism over every rank of the world communicator; the
// parallelism issue adds tensor and pipeline groups. Layers receive the communicator they need.
#pragma once
#include <mpi.h>

#include <cstdint>

namespace xwin {

// Without MPI initialised (unit tests, library use) the grid is serial: communicators are
// MPI_COMM_NULL and every collective below is a no-op.
struct Grid {
  MPI_Comm world = MPI_COMM_NULL;
  MPI_Comm dp = MPI_COMM_NULL;
  int rank = 0, size = 1;
  int dp_rank = 0, dp_size = 1;

  static Grid from_world();
};

// Sums in place over comm (no-op on one rank).
void allreduce_sum(float* x, size_t n, MPI_Comm comm);
double allreduce_sum(double x, MPI_Comm comm);
int64_t allreduce_sum(int64_t x, MPI_Comm comm);
int allreduce_max(int x, MPI_Comm comm);
void barrier(MPI_Comm comm);

}  // namespace xwin
