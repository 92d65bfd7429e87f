// Causal GQA attention, FlashAttention-2 structure with plain fp32 shared-memory tiles.
//
// Forward: one block per (query tile of 64, head, batch). The block walks the key tiles of 64 up
// to the diagonal keeping per query a running max m, a running sum l = sum exp(s - m) and an
// unnormalised output acc = sum exp(s - m) v (in registers); when a tile raises the max, l and
// acc are rescaled by exp(m_old - m_new). Only lse = m + log(l) is kept for the backward pass.
//
// Backward: P = exp(s - lse) is recomputed tile by tile and, with D_i = dout_i . out_i (which
// equals sum_j P_ij dP_ij), dS = P (dP - D). As on the CPU it runs as two kernels that each own
// what they write, so there are no atomics and the result is deterministic: one block per
// (key tile, kv head, batch) sums dk and dv over every query head of the group and every query
// tile at or after the key tile; one block per (query tile, head, batch) sums dq over the key
// tiles up to the diagonal. D is recomputed per query tile (HD flops per row, noise beside the
// tile products).
//
// Shared tiles are [rows][HD + 1] floats: the +1 makes the row-per-lane dot products of the score
// loops conflict-free. Per-thread accumulators own elements e = tid + k * kThreads of a
// [64][HD] tile, so they stay in registers (HD <= kMaxHD). Shared memory is at most ~114 KiB
// (HD = 128), above the 48 KiB default, so each launch raises the kernel's limit first.
#include <cmath>

#include "kernels/cuda/attention.h"

namespace xwin::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
constexpr int kMaxHD = 128;
constexpr int kTile = 64;                        // query tile (fwd, dq), key tile (fwd, dkv)
constexpr int kSub = 32;                         // key tile (dq), query tile (dkv)
constexpr int kPer = kTile * kMaxHD / kThreads;  // accumulator registers per thread

struct Dims {
  int T, NH, NKV, HD;
  float scale;
  __device__ int group() const { return NH / NKV; }
  // Offsets of row t of head h in q/out ([B, T, NH, HD]) and k/v ([B, T, NKV, HD]).
  __device__ size_t q_at(int b, int t, int h) const {
    return ((size_t)b * T + t) * NH * HD + (size_t)h * HD;
  }
  __device__ size_t kv_at(int b, int t, int h) const {
    return ((size_t)b * T + t) * NKV * HD + (size_t)h * HD;
  }
  __device__ size_t lse_at(int b, int h, int t) const { return ((size_t)b * NH + h) * T + t; }
};

// dst[r][d] = rows t0 + r of src (row stride `stride`), as fp32; zero for rows at or past T.
template <typename T>
__device__ void load_tile(float* dst, const T* src, size_t stride, int t0, int rows, int T_,
                          int HD) {
  const int ld = HD + 1;
  for (int e = threadIdx.x; e < rows * HD; e += blockDim.x) {
    const int r = e / HD, d = e % HD;
    dst[r * ld + d] = t0 + r < T_ ? to_float(src[(size_t)(t0 + r) * stride + d]) : 0.f;
  }
}

__device__ __forceinline__ float dot_rows(const float* a, const float* b, int HD) {
  float s = 0.f;
  for (int d = 0; d < HD; d++) s += a[d] * b[d];
  return s;
}

