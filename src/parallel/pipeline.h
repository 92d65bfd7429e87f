// Pipeline schedules, independent of the model (Megatron's schedules module): a stage is three
// callbacks, and the schedule moves activations forward and gradients backward between
// neighbouring stages of the pipeline communicator. With one stage both schedules reduce to the
// plain loop "forward, backward" per micro-batch.
#pragma once
#include <mpi.h>

#include <cstddef>
#include <functional>

namespace xwin {

struct PipelineStage {
  // Called once per micro-batch, in order, before its input arrives: the number of floats that
  // cross a stage boundary for it (activations and their gradients have the same size).
  std::function<size_t(int mb)> prepare;
  // Runs the stage on micro-batch mb. x is the previous stage's output (null on the first
  // stage); returns this stage's output (ignored on the last stage), valid until the next call.
  std::function<const float*(int mb, const float* x)> forward;
  // Backward of micro-batch mb from dy, the gradient of this stage's output (null on the last
  // stage); returns the gradient of its input (ignored on the first stage).
  std::function<const float*(int mb, const float* dy)> backward;
};

// One forward-then-backward (1F1B) schedule over n_micro micro-batches: stage p runs
// min(stages - p - 1, n_micro) warm-up forwards, then alternates one forward and one backward,
// then drains the remaining backwards. At most min(stages - p, n_micro) micro-batches are in
// flight on stage p: micro-batch mb may use activation slot mb % that.
void pipeline_1f1b(MPI_Comm pp, int n_micro, const PipelineStage& stage);
// Forward only (scoring): every micro-batch flows through the stages in order.
void pipeline_forward(MPI_Comm pp, int n_micro, const PipelineStage& stage);
// Activation slots a stage needs under pipeline_1f1b.
int pipeline_slots(MPI_Comm pp, int n_micro);

}  // namespace xwin
