// Value head: one block per row for the forward dot product (fp32 block reduction); the backward
// writes dh elementwise and reduces dw over rows with 32x32 blocks that own 32 channels each
// (thread row ty sums rows ty, ty+32, ..., then the 32 partials are added in order), and db in
// one block. No atomics, so the gradients do not change from run to run.
#include "kernels/cuda/value_head.h"

namespace xwin::cuda {
namespace {

template <typename T>
__global__ void value_head_forward_kernel(float* out, const T* h, const T* w, const T* b, int C) {
  __shared__ float shared[32];
  const size_t n = blockIdx.x;
  float s = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += to_float(h[n * C + c]) * to_float(w[c]);
  s = block_sum(s, shared);
  if (threadIdx.x == 0) out[n] = s + to_float(b[0]);
}

template <typename T>
__global__ void value_head_dh_kernel(T* dh, const float* dout, const T* w, int N, int C) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= (size_t)N * C) return;
  dh[i] = from_float<T>(dout[i / C] * to_float(w[i % C]));
}

// blockDim (32, 32): threadIdx.x picks the channel, threadIdx.y the row residue.
template <typename T>
__global__ void value_head_dw_kernel(float* dw, const float* dout, const T* h, int N, int C) {
  __shared__ float part[32][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float s = 0.f;
  if (c < C)
    for (int n = threadIdx.y; n < N; n += 32) s += dout[n] * to_float(h[(size_t)n * C + c]);
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float total = 0.f;
    for (int y = 0; y < 32; y++) total += part[y][threadIdx.x];
    dw[c] += total;
  }
}

__global__ void value_head_db_kernel(float* db, const float* dout, int N) {
  __shared__ float shared[32];
  float s = 0.f;
  for (int n = threadIdx.x; n < N; n += blockDim.x) s += dout[n];
  s = block_sum(s, shared);
  if (threadIdx.x == 0) db[0] += s;
}

template <typename T>
void forward(float* out, const T* h, const T* w, const T* b, int N, int C, cudaStream_t stream) {
  if (N == 0) return;
  value_head_forward_kernel<<<N, 256, 0, stream>>>(out, h, w, b, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward(T* dh, float* dw, float* db, const float* dout, const T* h, const T* w, int N, int C,
              cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  value_head_dh_kernel<<<blocks_for((size_t)N * C, 256), 256, 0, stream>>>(dh, dout, w, N, C);
  CUDA_CHECK_LAUNCH();
  value_head_dw_kernel<<<blocks_for(C, 32), dim3(32, 32), 0, stream>>>(dw, dout, h, N, C);
  CUDA_CHECK_LAUNCH();
  value_head_db_kernel<<<1, 1024, 0, stream>>>(db, dout, N);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void value_head_forward(float* out, const float* h, const float* w, const float* b, int N, int C,
                        cudaStream_t stream) {
  forward(out, h, w, b, N, C, stream);
}
void value_head_forward(float* out, const bf16* h, const bf16* w, const bf16* b, int N, int C,
                        cudaStream_t stream) {
  forward(out, h, w, b, N, C, stream);
}
void value_head_backward(float* dh, float* dw, float* db, const float* dout, const float* h,
                         const float* w, int N, int C, cudaStream_t stream) {
  backward(dh, dw, db, dout, h, w, N, C, stream);
}
void value_head_backward(bf16* dh, float* dw, float* db, const float* dout, const bf16* h,
                         const bf16* w, int N, int C, cudaStream_t stream) {
  backward(dh, dw, db, dout, h, w, N, C, stream);
}

}  // namespace xwin::cuda