// Per query row r < rows of the tile at i0 (head h): lse_s[r] = lse, D_s[r] = dout . out, from
// the dout tile in shared memory; zero for rows past T. One warp per row.
template <typename T>
__device__ void load_lse_and_D(float* lse_s, float* D_s, const float* dOs, const T* out,
                               const float* lse, const Dims& dm, int b, int h, int i0, int rows) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, ld = dm.HD + 1;
  for (int r = warp; r < rows; r += kWarps) {
    const int i = i0 + r;
    float s = 0.f;
    if (i < dm.T) {
      const T* o = out + dm.q_at(b, i, h);
      for (int d = lane; d < dm.HD; d += 32) s += dOs[r * ld + d] * to_float(o[d]);
    }
    s = warp_sum(s);
    if (lane == 0) {
      D_s[r] = s;
      lse_s[r] = i < dm.T ? lse[dm.lse_at(b, h, i)] : 0.f;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, Dims dm) {
  extern __shared__ float smem[];
  const int HD = dm.HD, ld = HD + 1, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  float* Qs = smem;             // [kTile][ld]
  float* Ks = Qs + kTile * ld;  // [kTile][ld]
  float* Vs = Ks + kTile * ld;  // [kTile][ld]
  float* S = Vs + kTile * ld;   // [kTile][kTile + 1]
  float* m_s = S + kTile * (kTile + 1);
  float* l_s = m_s + kTile;
  float* c_s = l_s + kTile;
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kTile;  // costliest tiles first
  const int h = blockIdx.y, b = blockIdx.z, kh = h / dm.group();
  const size_t qs = (size_t)dm.NH * HD, kvs = (size_t)dm.NKV * HD;

  load_tile(Qs, q + dm.q_at(b, 0, h), qs, i0, kTile, dm.T, HD);
  if (tid < kTile) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }
  float acc[kPer];
#pragma unroll
  for (int x = 0; x < kPer; x++) acc[x] = 0.f;

  const int iend = min(dm.T, i0 + kTile);
  for (int j0 = 0; j0 < iend; j0 += kTile) {
    __syncthreads();  // the previous tile's K, V and S are no longer read
    load_tile(Ks, k + dm.kv_at(b, 0, kh), kvs, j0, kTile, dm.T, HD);
    load_tile(Vs, v + dm.kv_at(b, 0, kh), kvs, j0, kTile, dm.T, HD);
    __syncthreads();
    for (int e = tid; e < kTile * kTile; e += kThreads) {
      const int r = e / kTile, j = e % kTile, i = i0 + r;
      float s = -INFINITY;
      if (i < dm.T && j0 + j <= i) s = dot_rows(Qs + r * ld, Ks + j * ld, HD) * dm.scale;
      S[r * (kTile + 1) + j] = s;
    }
    __syncthreads();
    // Online softmax, one warp per row, two keys per lane (kTile = 64).
    for (int r = warp; r < kTile; r += kWarps) {
      float* row = S + r * (kTile + 1);
      const float s0 = row[lane], s1 = row[lane + 32];
      const float m_old = m_s[r], m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1)));
      const float ref = m_new == -INFINITY ? 0.f : m_new;  // rows past T: everything masked
      const float p0 = expf(s0 - ref), p1 = expf(s1 - ref);
      row[lane] = p0;
      row[lane + 32] = p1;
      const float psum = warp_sum(p0 + p1);
      if (lane == 0) {
        const float c = expf(m_old - ref);  // 0 on the first tile, where m_old = -inf
        c_s[r] = c;
        l_s[r] = l_s[r] * c + psum;
        m_s[r] = m_new;
      }
    }
    __syncthreads();
#pragma unroll
    for (int x = 0; x < kPer; x++) {
      const int e = tid + x * kThreads;
      if (e < kTile * HD) {
        const int r = e / HD, d = e % HD;
        const float* p = S + r * (kTile + 1);
        float a = acc[x] * c_s[r];
        for (int j = 0; j < kTile; j++) a += p[j] * Vs[j * ld + d];
        acc[x] = a;
      }
    }
  }
  // l_s and m_s were last written before the final __syncthreads of the loop.
#pragma unroll
  for (int x = 0; x < kPer; x++) {
    const int e = tid + x * kThreads;
    if (e < kTile * HD) {
      const int r = e / HD, d = e % HD;
      if (i0 + r < dm.T) out[dm.q_at(b, i0 + r, h) + d] = from_float<T>(acc[x] / l_s[r]);
    }
  }
  if (tid < kTile && i0 + tid < dm.T) lse[dm.lse_at(b, h, i0 + tid)] = m_s[tid] + logf(l_s[tid]);
}

