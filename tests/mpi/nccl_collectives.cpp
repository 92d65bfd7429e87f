// NcclCollectives against MpiCollectives (labels gpu, mpi): every collective of the interface on
// device buffers through NCCL gives the values the MPI backend gives on host buffers. Each rank
// takes device rank % devices; NCCL needs one device per rank, so with fewer devices than ranks
// or none at all the test reports itself skipped (exit 77, CTest SKIP_RETURN_CODE).
#include <cuda_runtime.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "parallel/collectives.h"

using namespace xwin;

namespace {

int failures = 0;

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const char* what,
                  int rank) {
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++)
    worst = std::max(worst, std::fabs((double)got[i] - want[i]) / (std::fabs(want[i]) + 1e-6));
  if (worst > 1e-6) {
    std::printf("FAIL rank %d: %s differs from MPI by %.3g relative\n", rank, what, worst);
    failures++;
  }
}

std::vector<float> to_host(const float* d, size_t n) {
  std::vector<float> h(n);
  cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
  return h;
}

float* to_device(const std::vector<float>& h) {
  float* d = nullptr;
  cudaMalloc(&d, h.size() * sizeof(float));
  cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1, devices = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  int fewest = devices;
  MPI_Allreduce(MPI_IN_PLACE, &fewest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (fewest < size) {
    if (rank == 0)
      std::printf("skipped: %d CUDA device(s) visible, NCCL needs one per rank (%d ranks)\n",
                  fewest, size);
    MPI_Finalize();
    return 77;
  }
  cudaStream_t compute;
  cudaSetDevice(rank % devices);
  cudaStreamCreate(&compute);
  auto nccl = make_nccl_collectives(MPI_COMM_WORLD, rank % devices, compute);
  auto mpi = make_mpi_collectives(MPI_COMM_WORLD);
  std::mt19937 gen(1234 + rank);
  std::normal_distribution<float> nd;
  const size_t n = 1000003;  // odd: no collective may assume alignment
  std::vector<float> x(n * size);
  for (float& e : x) e = nd(gen);

  {  // blocking all-reduce
    std::vector<float> want(x.begin(), x.begin() + n);
    mpi->allreduce_sum(want.data(), n);
    float* d = to_device(std::vector<float>(x.begin(), x.begin() + n));
    nccl->allreduce_sum(d, n);
    expect_close(to_host(d, n), want, "allreduce_sum", rank);
    cudaFree(d);
  }
  {  // two buckets started, then waited for, as the trainer does during the backward pass
    std::vector<float> want(x.begin(), x.begin() + n);
    mpi->start_allreduce_sum(want.data(), n / 2);
    mpi->start_allreduce_sum(want.data() + n / 2, n - n / 2);
    mpi->wait();
    float* d = to_device(std::vector<float>(x.begin(), x.begin() + n));
    nccl->start_allreduce_sum(d, n / 2);
    nccl->start_allreduce_sum(d + n / 2, n - n / 2);
    nccl->wait();
    cudaStreamSynchronize(compute);
    expect_close(to_host(d, n), want, "start_allreduce_sum + wait", rank);
    cudaFree(d);
  }
  {  // all-gather
    std::vector<float> want(n * size);
    mpi->allgather(x.data(), want.data(), n);
    float* d = to_device(std::vector<float>(x.begin(), x.begin() + n));
    float* out = to_device(std::vector<float>(n * size, 0.f));
    nccl->allgather(d, out, n);
    expect_close(to_host(out, n * size), want, "allgather", rank);
    cudaFree(d);
    cudaFree(out);
  }
  {  // reduce-scatter
    std::vector<float> want(n);
    mpi->reduce_scatter_sum(x.data(), want.data(), n);
    float* d = to_device(x);
    float* out = to_device(std::vector<float>(n, 0.f));
    nccl->reduce_scatter_sum(d, out, n);
    expect_close(to_host(out, n), want, "reduce_scatter_sum", rank);
    cudaFree(d);
    cudaFree(out);
  }
  {  // broadcast from the last rank
    std::vector<float> want(x.begin(), x.begin() + n);
    mpi->broadcast(want.data(), n, size - 1);
    float* d = to_device(std::vector<float>(x.begin(), x.begin() + n));
    nccl->broadcast(d, n, size - 1);
    expect_close(to_host(d, n), want, "broadcast", rank);
    cudaFree(d);
  }
  nccl.reset();
  cudaStreamDestroy(compute);
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::printf("%s: NCCL collectives on %d rank(s) %s\n", failures ? "FAIL" : "ok", size,
                failures ? "differ from MPI" : "match MPI");
  MPI_Finalize();
  return failures ? 1 : 0;
}
