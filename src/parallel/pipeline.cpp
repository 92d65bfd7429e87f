#include "parallel/pipeline.h"

#include <algorithm>
#include <vector>

#include "parallel/grid.h"

namespace xwin {

namespace {

// The point-to-point steps of a schedule (Megatron's p2p_communication), on one stage.
class Stage {
 public:
  Stage(MPI_Comm comm, int n_micro, const PipelineStage& fns) : f_(fns), size_(n_micro, 0) {
    if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank_), MPI_Comm_size(comm, &stages_);
    comm_ = comm;
    prev_ = rank_ > 0 ? rank_ - 1 : -1;
    next_ = rank_ + 1 < stages_ ? rank_ + 1 : -1;
  }
  int rank() const { return rank_; }
  int stages() const { return stages_; }

  const float* forward(int mb, const float* x) { return f_.forward(mb, x); }
  const float* backward(int mb, const float* dy) { return f_.backward(mb, dy); }

  const float* recv_forward(int mb) { return exchange(nullptr, -1, mb, -1, true); }
  void send_forward(const float* y, int mb) { exchange(y, mb, -1, -1, true); }
  const float* recv_backward(int mb) { return exchange(nullptr, -1, -1, mb, false); }
  void send_backward(const float* dx, int mb) { exchange(dx, mb, -1, -1, false); }
  // Sends y of micro-batch mb_y forward and receives the gradient of micro-batch mb_dy.
  const float* send_forward_recv_backward(const float* y, int mb_y, int mb_dy) {
    return exchange(y, mb_y, -1, mb_dy, true);
  }
  // Sends dx of micro-batch mb_dx backward and receives the input of micro-batch mb_x.
  const float* send_backward_recv_forward(const float* dx, int mb_dx, int mb_x) {
    return exchange(dx, mb_dx, mb_x, -1, false);
  }

 private:
  const PipelineStage& f_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, stages_ = 1, prev_ = -1, next_ = -1;
  std::vector<size_t> size_;
  std::vector<float> x_, dy_;

  size_t size_of(int mb) {
    if (size_[mb] == 0) size_[mb] = f_.prepare(mb);
    return size_[mb];
  }

  // One combined step: send `out` (of micro-batch mb_out) forward (fwd) or backward, and
  // receive the input of mb_x from the previous stage and/or the gradient of mb_dy from the
  // next one. The input's size is known from prepare(), which runs here even on the first stage.
  const float* exchange(const float* out, int mb_out, int mb_x, int mb_dy, bool fwd) {
    const int dest = !out ? -1 : fwd ? next_ : prev_;
    const size_t out_n = out ? size_of(mb_out) : 0;
    float* recv = nullptr;
    size_t recv_n = 0;
    int source = -1;
    if (mb_x >= 0) {
      recv_n = size_of(mb_x);
      if (prev_ < 0) {
        sendrecv(out, out_n, dest, nullptr, 0, -1, comm_);
        return nullptr;
      }
      x_.resize(recv_n), recv = x_.data(), source = prev_;
    } else if (mb_dy >= 0) {
      if (next_ < 0) {
        sendrecv(out, out_n, dest, nullptr, 0, -1, comm_);
        return nullptr;
      }
      recv_n = size_of(mb_dy), dy_.resize(recv_n), recv = dy_.data(), source = next_;
    }
    sendrecv(out, out_n, dest, recv, recv_n, source, comm_);
    return recv;
  }
};

}  // namespace

int pipeline_slots(MPI_Comm pp, int n_micro) {
  int rank = 0, stages = 1;
  if (pp != MPI_COMM_NULL) MPI_Comm_rank(pp, &rank), MPI_Comm_size(pp, &stages);
  return std::max(1, std::min(stages - rank, n_micro));
}

void pipeline_1f1b(MPI_Comm pp, int n_micro, const PipelineStage& fns) {
  Stage s(pp, n_micro, fns);
  const int warmup = std::min(s.stages() - s.rank() - 1, n_micro);
  const int steady = n_micro - warmup;
  for (int i = 0; i < warmup; i++) s.send_forward(s.forward(i, s.recv_forward(i)), i);
  const float* x = steady > 0 ? s.recv_forward(warmup) : nullptr;
  for (int i = 0; i < steady; i++) {
    const int fwd = warmup + i;
    const float* dy = s.send_forward_recv_backward(s.forward(fwd, x), fwd, i);
    const float* dx = s.backward(i, dy);
    if (i + 1 == steady)
      s.send_backward(dx, i);
    else
      x = s.send_backward_recv_forward(dx, i, fwd + 1);
  }
  for (int i = steady; i < n_micro; i++) s.send_backward(s.backward(i, s.recv_backward(i)), i);
}

void pipeline_forward(MPI_Comm pp, int n_micro, const PipelineStage& fns) {
  Stage s(pp, n_micro, fns);
  for (int i = 0; i < n_micro; i++) s.send_forward(s.forward(i, s.recv_forward(i)), i);
}

}  // namespace xwin