// dk, dv of key tile j0 (kTile keys) of kv head kh, from query tiles of kSub rows.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    attention_backward_kv_kernel(T* dk, T* dv, const T* dout, const T* out, const float* lse,
                                 const T* q, const T* k, const T* v, Dims dm) {
  extern __shared__ float smem[];
  const int HD = dm.HD, ld = HD + 1, tid = threadIdx.x;
  float* Ks = smem;             // [kTile][ld]
  float* Vs = Ks + kTile * ld;  // [kTile][ld]
  float* Qs = Vs + kTile * ld;  // [kSub][ld]
  float* dOs = Qs + kSub * ld;  // [kSub][ld]
  float* P = dOs + kSub * ld;   // [kSub][kTile + 1]
  float* dS = P + kSub * (kTile + 1);
  float* lse_s = dS + kSub * (kTile + 1);
  float* D_s = lse_s + kSub;
  const int j0 = blockIdx.x * kTile, kh = blockIdx.y, b = blockIdx.z;
  const size_t qs = (size_t)dm.NH * HD, kvs = (size_t)dm.NKV * HD;

  load_tile(Ks, k + dm.kv_at(b, 0, kh), kvs, j0, kTile, dm.T, HD);
  load_tile(Vs, v + dm.kv_at(b, 0, kh), kvs, j0, kTile, dm.T, HD);
  float dk_acc[kPer], dv_acc[kPer];
#pragma unroll
  for (int x = 0; x < kPer; x++) dk_acc[x] = dv_acc[x] = 0.f;

  for (int h = kh * dm.group(); h < (kh + 1) * dm.group(); h++) {
    for (int i0 = j0; i0 < dm.T; i0 += kSub) {
      __syncthreads();  // the previous query tile is no longer read
      load_tile(Qs, q + dm.q_at(b, 0, h), qs, i0, kSub, dm.T, HD);
      load_tile(dOs, dout + dm.q_at(b, 0, h), qs, i0, kSub, dm.T, HD);
      __syncthreads();
      load_lse_and_D(lse_s, D_s, dOs, out, lse, dm, b, h, i0, kSub);
      __syncthreads();
      for (int e = tid; e < kSub * kTile; e += kThreads) {
        const int r = e / kTile, j = e % kTile, i = i0 + r;
        float p = 0.f, ds = 0.f;
        if (i < dm.T && j0 + j <= i) {
          const float s = dot_rows(Qs + r * ld, Ks + j * ld, HD);
          const float dp = dot_rows(dOs + r * ld, Vs + j * ld, HD);
          p = expf(s * dm.scale - lse_s[r]);
          ds = p * (dp - D_s[r]) * dm.scale;
        }
        P[r * (kTile + 1) + j] = p;
        dS[r * (kTile + 1) + j] = ds;
      }
      __syncthreads();
#pragma unroll
      for (int x = 0; x < kPer; x++) {
        const int e = tid + x * kThreads;
        if (e < kTile * HD) {
          const int j = e / HD, d = e % HD;
          float a = dv_acc[x], c = dk_acc[x];
          for (int r = 0; r < kSub; r++) {
            a += P[r * (kTile + 1) + j] * dOs[r * ld + d];
            c += dS[r * (kTile + 1) + j] * Qs[r * ld + d];
          }
          dv_acc[x] = a;
          dk_acc[x] = c;
        }
      }
    }
  }
#pragma unroll
  for (int x = 0; x < kPer; x++) {
    const int e = tid + x * kThreads;
    if (e < kTile * HD) {
      const int j = e / HD, d = e % HD;
      if (j0 + j < dm.T) {
        dk[dm.kv_at(b, j0 + j, kh) + d] = from_float<T>(dk_acc[x]);
        dv[dm.kv_at(b, j0 + j, kh) + d] = from_float<T>(dv_acc[x]);
      }
    }
  }
}

// dq of query tile i0 (kTile queries) of head h, from key tiles of kSub keys.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    attention_backward_q_kernel(T* dq, const T* dout, const T* out, const float* lse, const T* q,
                                const T* k, const T* v, Dims dm) {
  extern __shared__ float smem[];
  const int HD = dm.HD, ld = HD + 1, tid = threadIdx.x;
  float* Qs = smem;              // [kTile][ld]
  float* dOs = Qs + kTile * ld;  // [kTile][ld]
  float* Ks = dOs + kTile * ld;  // [kSub][ld]
  float* Vs = Ks + kSub * ld;    // [kSub][ld]
  float* dS = Vs + kSub * ld;    // [kTile][kSub + 1]
  float* lse_s = dS + kTile * (kSub + 1);
  float* D_s = lse_s + kTile;
  const int i0 = (gridDim.x - 1 - blockIdx.x) * kTile;  // costliest tiles first
  const int h = blockIdx.y, b = blockIdx.z, kh = h / dm.group();
  const size_t qs = (size_t)dm.NH * HD, kvs = (size_t)dm.NKV * HD;

  load_tile(Qs, q + dm.q_at(b, 0, h), qs, i0, kTile, dm.T, HD);
  load_tile(dOs, dout + dm.q_at(b, 0, h), qs, i0, kTile, dm.T, HD);
  __syncthreads();
  load_lse_and_D(lse_s, D_s, dOs, out, lse, dm, b, h, i0, kTile);
  float dq_acc[kPer];
#pragma unroll
  for (int x = 0; x < kPer; x++) dq_acc[x] = 0.f;

  const int iend = min(dm.T, i0 + kTile);
  for (int j0 = 0; j0 < iend; j0 += kSub) {
    __syncthreads();  // lse_s/D_s written; the previous key tile is no longer read
    load_tile(Ks, k + dm.kv_at(b, 0, kh), kvs, j0, kSub, dm.T, HD);
    load_tile(Vs, v + dm.kv_at(b, 0, kh), kvs, j0, kSub, dm.T, HD);
    __syncthreads();
    for (int e = tid; e < kTile * kSub; e += kThreads) {
      const int r = e / kSub, j = e % kSub, i = i0 + r;
      float ds = 0.f;
      if (i < dm.T && j0 + j <= i) {
        const float s = dot_rows(Qs + r * ld, Ks + j * ld, HD);
        const float dp = dot_rows(dOs + r * ld, Vs + j * ld, HD);
        const float p = expf(s * dm.scale - lse_s[r]);
        ds = p * (dp - D_s[r]) * dm.scale;
      }
      dS[r * (kSub + 1) + j] = ds;
    }
    __syncthreads();
#pragma unroll
    for (int x = 0; x < kPer; x++) {
      const int e = tid + x * kThreads;
      if (e < kTile * HD) {
        const int r = e / HD, d = e % HD;
        const float* ds = dS + r * (kSub + 1);
        float a = dq_acc[x];
        for (int j = 0; j < kSub; j++) a += ds[j] * Ks[j * ld + d];
        dq_acc[x] = a;
      }
    }
  }
#pragma unroll
  for (int x = 0; x < kPer; x++) {
    const int e = tid + x * kThreads;
    if (e < kTile * HD) {
      const int r = e / HD, d = e % HD;
      if (i0 + r < dm.T) dq[dm.q_at(b, i0 + r, h) + d] = from_float<T>(dq_acc[x]);
    }
  }
}

