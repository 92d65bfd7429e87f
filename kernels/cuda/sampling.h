// Drawing one token per row of logits on the device, the chain of the CPU Sampler
// (src/generate/sampler.cpp): greedy at temperature 0; otherwise tempered probabilities, top-k,
// then top-p on what top-k kept (HF order), then one draw. The uniform numbers come from the
// caller (one per row, in (0, 1)): the generator computes them with core/rng.h at the CPU
// sampler's keys, so both backends turn the same number into a token the same way.
//
// Candidate order, as on the CPU: descending probability, ties by ascending token id. The kept
// set is the shortest prefix of that order whose mass (summed in that order) reaches top_p times
// the mass top-k kept; the draw walks the kept prefix and takes the first token whose running
// sum exceeds u * (kept mass). Without truncation (top_k 0, top_p 1) the walk is in token id
// order, as on the CPU. Sums are in double; log p of the drawn token is under the model itself
// (temperature 1, no truncation), in fp32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

// Device scratch for up to max_rows rows of a vocabulary of V tokens (the sort's keys, ids and
// temporary storage), allocated once.
class TokenSampler {
 public:
  TokenSampler(int max_rows, int V);
  ~TokenSampler();
  TokenSampler(const TokenSampler&) = delete;
  TokenSampler& operator=(const TokenSampler&) = delete;

  // logits [R, V] fp32 and uniform [R] on the device; writes token [R] and logp [R] (device),
  // and keep [R] (optional): how many candidates the draw chose among (V without truncation, 1
  // when greedy).
  void sample(int32_t* token, float* logp, const float* logits, const double* uniform, int R,
              float temperature, int top_k, float top_p, cudaStream_t stream = 0,
              int* keep = nullptr);
  // After a sample() that truncated (top_k > 0 or top_p < 1): the candidate order of row r is
  // order()[r * V .. (r + 1) * V), on the device.
  const int32_t* order() const { return ids_out_; }
  size_t device_bytes() const { return bytes_; }

 private:
  int max_rows_, V_;
  float* prob_ = nullptr;
  float* lse_ = nullptr;
  uint32_t *keys_in_ = nullptr, *keys_out_ = nullptr;
  int32_t *ids_in_ = nullptr, *ids_out_ = nullptr;
  int* offsets_ = nullptr;
  void* sort_tmp_ = nullptr;
  size_t sort_tmp_bytes_ = 0, bytes_ = 0;
};

}  // namespace xwin::cuda
