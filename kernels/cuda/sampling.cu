// Token sampling in three launches per step, one block per row in the first and the last:
//   prepare: max and argmax (first index of the max, as the CPU's strict > scan), the
//     log-partition lse = max + log(sum exp(l - max)) with the sum in double; greedy rows are
//     done here; otherwise the tempered probabilities exp((l - max) / T) and their sort keys;
//   sort: CUB's segmented radix sort of every row's (key, id) pairs, key = bits(1.0f) -
//     bits(p) (floats in [0, 1] order like their bit patterns, so ascending keys are descending
//     probabilities; 30 bits suffice); the sort is stable and ids go in ascending, so ties stay
//     in id order. Skipped when nothing truncates;
//   draw: prefix sums of the probabilities in candidate order, in double, a chunk of the block
//     at a time, stopping at the first index that reaches the wanted mass.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <vector>

#include "kernels/cuda/sampling.h"

namespace xwin::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kItems = 8;  // consecutive candidates per thread in a draw chunk
constexpr uint32_t kOne = 0x3F800000u;
constexpr int kKeyBits = 30;  // kOne < 2^30

// (v, i) becomes the better of itself and (v2, i2): the larger value, the lower index on ties.
__device__ __forceinline__ void better(float& v, int& i, float v2, int i2) {
  if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}

// Row max and its first index over the block; every thread gets both.
__device__ void block_argmax(float& v, int& i) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  for (int o = 16; o > 0; o >>= 1)
    better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
  if (lane == 0) sv[warp] = v, si[warp] = i;
  __syncthreads();
  v = lane < nwarps ? sv[lane] : -INFINITY;
  i = lane < nwarps ? si[lane] : INT_MAX;
  for (int o = 16; o > 0; o >>= 1)
    better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
}

// One block per row. Greedy (inv_temp 0): token and logp. Otherwise lse, prob and (when keys)
// the sort's keys and ids.
__global__ void prepare_kernel(int32_t* token, float* logp, int* keep, float* lse, float* prob,
                               uint32_t* keys, int32_t* ids, const float* logits, int V,
                               float inv_temp) {
  __shared__ double shared[32];
  const size_t row = blockIdx.x;
  const float* l = logits + row * V;
  float mx = -INFINITY;
  int arg = INT_MAX;
  for (int v = threadIdx.x; v < V; v += blockDim.x) better(mx, arg, l[v], v);
  block_argmax(mx, arg);
  double z = 0;
  for (int v = threadIdx.x; v < V; v += blockDim.x) z += expf(l[v] - mx);
  z = block_sum(z, shared);
  const float row_lse = mx + (float)log(z);
  if (inv_temp == 0.f) {
    if (threadIdx.x == 0) {
      token[row] = arg;
      logp[row] = l[arg] - row_lse;
      if (keep) keep[row] = 1;
    }
    return;
  }
  if (threadIdx.x == 0) lse[row] = row_lse;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float p = expf((l[v] - mx) * inv_temp);
    prob[row * V + v] = p;
    if (keys) keys[row * V + v] = kOne - __float_as_uint(p), ids[row * V + v] = v;
  }
}

using BlockScan = cub::BlockScan<double, kThreads>;

// Shared state of one row's walks.
struct Walk {
  typename BlockScan::TempStorage scan;
  double carry;
  int found;
};

// Walks candidates 0 .. end-1 (token order[i], or i without an order) in chunks, the running
// sum of prob in double. Returns the first index whose running sum reaches target (> target when
// strict, >= otherwise), or end when none does; *sum gets the sum over all end candidates when
// none does. Called by the whole block.
__device__ int first_reaching(Walk& w, const float* prob, const int32_t* order, int end,
                              double target, bool strict, double* sum) {
  __syncthreads();  // the previous walk's readers of w are done
  if (threadIdx.x == 0) w.carry = 0, w.found = INT_MAX;
  __syncthreads();
  for (int c0 = 0; c0 < end; c0 += kThreads * kItems) {
    double x[kItems];
    const int i0 = c0 + threadIdx.x * kItems;
#pragma unroll
    for (int k = 0; k < kItems; k++) {
      const int i = i0 + k;
      x[k] = i < end ? (double)prob[order ? order[i] : i] : 0.0;
    }
    double chunk;
    BlockScan(w.scan).InclusiveSum(x, x, chunk);
    const double carry = w.carry;
#pragma unroll
    for (int k = 0; k < kItems; k++) {
      const double s = carry + x[k];
      if (i0 + k < end && (strict ? s > target : s >= target)) {
        atomicMin(&w.found, i0 + k);
        break;
      }
    }
    __syncthreads();  // every thread has read carry and posted its hit
    if (w.found != INT_MAX) return w.found;
    if (threadIdx.x == 0) w.carry = carry + chunk;
    __syncthreads();
  }
  if (sum) *sum = w.carry;
  return end;
}

