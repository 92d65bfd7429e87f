// The Llama decoder on one GPU (tp = pp = 1): the CPU Llama's math (model/llama.cpp) over the
// kernels in kernels/cuda, with the same ModelConfig and the same flat parameter layout
// (model/layout.h), so parameters and gradients move between the engines with one copy.
//
// Master parameters, gradients and AdamW moments are fp32 on the device. Two precisions:
//   fp32: every activation and GEMM in fp32 (no TF32): the parity path, same numbers as the CPU
//         to float rounding;
//   bf16: a bf16 copy of the parameters (refreshed by AdamW), bf16 activations and activation
//         gradients, fp32 accumulation in every GEMM and reduction, fp32 weight gradients, and
//         fp32 logits, log-softmax, log-probs and loss.
// Every buffer is sized once, in the constructor, for up to max_tokens tokens of at most max_T
// positions; the training step allocates nothing.
//
// A training step reads top to bottom, as on the CPU:
//   gpu.zero_grad();
//   gpu.forward(tokens, B, T);
//   loss = gpu.lm_loss(targets, weights, true);   // writes d(final norm output), LM head grad
//   gpu.backward();                                // accumulates into the gradients
//   gpu.update(tc, step);                          // global-norm clipping + AdamW, as Trainer
// train_step does this over several micro-batches (gradient accumulation) with a loss mask.
//
// Data parallelism (set_data_parallel): every rank holds the whole model and trains on its part
// of the global batch; train_step sums the gradients over the group in the CPU Trainer's
// buckets (the LM head and final norm, each layer from the last to the first, the embedding),
// each started on the collectives' stream as soon as the last micro-batch's backward has
// written it, so the reduction overlaps the rest of the backward pass.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "align/trainer.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/gemm.h"
#include "model/config.h"
#include "model/layout.h"
#include "model/llama.h"
#include "parallel/collectives.h"

namespace xwin {

enum class GpuPrecision { fp32, bf16 };
const char* to_string(GpuPrecision p);
// "fp32" or "bf16"; throws xwin::Error naming the accepted values otherwise.
GpuPrecision parse_gpu_precision(const std::string& s);

// Device memory: what the engine allocated itself (parameters, gradients, moments, activations,
// workspaces) and what cudaMemGetInfo reports in use on the device (every process and library,
// cuBLASLt included): at construction, now, and the highest value seen by memory().
struct GpuMemory {
  size_t engine_bytes = 0;
  size_t device_used_before = 0;
  size_t device_used = 0;
  size_t device_used_peak = 0;
};

struct GpuStepStats {
  double loss = 0, grad_norm = 0, lr = 0;
};

// One micro-batch of a training step, host arrays [B*T]: tokens, next-token targets and the loss
// mask (1 where the target counts).
struct GpuMicroBatch {
  const int32_t* tokens = nullptr;
  const int32_t* targets = nullptr;
  const float* mask = nullptr;
  int B = 0, T = 0;
  // Positions with mask != 0: the micro-batch's loss units.
  int64_t loss_units() const;
};

class GpuLlama {
 public:
  // Allocates everything on the current CUDA device for batches of up to max_tokens = B * T
  // tokens with T <= max_T (<= cfg.max_seq_len). Needs tp = pp = 1 and no value head.
  GpuLlama(const ModelConfig& cfg, GpuPrecision precision, int max_tokens, int max_T);
  ~GpuLlama();
  GpuLlama(const GpuLlama&) = delete;
  GpuLlama& operator=(const GpuLlama&) = delete;

  const ModelConfig cfg;
  const ParamLayout layout;
  const GpuPrecision precision;

  // Parameters from a CPU model of the same config (and its gradients, with_grads); the bf16
  // copy is refreshed. AdamW moments are untouched (zero after construction).
  void upload(const Llama& model, bool with_grads = false);
  // Parameters and gradients into a CPU model of the same config.
  void download(Llama& model) const;
  // AdamW moments (fp32, the layout's order) to the host.
  void download_moments(std::vector<float>& m, std::vector<float>& v) const;

