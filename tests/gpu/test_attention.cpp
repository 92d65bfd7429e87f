// Flash attention on the GPU against cpu::attention_* for GQA groups 1 to 4, lengths that are not
// multiples of the 64-row tiles (and shorter than one tile), and head sizes 16 to 128 (the
// kernel's maximum). The backward is fed the CPU's out and lse, so it is checked on its own; in
// bf16 the CPU runs on the bf16-rounded q, k, v, dout and out.
#include <cuda_runtime.h>

#include <ostream>
#include <random>
#include <string>

#include "gpu_check.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"

namespace xwin::test {
namespace {

using cuda::bf16;

struct Shape {
  int B, T, NH, NKV, HD;
};
std::string name(const testing::TestParamInfo<Shape>& info) {
  const Shape& s = info.param;
  return "B" + std::to_string(s.B) + "_T" + std::to_string(s.T) + "_NH" + std::to_string(s.NH) +
         "_NKV" + std::to_string(s.NKV) + "_HD" + std::to_string(s.HD);
}
void PrintTo(const Shape& s, std::ostream* os) {
  *os << s.B << "x" << s.T << " NH " << s.NH << " NKV " << s.NKV << " HD " << s.HD;
}

class GpuAttention : public testing::TestWithParam<Shape> {};

template <typename T>
void attention_case(const Shape& s, double tol, const char* tag) {
  const bool half = std::is_same<T, bf16>::value;
  std::mt19937 g(7 + s.T);
  const size_t nq = (size_t)s.B * s.T * s.NH * s.HD, nkv = (size_t)s.B * s.T * s.NKV * s.HD;
  const size_t nl = (size_t)s.B * s.NH * s.T;
  auto q = randn(nq, g, 1.5f), k = randn(nkv, g), v = randn(nkv, g), dout = randn(nq, g);
  if (half) q = round_bf16(q), k = round_bf16(k), v = round_bf16(v), dout = round_bf16(dout);
  std::vector<float> out(nq), lse(nl), dq(nq), dk(nkv), dv(nkv);
  cpu::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), s.B, s.T, s.NH,
                         s.NKV, s.HD);
  Dev<T> d_q(q), d_k(k), d_v(v), d_out(nq), d_dout(dout), d_dq(nq), d_dk(nkv), d_dv(nkv);
  Dev<float> d_lse(nl);
  cuda::attention_forward(d_out.get(), d_lse, d_q.get(), d_k.get(), d_v.get(), s.B, s.T, s.NH,
                          s.NKV, s.HD);
  expect_near_cpu(d_out.floats(), out, tol, std::string(tag) + " attention out");
  expect_near_cpu(d_lse.floats(), lse, tol, std::string(tag) + " attention lse");

  if (half) out = round_bf16(out);
  d_out.upload(out);
  d_lse.upload(lse);
  cpu::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), out.data(), lse.data(),
                          q.data(), k.data(), v.data(), s.B, s.T, s.NH, s.NKV, s.HD);
  cuda::attention_backward(d_dq.get(), d_dk.get(), d_dv.get(), d_dout.get(), d_out.get(), d_lse,
                           d_q.get(), d_k.get(), d_v.get(), s.B, s.T, s.NH, s.NKV, s.HD);
  expect_near_cpu(d_dq.floats(), dq, tol, std::string(tag) + " attention dq");
  expect_near_cpu(d_dk.floats(), dk, tol, std::string(tag) + " attention dk");
  expect_near_cpu(d_dv.floats(), dv, tol, std::string(tag) + " attention dv");
  expect_no_cuda_error();
}

TEST_P(GpuAttention, Fp32) {
  attention_case<float>(GetParam(), kTolF32, "fp32");
}
TEST_P(GpuAttention, Bf16) {
  attention_case<bf16>(GetParam(), kTolBf16, "bf16");
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuAttention,
                         testing::Values(Shape{2, 77, 4, 2, 32}, Shape{1, 130, 6, 2, 64},
                                         Shape{1, 65, 2, 2, 128}, Shape{2, 19, 4, 1, 16},
                                         Shape{1, 200, 8, 2, 40}),
                         name);

}  // namespace
}  // namespace xwin::test
