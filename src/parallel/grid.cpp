#include "parallel/grid.h"

#include <algorithm>
#include <chrono>
#include <climits>

#include "core/error.h"

namespace xwin {

namespace {

Grid g_grid;
bool g_configured = false;
double g_comm_seconds = 0;

// Adds the lifetime of the scope to comm_seconds().
class CommTimer {
 public:
  CommTimer() : t0_(std::chrono::steady_clock::now()) {}
  ~CommTimer() {
    g_comm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

bool trivial(MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return true;
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size == 1;
}

// MPI counts are int: large buffers go in chunks.
template <typename T>
void allreduce(T* x, size_t n, MPI_Datatype type, MPI_Op op, MPI_Comm comm) {
  if (trivial(comm)) return;
  CommTimer t;
  const size_t chunk = (size_t)INT_MAX / 2;
  for (size_t off = 0; off < n; off += chunk) {
    const int cnt = (int)(n - off < chunk ? n - off : chunk);
    MPI_Allreduce(MPI_IN_PLACE, x + off, cnt, type, op, comm);
  }
}

MPI_Comm split(int color, int key) {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, color, key, &c);
  return c;
}

}  // namespace

Grid Grid::from_world() {
  if (g_configured) return g_grid;
  Grid g;
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) return g;
  g.world = g.dp = MPI_COMM_WORLD;
  g.tp = g.pp = g.mp = MPI_COMM_SELF;
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g.size);
  g.dp_rank = g.rank;
  g.dp_size = g.size;
  return g;
}

void configure_grid(int dp, int tp, int pp) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  int size = 1, rank = 0;
  if (initialised) MPI_Comm_size(MPI_COMM_WORLD, &size), MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  require(tp > 0 && pp > 0 && dp >= 0, "parallel.tp and parallel.pp must be positive and ",
          "parallel.dp >= 0 (got dp=", dp, " tp=", tp, " pp=", pp, ")");
  if (dp == 0) {
    require(size % (tp * pp) == 0, "parallel.tp x parallel.pp = ", tp, " x ", pp,
            " does not divide the ", size, " ranks of the job; launch a multiple of ", tp * pp,
            " ranks or change the layout");
    dp = size / (tp * pp);
  }
  require(dp * tp * pp == size, "parallel layout dp x tp x pp = ", dp, " x ", tp, " x ", pp, " = ",
          dp * tp * pp, " but the job has ", size,
          " ranks; the product must equal the number of ranks (mpiexec -n / srun -n)");
  if (!initialised) return;  // serial: only 1 x 1 x 1 gets here
  Grid g;
  g.world = MPI_COMM_WORLD;
  g.rank = rank, g.size = size;
  g.dp_size = dp, g.tp_size = tp, g.pp_size = pp;
  g.tp_rank = rank % tp;
  g.dp_rank = (rank / tp) % dp;
  g.pp_rank = rank / (tp * dp);
  g.tp = split(g.pp_rank * dp + g.dp_rank, g.tp_rank);
  g.dp = split(g.pp_rank * tp + g.tp_rank, g.dp_rank);
  g.pp = split(g.dp_rank * tp + g.tp_rank, g.pp_rank);
  g.mp = split(g.dp_rank, g.pp_rank * tp + g.tp_rank);
  const bool ends = pp > 1 && (g.first_stage() || g.last_stage());
  g.embed = split(ends ? g.dp_rank * tp + g.tp_rank : MPI_UNDEFINED, g.pp_rank);
  g_grid = g;
  g_configured = true;
}

void allreduce_sum(float* x, size_t n, MPI_Comm comm) {
  allreduce(x, n, MPI_FLOAT, MPI_SUM, comm);
}

void allreduce_sum(double* x, size_t n, MPI_Comm comm) {
  allreduce(x, n, MPI_DOUBLE, MPI_SUM, comm);
}

void allreduce_max(float* x, size_t n, MPI_Comm comm) {
  allreduce(x, n, MPI_FLOAT, MPI_MAX, comm);
}

double allreduce_sum(double x, MPI_Comm comm) {
  allreduce(&x, 1, MPI_DOUBLE, MPI_SUM, comm);
  return x;
}

int64_t allreduce_sum(int64_t x, MPI_Comm comm) {
  allreduce(&x, 1, MPI_INT64_T, MPI_SUM, comm);
  return x;
}

int allreduce_max(int x, MPI_Comm comm) {
  allreduce(&x, 1, MPI_INT, MPI_MAX, comm);
  return x;
}

void allgather(const float* x, float* out, size_t n, MPI_Comm comm) {
  if (trivial(comm)) {
    std::copy_n(x, n, out);
    return;
  }
  require(n <= (size_t)INT_MAX, "internal: allgather of ", n, " floats exceeds MPI's int count");
  CommTimer t;
  MPI_Allgather(x, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, comm);
}

void reduce_scatter_sum(const float* x, float* out, size_t n, MPI_Comm comm) {
  if (trivial(comm)) {
    std::copy_n(x, n, out);
    return;
  }
  require(n <= (size_t)INT_MAX, "internal: reduce-scatter of ", n, " floats per rank exceeds ",
          "MPI's int count");
  CommTimer t;
  MPI_Reduce_scatter_block(x, out, (int)n, MPI_FLOAT, MPI_SUM, comm);
}

