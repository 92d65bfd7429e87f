// NcclCollectives: the GPU engine's collectives. One NCCL communicator per MPI communicator
// (the unique id travels over MPI), one non-blocking stream for communication, and an event per
// collective so that it starts only when the compute stream has produced its buffer: a gradient
// bucket is reduced while the backward pass computes the next one.
#include <cuda_runtime.h>
#include <nccl.h>

#include <vector>

#include "core/error.h"
#include "parallel/collectives.h"

namespace xwin {

namespace {

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(e));
}
void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string(what) + ": " + ncclGetErrorString(r));
}
#define XWIN_CUDA_CALL(x) cuda_check((x), #x)
#define XWIN_NCCL_CALL(x) nccl_check((x), #x)

class NcclCollectives final : public Collectives {
 public:
  NcclCollectives(MPI_Comm comm, int device, cudaStream_t compute) : compute_(compute) {
    require(comm != MPI_COMM_NULL, "internal: NCCL collectives need an MPI communicator");
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
    XWIN_CUDA_CALL(cudaSetDevice(device));
    ncclUniqueId id;
    if (rank_ == 0) XWIN_NCCL_CALL(ncclGetUniqueId(&id));
    MPI_Bcast(&id, (int)sizeof(id), MPI_BYTE, 0, comm);
    XWIN_NCCL_CALL(ncclCommInitRank(&nccl_, size_, id, rank_));
    XWIN_CUDA_CALL(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    XWIN_CUDA_CALL(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    XWIN_CUDA_CALL(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
  }
  ~NcclCollectives() override {
    cudaStreamSynchronize(stream_);
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
    ncclCommDestroy(nccl_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(float* x, size_t n) override {
    start_allreduce_sum(x, n);
    wait();
    XWIN_CUDA_CALL(cudaStreamSynchronize(compute_));
  }
  void allgather(const float* x, float* out, size_t n) override {
    after_compute();
    XWIN_NCCL_CALL(ncclAllGather(x, out, n, ncclFloat, nccl_, stream_));
    finish();
  }
  void reduce_scatter_sum(const float* x, float* out, size_t n) override {
    after_compute();
    XWIN_NCCL_CALL(ncclReduceScatter(x, out, n, ncclFloat, ncclSum, nccl_, stream_));
    finish();
  }
  void broadcast(float* x, size_t n, int root) override {
    after_compute();
    XWIN_NCCL_CALL(ncclBroadcast(x, x, n, ncclFloat, root, nccl_, stream_));
    finish();
  }
  void start_allreduce_sum(float* x, size_t n) override {
    after_compute();
    XWIN_NCCL_CALL(ncclAllReduce(x, x, n, ncclFloat, ncclSum, nccl_, stream_));
    pending_ = true;
  }
  void wait() override {
    if (!pending_) return;
    XWIN_CUDA_CALL(cudaEventRecord(done_, stream_));
    XWIN_CUDA_CALL(cudaStreamWaitEvent(compute_, done_, 0));
    pending_ = false;
  }
  const char* backend() const override { return "nccl"; }

 private:
  int rank_ = 0, size_ = 1;
  ncclComm_t nccl_ = nullptr;
  cudaStream_t compute_ = nullptr, stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  bool pending_ = false;

  // The communication stream waits for what the compute stream has queued so far.
  void after_compute() {
    XWIN_CUDA_CALL(cudaEventRecord(ready_, compute_));
    XWIN_CUDA_CALL(cudaStreamWaitEvent(stream_, ready_, 0));
  }
  // Blocking calls return with the result in place on the device.
  void finish() { XWIN_CUDA_CALL(cudaStreamSynchronize(stream_)); }
};

}  // namespace

std::unique_ptr<Collectives> make_nccl_collectives(MPI_Comm comm, int device,
                                                   void* compute_stream) {
  return std::make_unique<NcclCollectives>(comm, device, (cudaStream_t)compute_stream);
}

}  // namespace xwin
