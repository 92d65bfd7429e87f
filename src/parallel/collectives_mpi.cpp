// MpiCollectives: the CPU engine's collectives, on top of the helpers in parallel/grid.h (which
// chunk counts past MPI's int range and account the time in comm_seconds()).
#include "parallel/collectives.h"
#include "parallel/grid.h"

namespace xwin {

namespace {

class MpiCollectives final : public Collectives {
 public:
  explicit MpiCollectives(MPI_Comm comm) : comm_(comm), async_(comm) {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_rank(comm_, &rank_), MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* x, size_t n) override { xwin::allreduce_sum(x, n, comm_); }
  void allgather(const float* x, float* out, size_t n) override {
    xwin::allgather(x, out, n, comm_);
  }
  void reduce_scatter_sum(const float* x, float* out, size_t n) override {
    xwin::reduce_scatter_sum(x, out, n, comm_);
  }
  void broadcast(float* x, size_t n, int root) override { xwin::broadcast(x, n, root, comm_); }
  void start_allreduce_sum(float* x, size_t n) override { async_.start(x, n); }
  void wait() override { async_.wait(); }
  const char* backend() const override { return "mpi"; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  AsyncAllreduce async_;
};

}  // namespace

std::unique_ptr<Collectives> make_mpi_collectives(MPI_Comm comm) {
  return std::make_unique<MpiCollectives>(comm);
}

}  // namespace xwin
