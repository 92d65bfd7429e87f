#include "parallel/grid.h"

#include <climits>

namespace xwin {

Grid Grid::from_world() {
  Grid g;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) return g;
  g.world = g.dp = MPI_COMM_WORLD;
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g.size);
  g.dp_rank = g.rank;
  g.dp_size = g.size;
  return g;
}

void allreduce_sum(float* x, size_t n, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return;
  int size = 1;
  MPI_Comm_size(comm, &size);
  if (size == 1) return;
  // MPI counts are int: reduce in chunks for very large buffers.
  const size_t chunk = (size_t)INT_MAX / 2;
  for (size_t off = 0; off < n; off += chunk) {
    const int cnt = (int)(n - off < chunk ? n - off : chunk);
    MPI_Allreduce(MPI_IN_PLACE, x + off, cnt, MPI_FLOAT, MPI_SUM, comm);
  }
}

double allreduce_sum(double x, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return x;
  double out = x;
  MPI_Allreduce(&x, &out, 1, MPI_DOUBLE, MPI_SUM, comm);
  return out;
}

int64_t allreduce_sum(int64_t x, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return x;
  int64_t out = x;
  MPI_Allreduce(&x, &out, 1, MPI_INT64_T, MPI_SUM, comm);
  return out;
}

int allreduce_max(int x, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return x;
  int out = x;
  MPI_Allreduce(&x, &out, 1, MPI_INT, MPI_MAX, comm);
  return out;
}

void barrier(MPI_Comm comm) {
  if (comm != MPI_COMM_NULL) MPI_Barrier(comm);
}

}  // namespace xwin
