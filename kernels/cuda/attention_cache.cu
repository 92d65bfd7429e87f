// Decode attention: one block of kWarps warps per (query token, head). The warps split the
// query's keys round-robin; each warp walks its keys with an online softmax (running max m, sum
// l, accumulator acc, rescaled by exp(m_old - m_new) when the max grows), a lane holding the
// head dimensions lane, lane + 32, ... so every key and value row is read coalesced. The warps'
// partial (m, l, acc) are merged once at the end through shared memory. Everything in fp32.
#include <cmath>

#include "kernels/cuda/attention_cache.h"

namespace xwin::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // head dimensions per lane: HD <= 32 * 8 = 256

template <typename T>
__global__ void attention_cached_kernel(T* out, const T* q, const T* kcache, const T* vcache,
                                        const int* slot, const int* pos, int n, int NH, int NKV,
                                        int HD, int Tmax, float scale) {
  const int h = blockIdx.x % NH;
  const size_t tok = blockIdx.x / NH;  // r * n + i
  const int r = (int)(tok / n), i = (int)(tok % n);
  const int len = pos[r] + i + 1;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const size_t stride = (size_t)NKV * HD;
  const size_t base = ((size_t)slot[r] * Tmax * NKV + h / (NH / NKV)) * HD;
  const T* qh = q + (tok * NH + h) * HD;
  float qr[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) {
    const int c = lane + 32 * j;
    qr[j] = c < HD ? to_float(qh[c]) : 0.f;
    acc[j] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int t = warp; t < len; t += kWarps) {
    const T* kt = kcache + base + t * stride;
    const T* vt = vcache + base + t * stride;
    float d = 0.f;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; j++) {
      const int c = lane + 32 * j;
      if (c < HD) d += qr[j] * to_float(kt[c]);
    }
    const float s = warp_sum(d) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; j++) {
      const int c = lane + 32 * j;
      if (c < HD) acc[j] = acc[j] * corr + p * to_float(vt[c]);
    }
    m = m_new;
  }
  __shared__ float sm[kWarps], sl[kWarps];
  __shared__ float sacc[kWarps][32 * kMaxPerLane];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) sacc[warp][lane + 32 * j] = acc[j];
  __syncthreads();
  if (warp != 0) return;
  float M = -INFINITY;
  for (int w = 0; w < kWarps; w++) M = fmaxf(M, sm[w]);
  float wgt[kWarps], L = 0.f;
  for (int w = 0; w < kWarps; w++) {
    wgt[w] = sm[w] == -INFINITY ? 0.f : expf(sm[w] - M);  // a warp without keys adds nothing
    L += sl[w] * wgt[w];
  }
  T* o = out + (tok * NH + h) * HD;
  for (int c = lane; c < HD; c += 32) {
    float a = 0.f;
    for (int w = 0; w < kWarps; w++) a += sacc[w][c] * wgt[w];
    o[c] = from_float<T>(a / L);
  }
}

template <typename T>
__global__ void kv_cache_append_kernel(T* kcache, T* vcache, const T* k, const T* v,
                                       const int* slot, const int* pos, int n, int KD, int Tmax,
                                       size_t total) {
  const size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const size_t tok = idx / KD;
  const int c = (int)(idx % KD), r = (int)(tok / n), i = (int)(tok % n);
  const size_t dst = ((size_t)slot[r] * Tmax + pos[r] + i) * KD + c;
  kcache[dst] = k[idx];
  vcache[dst] = v[idx];
}

template <typename T>
void attend(T* out, const T* q, const T* kcache, const T* vcache, const int* slot, const int* pos,
            int R, int n, int NH, int NKV, int HD, int Tmax, cudaStream_t stream) {
  require(HD > 0 && HD <= 32 * kMaxPerLane, "cuda attention_cached: head_dim ", HD,
          " is outside 1..", 32 * kMaxPerLane);
  require(NKV > 0 && NH % NKV == 0, "cuda attention_cached: ", NH, " heads are not a multiple of ",
          NKV, " kv heads");
  const size_t blocks = (size_t)R * n * NH;
  if (blocks == 0) return;
  const float scale = 1.0f / sqrtf((float)HD);
  attention_cached_kernel<<<(unsigned)blocks, 32 * kWarps, 0, stream>>>(
      out, q, kcache, vcache, slot, pos, n, NH, NKV, HD, Tmax, scale);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void append(T* kcache, T* vcache, const T* k, const T* v, const int* slot, const int* pos, int R,
            int n, int KD, int Tmax, cudaStream_t stream) {
  const size_t total = (size_t)R * n * KD;
  if (total == 0) return;
  kv_cache_append_kernel<<<blocks_for(total, 256), 256, 0, stream>>>(kcache, vcache, k, v, slot,
                                                                     pos, n, KD, Tmax, total);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_cached(float* out, const float* q, const float* kcache, const float* vcache,
                      const int* slot, const int* pos, int R, int n, int NH, int NKV, int HD,
                      int Tmax, cudaStream_t stream) {
  attend(out, q, kcache, vcache, slot, pos, R, n, NH, NKV, HD, Tmax, stream);
}
void attention_cached(bf16* out, const bf16* q, const bf16* kcache, const bf16* vcache,
                      const int* slot, const int* pos, int R, int n, int NH, int NKV, int HD,
                      int Tmax, cudaStream_t stream) {
  attend(out, q, kcache, vcache, slot, pos, R, n, NH, NKV, HD, Tmax, stream);
}

void kv_cache_append(float* kcache, float* vcache, const float* k, const float* v, const int* slot,
                     const int* pos, int R, int n, int KD, int Tmax, cudaStream_t stream) {
  append(kcache, vcache, k, v, slot, pos, R, n, KD, Tmax, stream);
}
void kv_cache_append(bf16* kcache, bf16* vcache, const bf16* k, const bf16* v, const int* slot,
                     const int* pos, int R, int n, int KD, int Tmax, cudaStream_t stream) {
  append(kcache, vcache, k, v, slot, pos, R, n, KD, Tmax, stream);
}

}  // namespace xwin::cuda
