// Data-parallel GpuLlama over NCCL (labels gpu, mpi), run with 1 and with 2 ranks. Every rank
// trains fp32 models from the same weights for 5 steps (warmup, cosine, clipping, AdamW) on a
// global batch of 4 sequences per step (padded rows, a loss mask), and checks against a run on
// its own GPU that takes the whole batch as one micro-batch:
//   accumulation: each rank alone, the 4 sequences as 4 micro-batches;
//   data parallel: the 4 sequences split across the ranks in Trainer::step's order, each rank
//     accumulating its share one sequence per micro-batch; NCCL sums the gradient buckets
//     during the last backward (also once after it: overlap_grad_reduce = false).
// Untied (GQA) and tied heads. Each step's loss and every parameter tensor after the last step
// within 1e-5 relative; tensors by the norm-relative error, as tests/mpi/equivalence.sh does (the
// element-wise maximum, printed too, is dominated by AdamW's m/sqrt(v) on elements whose
// gradient is near eps). Lines "PARITY dp<ranks>_<case> <what> norm_rel <e> max_rel <e>" feed
// validation/gpu_check.sh's summary.
// Each rank takes device rank % devices; NCCL needs one device per rank, so with fewer devices
// than ranks the test reports itself skipped (exit 77, CTest SKIP_RETURN_CODE).
#include <cuda_runtime.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "gpu/llama_gpu.h"
#include "parallel/collectives.h"

using namespace xwin;

