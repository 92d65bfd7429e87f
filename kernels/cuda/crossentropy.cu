// LM head + masked cross-entropy, chunked over the rows that carry loss, as on the CPU: the
// active rows (weight != 0) are listed first, in row order, by a one-block prefix scan, so every
// chunk is full. Per chunk: gather the rows of x; logits = x W^T (fp32 out); one block per row
// does the stable log-softmax, writes the row loss and log p, and turns the logits into
// dlogits = w * (softmax - onehot) (in place in fp32; into a bf16 buffer for the bf16 GEMMs);
// then dx rows = dlogits W (scattered back to their rows) and dW += dlogits^T x.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cuda/crossentropy.h"

namespace xwin::cuda {
namespace {

constexpr int kScanThreads = 1024, kRowThreads = 256;

size_t align256(size_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// rows[0..count) = the n with weights[n] != 0, ascending. One block of kScanThreads: thread t
// owns a contiguous segment of rows; an exclusive scan of the per-thread counts gives where each
// segment writes.
__global__ void __launch_bounds__(kScanThreads)
    compact_rows_kernel(int* rows, int* count, const float* weights, int N) {
  __shared__ int warp_total[kScanThreads / 32];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int per = (N + kScanThreads - 1) / kScanThreads;
  const int n0 = min(N, tid * per), n1 = min(N, n0 + per);
  int c = 0;
  for (int n = n0; n < n1; n++) c += weights[n] != 0.f;
  int x = c;  // inclusive scan within the warp
  for (int o = 1; o < 32; o <<= 1) {
    const int y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  if (lane == 31) warp_total[warp] = x;
  __syncthreads();
  if (warp == 0) {
    int w = warp_total[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const int y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    warp_total[lane] = w;
  }
  __syncthreads();
  int at = x - c + (warp > 0 ? warp_total[warp - 1] : 0);
  for (int n = n0; n < n1; n++)
    if (weights[n] != 0.f) rows[at++] = n;
  if (tid == kScanThreads - 1) *count = at;
}

// dst[i, :] = src[rows[i], :] for i < M.
template <typename T>
__global__ void gather_rows_kernel(T* dst, const T* src, const int* rows, int M, int C) {
  const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (e >= (size_t)M * C) return;
  dst[e] = src[(size_t)rows[e / C] * C + e % C];
}

// dst[rows[i], :] = src[i, :] for i < M.
template <typename T>
__global__ void scatter_rows_kernel(T* dst, const T* src, const int* rows, int M, int C) {
  const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (e >= (size_t)M * C) return;
  dst[(size_t)rows[e / C] * C + e % C] = src[e];
}

// One block per chunk row i (global row n = rows[i]). dlogits may alias logits (fp32).
template <typename D>
__global__ void __launch_bounds__(kRowThreads)
    ce_rows_kernel(float* logits, D* dlogits, const int* rows, const int* targets,
                   const float* weights, double* row_loss, float* logp, int V, bool grad) {
  __shared__ float shared[32];
  const int i = blockIdx.x, n = rows[i];
  float* l = logits + (size_t)i * V;
  D* dl = dlogits + (size_t)i * V;
  float mx = -INFINITY;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, l[v]);
  mx = block_max(mx, shared);
  float sum = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) sum += expf(l[v] - mx);
  sum = block_sum(sum, shared);
  const float lse = mx + logf(sum);
  const int target = targets[n];
  const float w = weights[n], lp = l[target] - lse;
  if (threadIdx.x == 0) {
    row_loss[i] = -(double)w * lp;
    if (logp) logp[n] = lp;
  }
  if (!grad) return;
  __syncthreads();  // every thread has read l[target] before dl (maybe l itself) is written
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float p = w * expf(l[v] - lse);
    dl[v] = from_float<D>(v == target ? p - w : p);
  }
}

template <typename T>
double run(const LmHeadCE<T>& a, GemmHandle& handle, cudaStream_t stream) {
  const int C = a.C, V = a.V, chunk = a.chunk;
  require(chunk > 0, "cuda lm_head_ce: chunk must be positive, got ", chunk);
  constexpr bool kBf16 = std::is_same<T, bf16>::value;
  // Workspace layout, in the order lm_head_ce_workspace sizes it.
  char* ws = static_cast<char*>(a.workspace);
  float* logits = reinterpret_cast<float*>(ws);
  ws += align256(sizeof(float) * (size_t)chunk * V);
  T* dlogits = reinterpret_cast<T*>(logits);  // fp32: in place
  if (kBf16) {
    dlogits = reinterpret_cast<T*>(ws);
    ws += align256(sizeof(T) * (size_t)chunk * V);
  }
  T* xbuf = reinterpret_cast<T*>(ws);
  ws += align256(sizeof(T) * (size_t)chunk * C);
  T* dxbuf = reinterpret_cast<T*>(ws);
  ws += align256(sizeof(T) * (size_t)chunk * C);
  int* rows = reinterpret_cast<int*>(ws);
  ws += align256(sizeof(int) * (size_t)a.N);
  int* count = reinterpret_cast<int*>(ws);
  ws += align256(sizeof(int));
  double* row_loss = reinterpret_cast<double*>(ws);

  if (a.dx) CUDA_CHECK(cudaMemsetAsync(a.dx, 0, sizeof(T) * (size_t)a.N * C, stream));
  if (a.logp) CUDA_CHECK(cudaMemsetAsync(a.logp, 0, sizeof(float) * (size_t)a.N, stream));
  if (a.N == 0) return 0.0;
  compact_rows_kernel<<<1, kScanThreads, 0, stream>>>(rows, count, a.weights, a.N);
  CUDA_CHECK_LAUNCH();
  int active = 0;
  CUDA_CHECK(cudaMemcpyAsync(&active, count, sizeof(int), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));

  const bool grad = a.dx || a.dW;
  for (int r0 = 0; r0 < active; r0 += chunk) {
    const int M = std::min(chunk, active - r0);
    const size_t MC = (size_t)M * C;
    gather_rows_kernel<<<blocks_for(MC, 256), 256, 0, stream>>>(xbuf, a.x, rows + r0, M, C);
    CUDA_CHECK_LAUNCH();
    gemm(handle, false, true, M, V, C, 1.0f, xbuf, C, a.W, C, 0.0f, logits, V, nullptr, stream);
    ce_rows_kernel<<<M, kRowThreads, 0, stream>>>(logits, dlogits, rows + r0, a.targets, a.weights,
                                                  row_loss + r0, a.logp, V, grad);
    CUDA_CHECK_LAUNCH();
    if (a.dx) {
      gemm(handle, false, false, M, C, V, 1.0f, dlogits, V, a.W, C, 0.0f, dxbuf, C, nullptr,
           stream);
      scatter_rows_kernel<<<blocks_for(MC, 256), 256, 0, stream>>>(a.dx, dxbuf, rows + r0, M, C);
      CUDA_CHECK_LAUNCH();
    }
    if (a.dW)
      gemm(handle, true, false, V, C, M, 1.0f, dlogits, V, xbuf, C, 1.0f, a.dW, C, nullptr, stream);
  }
  std::vector<double> loss_rows(active);
  if (active > 0)
    CUDA_CHECK(cudaMemcpyAsync(loss_rows.data(), row_loss, sizeof(double) * active,
                               cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  double loss = 0.0;
  for (double l : loss_rows) loss += l;
  return loss;
}

}  // namespace

size_t lm_head_ce_workspace(int N, int C, int V, int chunk, bool bf16_inputs) {
  const size_t t = bf16_inputs ? sizeof(bf16) : sizeof(float);
  size_t bytes = align256(sizeof(float) * (size_t)chunk * V);
  if (bf16_inputs) bytes += align256(t * (size_t)chunk * V);
  bytes += 2 * align256(t * (size_t)chunk * C);
  bytes += align256(sizeof(int) * (size_t)N) + align256(sizeof(int));
  return bytes + sizeof(double) * (size_t)N;
}

double lm_head_ce(const LmHeadCE<float>& a, GemmHandle& handle, cudaStream_t stream) {
  return run(a, handle, stream);
}
double lm_head_ce(const LmHeadCE<bf16>& a, GemmHandle& handle, cudaStream_t stream) {
  return run(a, handle, stream);
}

}  // namespace xwin::cuda