  void zero_grad();
  // Forward through the final RMSNorm for host tokens [B, T].
  void forward(const int32_t* tokens, int B, int T);
  // LM head + cross-entropy on the last forward, as Llama::lm_loss: host targets and weights
  // [B*T]; returns sum_n weights[n] * -log p(targets[n]). With grad, writes the gradient of the
  // final norm output and accumulates the LM head gradient.
  double lm_loss(const int32_t* targets, const float* weights, bool with_grad);
  // Backward from the final norm output's gradient to the embedding; accumulates into grads.
  void backward();
  // Trainer::clip_and_update: global gradient norm, clipping to tc.grad_clip, AdamW at
  // lr_at(tc, step) (0-based step; weight decay on matrices only). Returns norm and lr.
  GpuStepStats update(const TrainConfig& tc, int64_t step);
  // The data-parallel group (null, or a group of one rank: none): collectives on device buffers
  // ordered against stream(), i.e. make_nccl_collectives(comm, device, gpu.stream()). It must
  // outlive the training steps; every rank must start from the same parameters.
  void set_data_parallel(Collectives* dp);

  // One optimizer step, as Trainer::step with LmObjective: gradients accumulate over this rank's
  // micro-batches, every counted position weighted 1 / global_units, where global_units is the
  // number of loss units of the whole global batch (every rank's micro-batches: the caller sums
  // the counts over the data-parallel group first, as the Trainer does). With a data-parallel
  // group, the last micro-batch's backward starts the gradient buckets (one sum after the
  // backward instead when !tc.overlap_grad_reduce), and the returned loss, the mean over the
  // global batch, is summed over the group in fp32. Then clipping + AdamW, as update().
  GpuStepStats train_step(const std::vector<GpuMicroBatch>& micro, int64_t global_units,
                          const TrainConfig& tc, int64_t step);
  // One micro-batch without a data-parallel group: the mean over its positions with
  // mask[n] != 0 (mask [B*T], 1 where targets[n] counts).
  GpuStepStats train_step(const int32_t* tokens, const int32_t* targets, const float* mask, int B,
                          int T, const TrainConfig& tc, int64_t step);

  // Full logits [B*T, vocab] (fp32, host) of the last forward, through a temporary device
  // buffer of that size (the one allocation outside the constructor): small models and tests.
  void logits(float* out);

  // Samples cudaMemGetInfo (updating the peak) and returns the memory figures.
  GpuMemory memory();
  void synchronize() const;
  cudaStream_t stream() const { return stream_; }

 private:
  // Activations are float or bf16 (the precision): stored untyped, typed in the .cu.
  struct LayerActs {
    void *resid_in, *ln1, *q, *k, *v, *att, *resid_mid, *ln2, *gate, *up, *act;
    float *rstd1, *lse, *rstd2;
  };
  int max_tokens_, max_T_, chunk_, B_ = 0, T_ = 0;
  int NH_, NKV_, HD_, QD_, KD_, F_;
  struct CudaFree {
    void operator()(void* p) const { cudaFree(p); }
  };
  cuda::GemmHandle gemm_;
  cudaStream_t stream_ = nullptr;
  std::vector<std::unique_ptr<void, CudaFree>> allocations_;
  size_t engine_bytes_ = 0, used_before_ = 0, used_peak_ = 0;
  // Parameters, gradients, moments (fp32) and the bf16 parameter copy (bf16 precision only).
  float *params_, *grads_, *m_, *v_;
  cuda::bf16* params_bf16_ = nullptr;
  std::vector<LayerActs> layers_;
  void *resid_final_, *final_norm_, *dfinal_norm_;
  float* rstd_final_;
  // Backward scratch, shared across layers.
  void *dresid_, *dln_, *dq_, *dk_, *dv_, *datt_, *dgate_, *dup_, *dact_;
  int32_t *tokens_, *targets_;
  float *weights_, *rope_cos_, *rope_sin_;
  float* loss_sum_;  // the step's loss, for its data-parallel sum
  Collectives* dp_ = nullptr;
  void* ce_workspace_;
  double *norm_work_, *norm_out_;
  // AdamW's tensor lists: matrices (weight decay) and the rest.
  std::vector<cuda::AdamWTensor> decay_, no_decay_;

  void* alloc(size_t bytes);
  template <typename T>
  T* alloc_n(size_t n) {
    return static_cast<T*>(alloc(sizeof(T) * n));
  }
  size_t act_bytes() const;
  size_t device_used() const;
  void refresh_bf16();
  template <typename A>
  A* param(const std::string& name) const;
  float* grad(const std::string& name) const;
  const char* lm_name() const;
  template <typename A>
  void forward_impl();
  template <typename A>
  double lm_loss_impl(bool with_grad);
  bool data_parallel() const { return dp_ && dp_->size() > 1; }
  // backward(); with start_buckets, each bucket's data-parallel sum starts once it is written.
  void backward_pass(bool start_buckets);
  template <typename A>
  void backward_impl(bool start_buckets);
};

}  // namespace xwin