namespace {

constexpr double kTol = 1e-5;
constexpr int kSteps = 5, kRows = 4, kT = 37;

int failures = 0;

ModelConfig small_config(bool tied) {
  ModelConfig c;
  c.vocab_size = tied ? 131 : 203;
  c.d_model = tied ? 48 : 64;
  c.n_layers = 2;
  c.n_heads = tied ? 6 : 4;
  c.n_kv_heads = 2;
  c.d_ff = tied ? 80 : 100;
  c.max_seq_len = 64;
  c.tie_embeddings = tied;
  return c;
}

// Random weights with some spread (as tests/gpu/engine): matrices of std 0.1, norms around 1.
void init_weights(Llama& m, uint64_t seed) {
  m.init_random(seed);
  std::mt19937 g((unsigned)seed);
  std::normal_distribution<float> noise(0.f, 0.1f);
  for (const TensorInfo& t : m.layout.tensors) {
    float* p = m.params.data() + t.offset;
    for (size_t i = 0; i < t.numel; i++) p[i] = t.init_one ? 1.f + noise(g) : 5.f * p[i];
  }
}

// Rows [first, first + n) of step s's global batch: row j has a length of its own (padding with
// token 0 and mask 0 after it), next-token targets, and a mask skipping every fifth position.
struct Rows {
  std::vector<int32_t> tokens, targets;
  std::vector<float> mask;
  GpuMicroBatch micro(int r, int n) const {
    const size_t at = (size_t)r * kT;
    return {tokens.data() + at, targets.data() + at, mask.data() + at, n, kT};
  }
};

Rows make_rows(const ModelConfig& cfg, int64_t s, int first, int n) {
  Rows b;
  b.tokens.assign((size_t)n * kT, 0), b.targets.assign((size_t)n * kT, 0);
  b.mask.assign((size_t)n * kT, 0.f);
  for (int r = 0; r < n; r++) {
    const int j = first + r;
    std::mt19937 g((unsigned)(1000 * s + j + 7));
    std::uniform_int_distribution<int> tok(0, cfg.vocab_size - 1);
    const int len = kT - 5 * j;
    int32_t* x = &b.tokens[(size_t)r * kT];
    for (int t = 0; t < len; t++) x[t] = tok(g);
    x[1] = cfg.vocab_size - 1;  // the last vocabulary row is used
    for (int t = 0; t + 1 < len; t++) {
      b.targets[(size_t)r * kT + t] = x[t + 1];
      b.mask[(size_t)r * kT + t] = t % 5 != 0 ? 1.f : 0.f;
    }
  }
  return b;
}

struct Run {
  std::vector<double> loss;
  std::vector<float> params;
};

// kSteps steps of `gpu` on this rank's rows [first, first + n) of each global batch, one
// micro-batch of `per_micro` rows at a time; the loss units are summed over `comm`.
Run train(GpuLlama& gpu, const TrainConfig& tc, int first, int n, int per_micro, MPI_Comm comm) {
  Run run;
  for (int64_t s = 0; s < kSteps; s++) {
    const Rows rows = make_rows(gpu.cfg, s, first, n);
    std::vector<GpuMicroBatch> micro;
    int64_t units = 0;
    for (int r = 0; r < n; r += per_micro) {
      micro.push_back(rows.micro(r, per_micro));
      units += micro.back().loss_units();
    }
    MPI_Allreduce(MPI_IN_PLACE, &units, 1, MPI_INT64_T, MPI_SUM, comm);
    const GpuStepStats st = gpu.train_step(micro, units, tc, s);
    run.loss.push_back(st.loss);
  }
  Llama host(gpu.cfg, Grid{});
  gpu.download(host);
  run.params = host.params;
  return run;
}

void report(const std::string& kind, const std::string& what, double norm_rel, double max_rel,
            int rank) {
  if (rank == 0)
    std::printf("PARITY %s %s norm_rel %.3e max_rel %.3e\n", kind.c_str(), what.c_str(), norm_rel,
                max_rel);
  if (!(norm_rel <= kTol)) {
    std::printf("FAIL rank %d: %s %s differs by %.3e relative (tolerance %.0e)\n", rank,
                kind.c_str(), what.c_str(), norm_rel, kTol);
    failures++;
  }
}

void compare(const Run& got, const Run& want, const ParamLayout& layout, const std::string& kind,
             int rank) {
  for (int s = 0; s < kSteps; s++) {
    const double rel = std::abs(got.loss[s] - want.loss[s]) / std::abs(want.loss[s]);
    report(kind, "loss_step" + std::to_string(s + 1), rel, rel, rank);
  }
  for (const TensorInfo& t : layout.tensors) {
    double err2 = 0, ref2 = 0, max_err = 0, max_ref = 0;
    for (size_t i = t.offset; i < t.offset + t.numel; i++) {
      const double e = std::abs((double)got.params[i] - want.params[i]);
      err2 += e * e, ref2 += (double)want.params[i] * want.params[i];
      max_err = std::max(max_err, e), max_ref = std::max(max_ref, std::abs((double)want.params[i]));
    }
    report(kind, "weights:" + t.name, std::sqrt(err2 / ref2), max_err / max_ref, rank);
  }
}

void run_case(bool tied, bool overlap, int device, int rank, int size) {
  const ModelConfig cfg = small_config(tied);
  const std::string name =
      std::string("fp32_") + (tied ? "tied" : "untied") + (overlap ? "" : "_nooverlap");
  TrainConfig tc;
  tc.steps = kSteps, tc.batch_size = kRows, tc.micro_batch_size = 1, tc.warmup_steps = 2;
  tc.lr = 2e-3, tc.min_lr = 2e-4, tc.weight_decay = 0.1, tc.grad_clip = 1.0;
  tc.overlap_grad_reduce = overlap;
  Llama init(cfg, Grid{});
  init_weights(init, tied ? 31 : 32);

  GpuLlama whole(cfg, GpuPrecision::fp32, kRows * kT, kT);
  whole.upload(init);
  const Run want = train(whole, tc, 0, kRows, kRows, MPI_COMM_SELF);
  if (overlap) {  // accumulation does not depend on the reduction mode: once per model
    GpuLlama accum(cfg, GpuPrecision::fp32, kT, kT);
    accum.upload(init);
    compare(train(accum, tc, 0, kRows, 1, MPI_COMM_SELF), want, whole.layout, "accum_" + name,
            rank);
  }
  GpuLlama dp(cfg, GpuPrecision::fp32, kT, kT);
  dp.upload(init);
  // Bound to the model's compute stream; destroyed before the model.
  const std::unique_ptr<Collectives> nccl =
      make_nccl_collectives(MPI_COMM_WORLD, device, dp.stream());
  dp.set_data_parallel(nccl.get());
  const int n_local = kRows / size;
  const Run got = train(dp, tc, rank * n_local, n_local, 1, MPI_COMM_WORLD);
  compare(got, want, whole.layout, "dp" + std::to_string(size) + "_" + name, rank);
  if (rank == 0)
    for (int s = 0; s < kSteps; s++)
      std::printf("  %s step %d  loss dp %.9f whole batch %.9f\n", name.c_str(), s + 1, got.loss[s],
                  want.loss[s]);
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
  if (kRows % size != 0) {
    if (rank == 0) std::printf("FAIL: run with a number of ranks that divides %d\n", kRows);
    MPI_Finalize();
    return 1;
  }
  try {
    const int device = rank % devices;
    cudaSetDevice(device);
    run_case(false, true, device, rank, size);
    run_case(true, true, device, rank, size);
    run_case(false, false, device, rank, size);
  } catch (const std::exception& e) {
    std::printf("FAIL rank %d: %s\n", rank, e.what());
    std::fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    std::printf("%s: data-parallel GpuLlama on %d rank(s) %s\n", failures ? "FAIL" : "ok", size,
                failures ? "differs from the whole-batch run" : "matches the whole-batch run");
  MPI_Finalize();
  return failures ? 1 : 0;
}
