// Linear layer without bias, PyTorch/HF weight layout: out[N, OC] = inp[N, IC] @ weight[OC, IC]^T.
// All three products go through OpenBLAS cblas_sgemm.
#pragma once

namespace xwin::cpu {

// out is overwritten.
void matmul_forward(float* out, const float* inp, const float* weight, int N, int IC, int OC);
// out += inp @ weight^T: a residual connection added in the product's epilogue.
void matmul_forward_acc(float* out, const float* inp, const float* weight, int N, int IC, int OC);
// dinp += dout @ weight (skipped when dinp is null); dweight += dout^T @ inp (skipped when null).
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int N, int IC, int OC);

}  // namespace xwin::cpu
