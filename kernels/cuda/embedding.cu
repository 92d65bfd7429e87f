// Embedding: a row gather forward; a scatter-add backward without atomics. A warp owns 32
// channels and one residue class of token ids (token % kGroups), so no two warps ever write the
// same dwte element; the warp scans the tokens 32 at a time and adds its matching rows in n order.
// Repeated tokens therefore neither race nor change the summation order.
#include "kernels/cuda/embedding.h"

namespace xwin::cuda {
namespace {

constexpr int kGroups = 32;

template <typename T>
__global__ void embedding_forward_kernel(T* out, const int32_t* tokens, const T* wte, int N,
                                         int C) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i >= (size_t)N * C) return;
  const size_t n = i / C, c = i % C;
  out[i] = wte[(size_t)tokens[n] * C + c];
}

// blockDim 32: one warp; blockIdx.x picks 32 channels, blockIdx.y the token residue class.
template <typename T>
__global__ void embedding_backward_kernel(float* dwte, const T* dout, const int32_t* tokens, int N,
                                          int C) {
  const int lane = threadIdx.x, c = blockIdx.x * 32 + lane, g = blockIdx.y;
  for (int n0 = 0; n0 < N; n0 += 32) {
    const int n = n0 + lane;
    const int tok = n < N ? tokens[n] : -1;
    unsigned mine = __ballot_sync(0xffffffffu, tok >= 0 && tok % kGroups == g);
    while (mine) {
      const int i = __ffs(mine) - 1;
      mine &= mine - 1;
      const int t = __shfl_sync(0xffffffffu, tok, i);
      if (c < C) dwte[(size_t)t * C + c] += to_float(dout[(size_t)(n0 + i) * C + c]);
    }
  }
}

template <typename T>
void forward(T* out, const int32_t* tokens, const T* wte, int N, int C, cudaStream_t stream) {
  const size_t n = (size_t)N * C;
  if (n == 0) return;
  embedding_forward_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(out, tokens, wte, N, C);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void backward(float* dwte, const T* dout, const int32_t* tokens, int N, int C,
              cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  const dim3 grid(blocks_for(C, 32), kGroups);
  embedding_backward_kernel<<<grid, 32, 0, stream>>>(dwte, dout, tokens, N, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C,
                       cudaStream_t stream) {
  forward(out, tokens, wte, N, C, stream);
}
void embedding_forward(bf16* out, const int32_t* tokens, const bf16* wte, int N, int C,
                       cudaStream_t stream) {
  forward(out, tokens, wte, N, C, stream);
}
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C,
                        cudaStream_t stream) {
  backward(dwte, dout, tokens, N, C, stream);
}
void embedding_backward(float* dwte, const bf16* dout, const int32_t* tokens, int N, int C,
                        cudaStream_t stream) {
  backward(dwte, dout, tokens, N, C, stream);
}

}  // namespace xwin::cuda
