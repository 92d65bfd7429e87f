// RMSNorm forward/backward. One block per row for the row reductions (sum of squares, and
// dot = sum w*dy*x for dx = rstd * (w*dy - x * dot * rstd^2 / C)). dweight is a column reduction
// over all rows, done by a separate kernel whose 32x32 blocks own 32 channels each: thread row ty
// sums rows ty, ty+32, ... and the 32 partials are added in order, so no atomics are needed and
// the result does not change from run to run.
#include "kernels/cuda/rmsnorm.h"

namespace xwin::cuda {
namespace {

constexpr int kRowThreads = 256;

template <typename T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* inp, const T* weight, int C,
                                       float eps) {
  __shared__ float shared[32];
  const size_t row = blockIdx.x;
  const T* x = inp + row * C;
  T* o = out + row * C;
  float ss = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float xc = to_float(x[c]);
    ss += xc * xc;
  }
  ss = block_sum(ss, shared);
  const float r = 1.0f / sqrtf(ss / C + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    o[c] = from_float<T>(to_float(x[c]) * r * to_float(weight[c]));
}

template <typename T>
__global__ void rmsnorm_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* weight,
                                    const float* rstd, int C) {
  __shared__ float shared[32];
  const size_t row = blockIdx.x;
  const T* x = inp + row * C;
  const T* dy = dout + row * C;
  T* dx = dinp + row * C;
  const float r = rstd[row];
  float dot = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dot += to_float(weight[c]) * to_float(dy[c]) * to_float(x[c]);
  dot = block_sum(dot, shared);
  const float k = dot * r * r * r / C;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dx[c] = from_float<T>(to_float(dx[c]) + r * to_float(weight[c]) * to_float(dy[c]) -
                          k * to_float(x[c]));
}

// blockDim (32, 32): threadIdx.x picks the channel, threadIdx.y the row residue.
template <typename T>
__global__ void rmsnorm_dweight_kernel(float* dweight, const T* dout, const T* inp,
                                       const float* rstd, int N, int C) {
  __shared__ float part[32][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (c < C)
    for (int n = threadIdx.y; n < N; n += 32)
      s += to_float(dout[(size_t)n * C + c]) * to_float(inp[(size_t)n * C + c]) * rstd[n];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float total = 0.f;
    for (int y = 0; y < 32; y++) total += part[y][threadIdx.x];
    dweight[c] += total;
  }
}

template <typename T>
void forward(T* out, float* rstd, const T* inp, const T* weight, int N, int C, float eps,
             cudaStream_t stream) {
  if (N == 0) return;
  rmsnorm_forward_kernel<<<N, kRowThreads, 0, stream>>>(out, rstd, inp, weight, C, eps);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward(T* dinp, float* dweight, const T* dout, const T* inp, const T* weight,
              const float* rstd, int N, int C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  rmsnorm_dinp_kernel<<<N, kRowThreads, 0, stream>>>(dinp, dout, inp, weight, rstd, C);
  CUDA_CHECK_LAUNCH();
  rmsnorm_dweight_kernel<<<blocks_for(C, 32), dim3(32, 32), 0, stream>>>(dweight, dout, inp, rstd,
                                                                         N, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps, cudaStream_t stream) {
  forward(out, rstd, inp, weight, N, C, eps, stream);
}
void rmsnorm_forward(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C,
                     float eps, cudaStream_t stream) {
  forward(out, rstd, inp, weight, N, C, eps, stream);
}
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C, cudaStream_t stream) {
  backward(dinp, dweight, dout, inp, weight, rstd, N, C, stream);
}
void rmsnorm_backward(bf16* dinp, float* dweight, const bf16* dout, const bf16* inp,
                      const bf16* weight, const float* rstd, int N, int C, cudaStream_t stream) {
  backward(dinp, dweight, dout, inp, weight, rstd, N, C, stream);
}

}  // namespace xwin::cuda
