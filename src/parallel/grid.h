// The process grid (Megatron's parallel_state): MPI_COMM_WORLD split into data-parallel (DP),
// pipeline-parallel (PP) and tensor-parallel (TP) groups, with TP innermost so that a TP group
// shares a node: world rank = (pp_rank * dp + dp_rank) * tp + tp_rank. Layers receive the
// communicator they need; the collectives below are the one interface to the backend (MPI on
// CPU; see collectives_nccl for GPUs).
#pragma once
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace xwin {

// Without MPI initialised (unit tests, library use) the grid is serial: communicators are
// MPI_COMM_NULL and every collective below is a no-op.
struct Grid {
  MPI_Comm world = MPI_COMM_NULL;
  MPI_Comm dp = MPI_COMM_NULL;     // same (pp, tp) position in every model replica
  MPI_Comm tp = MPI_COMM_NULL;     // one stage's tensor-parallel shards
  MPI_Comm pp = MPI_COMM_NULL;     // the stages of one replica, same tp position
  MPI_Comm mp = MPI_COMM_NULL;     // all tp x pp shards of one replica (global gradient norm)
  MPI_Comm embed = MPI_COMM_NULL;  // first and last stage, same (dp, tp) (tied embeddings, pp>1)
  int rank = 0, size = 1;
  int dp_rank = 0, dp_size = 1;
  int tp_rank = 0, tp_size = 1;
  int pp_rank = 0, pp_size = 1;

  bool first_stage() const { return pp_rank == 0; }
  bool last_stage() const { return pp_rank == pp_size - 1; }

  // The layout set by configure_grid (the [parallel] options), or data parallelism over the
  // whole world when none was set, or the serial grid without MPI.
  static Grid from_world();
};

// Collective over MPI_COMM_WORLD: builds the dp x tp x pp grid that from_world() returns from
// then on. dp = 0 means world size / (tp * pp). Throws xwin::Error naming the sizes and the fix
// when the product is not the world size (every rank detects it identically).
void configure_grid(int dp, int tp, int pp);

// Sums in place over comm (no-op on one rank).
void allreduce_sum(float* x, size_t n, MPI_Comm comm);
void allreduce_sum(double* x, size_t n, MPI_Comm comm);
void allreduce_max(float* x, size_t n, MPI_Comm comm);
double allreduce_sum(double x, MPI_Comm comm);
int64_t allreduce_sum(int64_t x, MPI_Comm comm);
int allreduce_max(int x, MPI_Comm comm);
// out[r * n .. (r+1) * n) = rank r's x[0 .. n) for every rank r of comm.
void allgather(const float* x, float* out, size_t n, MPI_Comm comm);
// out[0 .. n) = the sum over the ranks of comm of x[rank * n .. (rank+1) * n).
void reduce_scatter_sum(const float* x, float* out, size_t n, MPI_Comm comm);
// x[0 .. n) of rank `root` to every rank of comm.
void broadcast(float* x, size_t n, int root, MPI_Comm comm);
void barrier(MPI_Comm comm);

// A flat buffer of n floats split into one contiguous slice per rank of comm, in rank order
// (ZeRO-1's partition of the optimizer state). Slice boundaries are multiples of kSliceUnit
// floats, so counts fit MPI's int up to 2^37 floats; the last rank also owns the remainder.
constexpr size_t kSliceUnit = 64;
struct Slice {
  size_t lo = 0, hi = 0;  // [lo, hi) of the buffer
  size_t size() const { return hi - lo; }
};
Slice slice_of(size_t n, int rank, int size);
// In place: every rank's slice of x[0 .. n) is copied to every other rank.
void allgather_slices(float* x, size_t n, MPI_Comm comm);
// Rank 0 of comm receives every slice into full[0 .. n); `mine` is this rank's slice
// (slice_of(n, rank, size).size() floats). full is only read on rank 0 and may be null elsewhere.
void gather_slices(const float* mine, float* full, size_t n, MPI_Comm comm);

// Point-to-point between neighbouring pipeline stages (ranks of comm); a null buffer or a peer
// of -1 skips that half. Both halves complete before return. Between two ranks messages flow
// one way per direction (activations forward, gradients backward), so no tags are needed.
void sendrecv(const float* send, size_t send_n, int dest, float* recv, size_t recv_n, int source,
              MPI_Comm comm);

// Non-blocking in-place sums over comm, started as gradient buckets become ready during the
// backward pass and finished together: the data-parallel all-reduce overlaps the rest of the
// backward where the MPI library progresses it (each start also tests the earlier ones).
class AsyncAllreduce {
 public:
  explicit AsyncAllreduce(MPI_Comm comm) : comm_(comm) {}
  ~AsyncAllreduce() { wait(); }
  void start(float* x, size_t n);
  void wait();

 private:
  MPI_Comm comm_;
  std::vector<MPI_Request> reqs_;
};

// Seconds spent inside the collectives and point-to-point calls above since the last reset
// (waiting included: under pipeline parallelism this holds the bubble too).
double comm_seconds();
void reset_comm_seconds();

}  // namespace xwin