void broadcast(float* x, size_t n, int root, MPI_Comm comm) {
  if (trivial(comm)) return;
  CommTimer t;
  const size_t chunk = (size_t)INT_MAX / 2;
  for (size_t off = 0; off < n; off += chunk)
    MPI_Bcast(x + off, (int)std::min(chunk, n - off), MPI_FLOAT, root, comm);
}

Slice slice_of(size_t n, int rank, int size) {
  const size_t units = n / kSliceUnit, per = (units + (size_t)size - 1) / (size_t)size;
  Slice s;
  s.lo = std::min(units, per * (size_t)rank) * kSliceUnit;
  s.hi = rank == size - 1 ? n : std::min(units, per * (size_t)(rank + 1)) * kSliceUnit;
  return s;
}

namespace {

// Counts and displacements of every rank's whole units, in units of kSliceUnit floats; the
// remainder n % kSliceUnit (the last rank's) is moved separately.
struct SliceCounts {
  std::vector<int> counts, displs;
  MPI_Datatype unit = MPI_DATATYPE_NULL;
  size_t tail_lo = 0;
  SliceCounts(size_t n, int size) : counts(size), displs(size) {
    const size_t units = n / kSliceUnit;
    require(units <= (size_t)INT_MAX, "internal: ", n, " floats exceed the ZeRO partition's ",
            "int counts");
    for (int r = 0; r < size; r++) {
      const Slice s = slice_of(units * kSliceUnit, r, size);
      counts[r] = (int)(s.size() / kSliceUnit);
      displs[r] = (int)(s.lo / kSliceUnit);
    }
    tail_lo = units * kSliceUnit;
    MPI_Type_contiguous((int)kSliceUnit, MPI_FLOAT, &unit);
    MPI_Type_commit(&unit);
  }
  ~SliceCounts() { MPI_Type_free(&unit); }
};

}  // namespace

void allgather_slices(float* x, size_t n, MPI_Comm comm) {
  if (trivial(comm)) return;
  CommTimer t;
  int size = 1;
  MPI_Comm_size(comm, &size);
  SliceCounts c(n, size);
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, c.counts.data(), c.displs.data(), c.unit,
                 comm);
  if (n > c.tail_lo) MPI_Bcast(x + c.tail_lo, (int)(n - c.tail_lo), MPI_FLOAT, size - 1, comm);
}

void gather_slices(const float* mine, float* full, size_t n, MPI_Comm comm) {
  int size = 1, rank = 0;
  if (!trivial(comm)) MPI_Comm_size(comm, &size), MPI_Comm_rank(comm, &rank);
  const Slice s = slice_of(n, rank, size);
  if (size == 1) {
    std::copy_n(mine, n, full);
    return;
  }
  CommTimer t;
  SliceCounts c(n, size);
  const int whole = c.counts[rank];
  MPI_Gatherv(mine, whole, c.unit, full, c.counts.data(), c.displs.data(), c.unit, 0, comm);
  const int tail = (int)(n - c.tail_lo);
  if (tail == 0) return;
  if (rank == size - 1)
    MPI_Send(mine + (c.tail_lo - s.lo), tail, MPI_FLOAT, 0, 0, comm);
  else if (rank == 0)
    MPI_Recv(full + c.tail_lo, tail, MPI_FLOAT, size - 1, 0, comm, MPI_STATUS_IGNORE);
}

void barrier(MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return;
  CommTimer t;
  MPI_Barrier(comm);
}

void sendrecv(const float* send, size_t send_n, int dest, float* recv, size_t recv_n, int source,
              MPI_Comm comm) {
  const bool do_send = send && dest >= 0, do_recv = recv && source >= 0;
  if (!do_send && !do_recv) return;
  require(send_n <= (size_t)INT_MAX && recv_n <= (size_t)INT_MAX,
          "internal: pipeline message exceeds MPI's int count");
  CommTimer t;
  MPI_Request req[2];
  int n = 0;
  if (do_recv) MPI_Irecv(recv, (int)recv_n, MPI_FLOAT, source, 0, comm, &req[n++]);
  if (do_send) MPI_Isend(send, (int)send_n, MPI_FLOAT, dest, 0, comm, &req[n++]);
  MPI_Waitall(n, req, MPI_STATUSES_IGNORE);
}

void AsyncAllreduce::start(float* x, size_t n) {
  if (trivial(comm_)) return;
  CommTimer t;
  const size_t chunk = (size_t)INT_MAX / 2;
  for (size_t off = 0; off < n; off += chunk) {
    reqs_.emplace_back();
    MPI_Iallreduce(MPI_IN_PLACE, x + off, (int)std::min(chunk, n - off), MPI_FLOAT, MPI_SUM, comm_,
                   &reqs_.back());
  }
  int done = 0;
  MPI_Testall((int)reqs_.size(), reqs_.data(), &done, MPI_STATUSES_IGNORE);
}

void AsyncAllreduce::wait() {
  if (reqs_.empty()) return;
  CommTimer t;
  MPI_Waitall((int)reqs_.size(), reqs_.data(), MPI_STATUSES_IGNORE);
  reqs_.clear();
}

double comm_seconds() {
  return g_comm_seconds;
}
void reset_comm_seconds() {
  g_comm_seconds = 0;
}

}  // namespace xwin
