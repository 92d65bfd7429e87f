// GPU test helpers: device buffers, bf16 rounding on the host, and the closeness check of the
// unit tests (tests/unit/check.h): a result passes at tolerance tol when both its norm-relative
// error ||got - want|| / ||want|| and its max-relative error max|got - want| / max|want| are at
// most tol. The reference ("want") is always the CPU kernel of kernels/cpu.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../unit/check.h"

namespace xwin::test {

constexpr double kTolF32 = 1e-5;   // fp32 kernels against the fp32 CPU kernels
constexpr double kTolBf16 = 1e-2;  // bf16 kernels against the CPU kernels on bf16-rounded inputs

// Host-side float <-> bf16 bits, round to nearest even (the rounding of __float2bfloat16).
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
// x rounded to bf16 precision, still as floats (the CPU reference's inputs in bf16 tests).
inline std::vector<float> round_bf16(std::vector<float> x) {
  for (auto& e : x) e = bf16_value(bf16_bits(e));
  return x;
}

// A device array of n elements of T (float, int, double or __nv_bfloat16). Uploads and
// downloads go through float vectors for bf16, converting on the host.
template <typename T>
class Dev {
 public:
  explicit Dev(size_t n) : n_(n) {
    if (cudaMalloc(&p_, sizeof(T) * (n ? n : 1)) != cudaSuccess) throw std::bad_alloc();
    cudaMemset(p_, 0, sizeof(T) * (n ? n : 1));
  }
  template <typename H>
  explicit Dev(const std::vector<H>& h) : Dev(h.size()) {
    upload(h);
  }
  ~Dev() { cudaFree(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  T* get() const { return p_; }
  operator T*() const { return p_; }
  size_t size() const { return n_; }

  template <typename H>
  void upload(const std::vector<H>& h) {
    std::vector<T> raw(h.size());
    for (size_t i = 0; i < h.size(); i++) raw[i] = convert(h[i]);
    cudaMemcpy(p_, raw.data(), sizeof(T) * h.size(), cudaMemcpyHostToDevice);
  }
  // Waits for the device, then returns the values as floats (or the element type for ints).
  std::vector<float> floats() const {
    std::vector<T> raw(n_);
    cudaDeviceSynchronize();
    cudaMemcpy(raw.data(), p_, sizeof(T) * n_, cudaMemcpyDeviceToHost);
    std::vector<float> f(n_);
    for (size_t i = 0; i < n_; i++) f[i] = back(raw[i]);
    return f;
  }

 private:
  template <typename H>
  static T convert(H x) {
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
      __nv_bfloat16_raw r;
      r.x = bf16_bits(static_cast<float>(x));
      return __nv_bfloat16(r);
    } else {
      return static_cast<T>(x);
    }
  }
  static float back(T x) {
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
      return bf16_value(static_cast<__nv_bfloat16_raw>(x).x);
    } else {
      return static_cast<float>(x);
    }
  }
  T* p_ = nullptr;
  size_t n_;
};

// Closeness of a device result (as floats) to a float CPU reference.
inline void expect_near_cpu(const std::vector<float>& got, const std::vector<float>& want,
                            double tol, const std::string& what) {
  expect_close(got, to_double(want), tol, what);
}

// Checks that every launch so far ran without a device fault.
inline void expect_no_cuda_error() {
  const cudaError_t e = cudaDeviceSynchronize();
  EXPECT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

}  // namespace xwin::test
