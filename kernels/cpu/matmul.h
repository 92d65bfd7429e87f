// Linear layer without bias, PyTorch/HF weight layout: out[N, OC] = inp[N, IC] @ weight[OC, IC]^T.
// All three products go through OpenBLAS sgemm, threaded by rows (sgemm_rows, kernels/cpu/blas.h).
//
// Inference (KV-cache decoding) also has its own forward on weights packed once: panels of 16
// output channels, [ceil(OC / 16)][IC][16] (zero-padded), so that a register kernel reads each
// panel as one contiguous stream; sgemm would re-pack the weights on every call, a pass over
// all of them per decode step.
#pragma once
#include <cstddef>

namespace xwin::cpu {

// out is overwritten.
void matmul_forward(float* out, const float* inp, const float* weight, int N, int IC, int OC);
// out += inp @ weight^T: a residual connection added in the product's epilogue.
void matmul_forward_acc(float* out, const float* inp, const float* weight, int N, int IC, int OC);
// dinp += dout @ weight (skipped when dinp is null); dweight += dout^T @ inp (skipped when null).
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int N, int IC, int OC);

// Floats of weight[OC, IC] packed into panels.
size_t matmul_packed_size(int IC, int OC);
void matmul_pack(float* packed, const float* weight, int IC, int OC);
// out = inp @ weight^T (out += with accumulate) from the packed weights. Each output is one
// in-order sum over IC, so a row's result does not depend on N or on the thread count.
void matmul_forward_packed(float* out, const float* inp, const float* packed, int N, int IC, int OC,
                           bool accumulate);

}  // namespace xwin::cpu
