// Rotary position embedding on the device, as cpu::rope_* (HF rotate-half convention: pairs
// (i, i + HD/2), angle_i(pos) = pos * theta^(-2i/HD)). The cos/sin tables [T, HD/2] are fp32 on
// the device in both precisions; the bf16 overloads rotate bf16 activations in fp32.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/common.h"

namespace xwin::cuda {

// Copies tables made on the host by cpu::rope_tables (so both backends share one rounding) to
// the device buffers cos and sin, each [T, HD/2]. Synchronous: the host tables may go at return.
void rope_upload_tables(float* cos, float* sin, const float* host_cos, const float* host_sin, int T,
                        int HD);
// In place on x[B, T, NH, HD]; row t of the tables is used for position t.
void rope_forward(float* x, const float* cos, const float* sin, int B, int T, int NH, int HD,
                  cudaStream_t stream = 0);
void rope_forward(bf16* x, const float* cos, const float* sin, int B, int T, int NH, int HD,
                  cudaStream_t stream = 0);
// In place on x[R, n, NH, HD] where row r's token i sits at position pos0[r] + i (KV-cache
// decoding); pos0 [R] is on the device and the tables must cover every position used.
void rope_forward_at(float* x, const float* cos, const float* sin, const int* pos0, int R, int n,
                     int NH, int HD, cudaStream_t stream = 0);
void rope_forward_at(bf16* x, const float* cos, const float* sin, const int* pos0, int R, int n,
                     int NH, int HD, cudaStream_t stream = 0);
// In place on dx[B, T, NH, HD]: applies the inverse (transposed) rotation.
void rope_backward(float* dx, const float* cos, const float* sin, int B, int T, int NH, int HD,
                   cudaStream_t stream = 0);
void rope_backward(bf16* dx, const float* cos, const float* sin, int B, int T, int NH, int HD,
                   cudaStream_t stream = 0);

}  // namespace xwin::cuda
