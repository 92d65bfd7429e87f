// Batched generation with a KV cache on one GPU: the CPU Generator (generate/generator.h) with
// the model's forward_cached and the token draws on the device. Same scheduling: each free
// slot takes the next prompt, prompts of equal length are prefilled together (identical prompts
// once, their cache copied), every active row decodes one token per step, and a finished row
// (EOS, max_new_tokens, or the context limit) hands its slot to the next waiting prompt.
//
// The forward is forward_cached's math on the kernels of kernels/cuda (embedding, RMSNorm, q/k/v
// projections, RoPE at each row's positions, cache append, decode attention over each row's
// cached keys, o-proj + residual, SwiGLU MLP + residual, final norm, fp32 logits of each row's
// last token). Two precisions:
//   fp32: fp32 weights, activations and cache, fp32 GEMMs (no TF32): greedy output is the CPU
//         engine's;
//   bf16: bf16 weights (rounded from the model's fp32), activations and cache; fp32 GEMM
//         accumulation, attention, softmax and logits.
// The draws follow the CPU Sampler (kernels/cuda/sampling.h) with the uniform numbers of the
// CPU generator: rng_uniform(seed, sample_id, position), position = tokens in the row's cache
// when the token is drawn. Log-probabilities are fp32 under the model (temperature 1).
//
// Needs the whole model (tp = pp = 1), a current CUDA device, and no other user of that device's
// default stream ordering (the sampler runs on its own stream and waits for it every step).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "generate/generator.h"
#include "generate/sampler.h"
#include "model/llama.h"

namespace xwin {

class GpuSampler {
 public:
  enum class Precision { fp32, bf16 };

  // Copies the model's weights to the current CUDA device; `batch` rows decode together.
  GpuSampler(const Llama& model, int batch, const SamplingParams& params,
             Precision precision = Precision::fp32);
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  // As Generator::run: a response for every request; done(i, output) is called (on this thread)
  // as request i finishes.
  void run(const std::vector<GenRequest>& reqs,
           const std::function<void(size_t, GenOutput&&)>& done);
  int64_t generated_tokens() const;
  // Device memory this sampler holds now: weights, KV cache, activations, sampling scratch and
  // the GEMM workspace (the KV cache and activations are sized by the largest run so far).
  size_t device_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xwin