void check_dims(int T, int NH, int NKV, int HD) {
  require(HD > 0 && HD <= kMaxHD, "cuda attention: head_dim ", HD, " is not in 1..", kMaxHD,
          "; larger heads need a kernel with more accumulator registers");
  require(NKV > 0 && NH % NKV == 0, "cuda attention: n_heads ", NH,
          " is not a multiple of n_kv_heads ", NKV);
}

// Raises the kernel's dynamic shared memory limit when needed, then launches it.
template <typename Kernel, typename... Args>
void launch(Kernel kernel, dim3 grid, size_t smem, cudaStream_t stream, Args... args) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  kernel<<<grid, kThreads, smem, stream>>>(args...);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void forward(T* out, float* lse, const T* q, const T* k, const T* v, int B, int T_, int NH, int NKV,
             int HD, cudaStream_t stream) {
  check_dims(T_, NH, NKV, HD);
  if (B == 0 || T_ == 0) return;
  const Dims dm{T_, NH, NKV, HD, 1.0f / sqrtf((float)HD)};
  const int ld = HD + 1;
  const size_t smem = sizeof(float) * (3 * kTile * ld + kTile * (kTile + 1) + 3 * kTile);
  const dim3 grid((T_ + kTile - 1) / kTile, NH, B);
  launch(attention_forward_kernel<T>, grid, smem, stream, out, lse, q, k, v, dm);
}

template <typename T>
void backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q,
              const T* k, const T* v, int B, int T_, int NH, int NKV, int HD, cudaStream_t stream) {
  check_dims(T_, NH, NKV, HD);
  if (B == 0 || T_ == 0) return;
  const Dims dm{T_, NH, NKV, HD, 1.0f / sqrtf((float)HD)};
  const int ld = HD + 1, tiles = (T_ + kTile - 1) / kTile;
  const size_t smem =
      sizeof(float) * (2 * kTile * ld + 2 * kSub * ld + 2 * kSub * (kTile + 1) + 2 * kTile);
  launch(attention_backward_kv_kernel<T>, dim3(tiles, NKV, B), smem, stream, dk, dv, dout, out, lse,
         q, k, v, dm);
  launch(attention_backward_q_kernel<T>, dim3(tiles, NH, B), smem, stream, dq, dout, out, lse, q, k,
         v, dm);
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int B, int T, int NH, int NKV, int HD, cudaStream_t stream) {
  forward(out, lse, q, k, v, B, T, NH, NKV, HD, stream);
}
void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B,
                       int T, int NH, int NKV, int HD, cudaStream_t stream) {
  forward(out, lse, q, k, v, B, T, NH, NKV, HD, stream);
}
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int B,
                        int T, int NH, int NKV, int HD, cudaStream_t stream) {
  backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HD, stream);
}
void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T,
                        int NH, int NKV, int HD, cudaStream_t stream) {
  backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HD, stream);
}

}  // namespace xwin::cuda
