// Linear layers as three sgemm calls on row-major data. OpenBLAS runs its own thread pool; we
// call it from outside OpenMP regions only.
#include "kernels/cpu/matmul.h"

#include <cblas.h>

namespace xwin::cpu {

void matmul_forward(float* out, const float* inp, const float* weight, int N, int IC, int OC) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f,
              out, OC);
}

void matmul_forward_acc(float* out, const float* inp, const float* weight, int N, int IC, int OC) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, weight, IC, 1.0f,
              out, OC);
}

void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int N, int IC, int OC) {
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight, IC,
                1.0f, dinp, IC);
  if (dweight)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f,
                dweight, IC);
}

}  // namespace xwin::cpu
