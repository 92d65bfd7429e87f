// Attention for incremental decoding against a KV cache on the device, as
// cpu::attention_cached: row r holds n new queries at positions pos[r] .. pos[r]+n-1 whose
// keys/values are already in cache slot slot[r]; query i attends to cache positions
// 0 .. pos[r]+i. Layouts: q, out [R, n, NH, HD]; the cache [slots, Tmax, NKV, HD] for k and for
// v; query head h uses kv head h / (NH / NKV); scale 1/sqrt(HD). slot and pos are device arrays
// [R]. Also the append that writes new keys/values into the cache. bf16 overloads: bf16
// activations and cache, every product and the softmax in fp32. Needs HD <= 256.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

// out is overwritten.
void attention_cached(float* out, const float* q, const float* kcache, const float* vcache,
                      const int* slot, const int* pos, int R, int n, int NH, int NKV, int HD,
                      int Tmax, cudaStream_t stream = 0);
void attention_cached(bf16* out, const bf16* q, const bf16* kcache, const bf16* vcache,
                      const int* slot, const int* pos, int R, int n, int NH, int NKV, int HD,
                      int Tmax, cudaStream_t stream = 0);

// Writes k, v [R, n, KD] (KD = NKV * HD) to cache positions pos[r] .. pos[r]+n-1 of slot slot[r].
void kv_cache_append(float* kcache, float* vcache, const float* k, const float* v, const int* slot,
                     const int* pos, int R, int n, int KD, int Tmax, cudaStream_t stream = 0);
void kv_cache_append(bf16* kcache, bf16* vcache, const bf16* k, const bf16* v, const int* slot,
                     const int* pos, int R, int n, int KD, int Tmax, cudaStream_t stream = 0);

}  // namespace xwin::cuda
