// RoPE: one thread per rotated pair (token, head, i < HD/2). The backward is the same rotation
// with the angle negated (sign = -1). Positions come from the token index t, or from
// pos0[r] + i when pos0 is given (KV-cache decoding).
#include "kernels/cuda/rope.h"

namespace xwin::cuda {
namespace {

// x holds rows tokens of NH * HD values; row `tok` = r * n + i sits at position pos0[r] + i, or
// at i when pos0 is null (then n = T and r = b).
template <typename T>
__global__ void rope_kernel(T* x, const float* cos, const float* sin, const int* pos0, int rows,
                            int n, int NH, int HD, float sign) {
  const int half = HD / 2;
  const size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (idx >= (size_t)rows * NH * half) return;
  const int i = idx % half;
  const size_t tok = idx / half / NH;
  const int h = (idx / half) % NH;
  const int pos = (int)(tok % n) + (pos0 ? pos0[tok / n] : 0);
  const float c = cos[(size_t)pos * half + i], s = sin[(size_t)pos * half + i];
  T* v = x + (tok * NH + h) * HD;
  const float x1 = to_float(v[i]), x2 = to_float(v[i + half]);
  v[i] = from_float<T>(x1 * c - sign * x2 * s);
  v[i + half] = from_float<T>(x2 * c + sign * x1 * s);
}

template <typename T>
void rotate(T* x, const float* cos, const float* sin, const int* pos0, int R, int n, int NH, int HD,
            float sign, cudaStream_t stream) {
  const size_t pairs = (size_t)R * n * NH * (HD / 2);
  if (pairs == 0) return;
  rope_kernel<<<blocks_for(pairs, 256), 256, 0, stream>>>(x, cos, sin, pos0, R * n, n, NH, HD,
                                                          sign);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_upload_tables(float* cos, float* sin, const float* host_cos, const float* host_sin, int T,
                        int HD) {
  const size_t bytes = sizeof(float) * (size_t)T * (HD / 2);
  CUDA_CHECK(cudaMemcpy(cos, host_cos, bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(sin, host_sin, bytes, cudaMemcpyHostToDevice));
}

void rope_forward(float* x, const float* cos, const float* sin, int B, int T, int NH, int HD,
                  cudaStream_t stream) {
  rotate(x, cos, sin, nullptr, B, T, NH, HD, 1.0f, stream);
}
void rope_forward(bf16* x, const float* cos, const float* sin, int B, int T, int NH, int HD,
                  cudaStream_t stream) {
  rotate(x, cos, sin, nullptr, B, T, NH, HD, 1.0f, stream);
}
void rope_forward_at(float* x, const float* cos, const float* sin, const int* pos0, int R, int n,
                     int NH, int HD, cudaStream_t stream) {
  rotate(x, cos, sin, pos0, R, n, NH, HD, 1.0f, stream);
}
void rope_forward_at(bf16* x, const float* cos, const float* sin, const int* pos0, int R, int n,
                     int NH, int HD, cudaStream_t stream) {
  rotate(x, cos, sin, pos0, R, n, NH, HD, 1.0f, stream);
}
void rope_backward(float* dx, const float* cos, const float* sin, int B, int T, int NH, int HD,
                   cudaStream_t stream) {
  rotate(dx, cos, sin, nullptr, B, T, NH, HD, -1.0f, stream);
}
void rope_backward(bf16* dx, const float* cos, const float* sin, int B, int T, int NH, int HD,
                   cudaStream_t stream) {
  rotate(dx, cos, sin, nullptr, B, T, NH, HD, -1.0f, stream);
}

}  // namespace xwin::cuda
