// The collectives of one communicator behind one interface, so that the training loop does not
// care which engine it drives: MpiCollectives moves host buffers with MPI (the CPU engine);
// NcclCollectives (collectives_nccl.cpp, built with CUDA) moves device buffers with NCCL on
// its own stream. Every call is collective over the communicator; sums are in fp32.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <memory>

namespace xwin {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Blocking, in place.
  virtual void allreduce_sum(float* x, size_t n) = 0;
  // out[r * n .. (r+1) * n) = rank r's x[0 .. n).
  virtual void allgather(const float* x, float* out, size_t n) = 0;
  // out[0 .. n) = the sum over ranks of x[rank * n .. (rank+1) * n).
  virtual void reduce_scatter_sum(const float* x, float* out, size_t n) = 0;
  virtual void broadcast(float* x, size_t n, int root) = 0;
  // Non-blocking in-place sums (gradient buckets during the backward pass): start as many as
  // needed, then wait() for all of them. The buffers must not be touched in between.
  virtual void start_allreduce_sum(float* x, size_t n) = 0;
  virtual void wait() = 0;
  // Name of the backend, for logs ("mpi", "nccl").
  virtual const char* backend() const = 0;
};

// Host buffers over comm (MPI_COMM_NULL or a one-rank comm: every call is a local no-op/copy).
std::unique_ptr<Collectives> make_mpi_collectives(MPI_Comm comm);

#ifdef XWIN_HAVE_NCCL
// Device buffers on `device` over the ranks of comm: rank 0 creates the NCCL unique id and
// broadcasts it over comm, every rank joins with ncclCommInitRank. Work runs on a stream of its
// own; compute_stream (the stream that produces the buffers) is waited on before each
// collective through an event, so a bucket's reduction overlaps the rest of the backward pass.
// wait() makes compute_stream wait for everything started (host does not block).
std::unique_ptr<Collectives> make_nccl_collectives(MPI_Comm comm, int device,
                                                   void* compute_stream /* cudaStream_t */);
#endif

}  // namespace xwin
