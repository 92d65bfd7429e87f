// SwiGLU: out = silu(g) * u; d/dg silu(g) = s * (1 + g * (1 - s)) with s = sigmoid(g). The
// sigmoid is written with e = exp(-|g|) <= 1, as on the CPU, so it never overflows.
#include "kernels/cuda/swiglu.h"

namespace xwin::cuda {
namespace {

__device__ __forceinline__ float sigmoid(float g) {
  const float e = expf(-fabsf(g));
  const float r = 1.0f / (1.0f + e);
  return g >= 0.f ? r : e * r;
}

template <typename T>
__global__ void swiglu_forward_kernel(T* out, const T* gate, const T* up, size_t n) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = to_float(gate[i]);
  out[i] = from_float<T>(g * sigmoid(g) * to_float(up[i]));
}

template <typename T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up,
                                       size_t n) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = to_float(gate[i]), s = sigmoid(g), d = to_float(dout[i]);
  dup[i] = from_float<T>(d * g * s);
  dgate[i] = from_float<T>(d * to_float(up[i]) * s * (1.0f + g * (1.0f - s)));
}

template <typename T>
void forward(T* out, const T* gate, const T* up, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  swiglu_forward_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(out, gate, up, n);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward(T* dgate, T* dup, const T* dout, const T* gate, const T* up, size_t n,
              cudaStream_t stream) {
  if (n == 0) return;
  swiglu_backward_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(dgate, dup, dout, gate, up, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, size_t n, cudaStream_t stream) {
  forward(out, gate, up, n, stream);
}
void swiglu_forward(bf16* out, const bf16* gate, const bf16* up, size_t n, cudaStream_t stream) {
  forward(out, gate, up, n, stream);
}
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, size_t n, cudaStream_t stream) {
  backward(dgate, dup, dout, gate, up, n, stream);
}
void swiglu_backward(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up,
                     size_t n, cudaStream_t stream) {
  backward(dgate, dup, dout, gate, up, n, stream);
}

}  // namespace xwin::cuda
