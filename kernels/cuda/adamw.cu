// Multi-tensor AdamW: a launch carries up to kBatch tensor descriptors by value in its kernel
// parameters, and each block finds its tensor from the prefix sums of blocks per tensor, so a
// model's hundreds of tensors take a few launches instead of one each.
#include <cmath>

#include "kernels/cuda/adamw.h"

namespace xwin::cuda {
namespace {

constexpr int kBatch = 32, kThreads = 256, kPerBlock = kThreads * 8;

struct Batch {
  AdamWTensor t[kBatch];
  int first_block[kBatch + 1];  // blocks [first_block[i], first_block[i+1]) update tensor i
  int count;
};

struct Step {
  float beta1, beta2, eps, decay, step, rbc2;
};

__global__ void __launch_bounds__(kThreads) adamw_kernel(Batch batch, Step s) {
  int i = 0;
  while (i + 1 < batch.count && (int)blockIdx.x >= batch.first_block[i + 1]) i++;
  const AdamWTensor& t = batch.t[i];
  const size_t begin = (size_t)(blockIdx.x - batch.first_block[i]) * kPerBlock;
  const size_t end = min(t.n, begin + kPerBlock);
  for (size_t j = begin + threadIdx.x; j < end; j += kThreads) {
    const float gj = t.g[j];
    const float mj = s.beta1 * t.m[j] + (1.0f - s.beta1) * gj;
    const float vj = s.beta2 * t.v[j] + (1.0f - s.beta2) * gj * gj;
    t.m[j] = mj;
    t.v[j] = vj;
    const float pj = t.p[j] * s.decay - s.step * mj / (sqrtf(vj) * s.rbc2 + s.eps);
    t.p[j] = pj;
    if (t.p_bf16) t.p_bf16[j] = __float2bfloat16(pj);
  }
}

__global__ void sum_squares_parts_kernel(double* work, const float* x, size_t n) {
  __shared__ double shared[32];
  double s = 0.0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    s += (double)x[i] * x[i];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) work[blockIdx.x] = s;
}

__global__ void sum_parts_kernel(double* out, const double* work, int parts) {
  __shared__ double shared[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < parts; i += blockDim.x) s += work[i];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) *out = s;
}

__global__ void scale_kernel(float* x, float s, size_t n) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) x[i] *= s;
}

__global__ void add_kernel(float* a, const float* b, size_t n) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) a[i] += b[i];
}

}  // namespace

void adamw_update(const std::vector<AdamWTensor>& tensors, const AdamWHyper& h, long t,
                  cudaStream_t stream) {
  // The scalars exactly as cpu::adamw_update forms them.
  const float bc1 = 1.0f - (float)std::pow((double)h.beta1, (double)t);
  const float bc2 = 1.0f - (float)std::pow((double)h.beta2, (double)t);
  const Step s{
      h.beta1, h.beta2, h.eps, 1.0f - h.lr * h.weight_decay, h.lr / bc1, 1.0f / std::sqrt(bc2)};
  size_t i = 0;
  while (i < tensors.size()) {
    Batch batch{};
    int blocks = 0;
    for (; i < tensors.size() && batch.count < kBatch; i++) {
      if (tensors[i].n == 0) continue;
      const size_t nb = (tensors[i].n + kPerBlock - 1) / kPerBlock;
      require(nb < (size_t)(1 << 30), "cuda adamw: tensor of ", tensors[i].n, " is too large");
      if (batch.count > 0 && blocks + nb >= (size_t)(1 << 30)) break;
      batch.t[batch.count] = tensors[i];
      batch.first_block[batch.count] = blocks;
      blocks += (int)nb;
      batch.count++;
    }
    if (batch.count == 0) continue;
    batch.first_block[batch.count] = blocks;
    adamw_kernel<<<blocks, kThreads, 0, stream>>>(batch, s);
    CUDA_CHECK_LAUNCH();
  }
}

void adamw_update(float* p, const float* g, float* m, float* v, size_t n, const AdamWHyper& h,
                  long t, bf16* p_bf16, cudaStream_t stream) {
  adamw_update({AdamWTensor{p, g, m, v, p_bf16, n}}, h, t, stream);
}

void sum_squares(double* out, const float* x, size_t n, double* work, cudaStream_t stream) {
  sum_squares_parts_kernel<<<kSumSquaresParts, 256, 0, stream>>>(work, x, n);
  CUDA_CHECK_LAUNCH();
  sum_parts_kernel<<<1, 1024, 0, stream>>>(out, work, kSumSquaresParts);
  CUDA_CHECK_LAUNCH();
}

void scale_inplace(float* x, float s, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(x, s, n);
  CUDA_CHECK_LAUNCH();
}

void add_inplace(float* a, const float* b, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(a, b, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace xwin::cuda