// One block per row: top-k limit, top-p cut, then the draw with u * (kept mass).
__global__ void draw_kernel(int32_t* token, float* logp, int* keep_out, const float* logits,
                            const float* prob_all, const int32_t* order_all, const float* lse,
                            const double* uniform, int V, int limit, float top_p) {
  __shared__ Walk w;
  const size_t row = blockIdx.x;
  const float* prob = prob_all + row * V;
  const int32_t* order = order_all ? order_all + row * V : nullptr;
  int keep = limit;
  double mass = 0;
  if (top_p < 1.f) {
    first_reaching(w, prob, order, limit, INFINITY, false, &mass);
    const int i = first_reaching(w, prob, order, limit, (double)top_p * mass, false, nullptr);
    keep = max(i < limit ? i + 1 : limit, 1);
  }
  double kept = 0;
  first_reaching(w, prob, order, keep, INFINITY, false, &kept);
  const int i = first_reaching(w, prob, order, keep, uniform[row] * kept, true, nullptr);
  if (threadIdx.x == 0) {
    const int at = i < keep ? i : keep - 1;
    const int tok = order ? order[at] : at;
    token[row] = tok;
    logp[row] = logits[row * V + tok] - lse[row];
    if (keep_out) keep_out[row] = keep;
  }
}

}  // namespace

TokenSampler::TokenSampler(int max_rows, int V) : max_rows_(max_rows), V_(V) {
  require(max_rows > 0 && V > 0, "cuda TokenSampler: ", max_rows, " rows of ", V, " tokens");
  const size_t n = (size_t)max_rows * V;
  require(n <= (size_t)INT_MAX, "cuda TokenSampler: ", max_rows, " rows of ", V,
          " tokens exceed the sort's 2^31 items; sample fewer rows at once");
  CUDA_CHECK(cudaMalloc(&prob_, sizeof(float) * n));
  CUDA_CHECK(cudaMalloc(&lse_, sizeof(float) * max_rows));
  CUDA_CHECK(cudaMalloc(&keys_in_, sizeof(uint32_t) * n));
  CUDA_CHECK(cudaMalloc(&keys_out_, sizeof(uint32_t) * n));
  CUDA_CHECK(cudaMalloc(&ids_in_, sizeof(int32_t) * n));
  CUDA_CHECK(cudaMalloc(&ids_out_, sizeof(int32_t) * n));
  CUDA_CHECK(cudaMalloc(&offsets_, sizeof(int) * (max_rows + 1)));
  std::vector<int> offsets(max_rows + 1);  // row r is the sort's segment [r V, (r + 1) V)
  for (int r = 0; r <= max_rows; r++) offsets[r] = r * V;
  CUDA_CHECK(
      cudaMemcpy(offsets_, offsets.data(), sizeof(int) * offsets.size(), cudaMemcpyHostToDevice));
  CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(nullptr, sort_tmp_bytes_, keys_in_, keys_out_,
                                                      ids_in_, ids_out_, (int)n, max_rows, offsets_,
                                                      offsets_ + 1, 0, kKeyBits));
  CUDA_CHECK(cudaMalloc(&sort_tmp_, sort_tmp_bytes_));
  bytes_ = n * (sizeof(float) + 2 * sizeof(uint32_t) + 2 * sizeof(int32_t)) +
           sizeof(float) * max_rows + sizeof(int) * (max_rows + 1) + sort_tmp_bytes_;
}

TokenSampler::~TokenSampler() {
  cudaFree(sort_tmp_);
  cudaFree(offsets_);
  cudaFree(ids_out_);
  cudaFree(ids_in_);
  cudaFree(keys_out_);
  cudaFree(keys_in_);
  cudaFree(lse_);
  cudaFree(prob_);
}

void TokenSampler::sample(int32_t* token, float* logp, const float* logits, const double* uniform,
                          int R, float temperature, int top_k, float top_p, cudaStream_t stream,
                          int* keep) {
  require(R >= 0 && R <= max_rows_, "cuda TokenSampler: ", R, " rows, sized for ", max_rows_);
  require(temperature >= 0 && top_k >= 0 && top_p > 0 && top_p <= 1,
          "cuda TokenSampler: temperature ", temperature, ", top_k ", top_k, ", top_p ", top_p);
  if (R == 0) return;
  const int limit = top_k > 0 ? std::min(top_k, V_) : V_;
  const bool truncate = temperature > 0 && (limit < V_ || top_p < 1.f);
  const float inv_temp = temperature > 0 ? 1.0f / temperature : 0.f;
  prepare_kernel<<<R, kThreads, 0, stream>>>(
      token, logp, keep, lse_, prob_, truncate ? keys_in_ : nullptr, ids_in_, logits, V_, inv_temp);
  CUDA_CHECK_LAUNCH();
  if (temperature == 0) return;
  if (truncate) {
    size_t bytes = sort_tmp_bytes_;
    CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(sort_tmp_, bytes, keys_in_, keys_out_,
                                                        ids_in_, ids_out_, R * V_, R, offsets_,
                                                        offsets_ + 1, 0, kKeyBits, stream));
  }
  draw_kernel<<<R, kThreads, 0, stream>>>(token, logp, keep, logits, prob_,
                                          truncate ? ids_out_ : nullptr, lse_, uniform, V_, limit,
                                          top_p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace xwin::cuda
