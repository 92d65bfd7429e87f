// Shared CUDA plumbing for the kernels: error checks that throw xwin::Error naming the call, file
// and line, the bf16 type, fp32 <-> storage-type conversions and warp/block reductions.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "core/error.h"

namespace xwin::cuda {

using bf16 = __nv_bfloat16;

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess)
    fail("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") in ", call, " at ",
         file, ":", line);
}

inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail("cuBLAS error ", cublasGetStatusString(s), " in ", call, " at ", file, ":", line);
}

// Ceiling division for grid sizes.
inline unsigned blocks_for(size_t n, unsigned per_block) {
  return static_cast<unsigned>((n + per_block - 1) / per_block);
}

#ifdef __CUDACC__
__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(bf16 x) {
  return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) {
  return __float2bfloat16(x);
}

template <typename A>
__device__ __forceinline__ A warp_sum(A x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Sum over a block of up to 1024 threads (blockDim.x a multiple of 32); every thread gets the
// result. `shared` holds at least 32 values. The order is fixed, so the result is deterministic.
template <typename A>
__device__ A block_sum(A x, A* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < nwarps ? shared[lane] : A(0);
  return warp_sum(x);
}
__device__ inline float block_max(float x, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  x = warp_max(x);
  __syncthreads();
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < nwarps ? shared[lane] : -INFINITY;
  return warp_max(x);
}
#endif

}  // namespace xwin::cuda

#define CUDA_CHECK(call) ::xwin::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) ::xwin::cuda::check_cublas((call), #call, __FILE__, __LINE__)
// After every kernel launch: reports launch-configuration errors at once (cheap, no sync).
// Builds with XWIN_CUDA_SYNC_CHECK also wait for the kernel, so a fault names its launch.
#ifdef XWIN_CUDA_SYNC_CHECK
#define CUDA_CHECK_LAUNCH()              \
  do {                                   \
    CUDA_CHECK(cudaGetLastError());      \
    CUDA_CHECK(cudaDeviceSynchronize()); \
  } while (0)
#else
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif
