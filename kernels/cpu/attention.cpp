// Causal GQA attention with an online softmax (FlashAttention-2 on the CPU), its tile products
// done by sgemm.
//
// Forward: a tile of 64 queries walks the keys in blocks of 256, left to right, keeping per query
// a running max m, a running sum l = sum exp(s - m) and an unnormalised output acc = sum exp(s -
// m) v, which lives in the output rows. When a block raises the max, l and acc are rescaled by
// exp(m_old - m_new), so each row is exact after its diagonal block and only lse = m + log(l) is
// kept for the backward pass. Scores are [64, 256] per thread: O(T) memory, never T x T.
//
// Backward, one pass per (batch row, query head): P = exp(s - lse) is recomputed for one key tile
// of 64 against the strip of every query at or after it, and with D_i = dout_i . out_i (which
// equals sum_j P_ij dP_ij), dS = P * (dP - D). Five products per key tile: S = Q K_j^T,
// dP = dO V_j^T, dV_j = P^T dO, dK_j = dS^T Q, dQ += dS K_j. The task owns its dq rows, and its
// head's dk, dv; heads that share a KV head write theirs to scratch, summed afterwards in head
// order, so nothing races and the result does not depend on the thread count. The strips are
// [T, 64] per thread: O(T) memory.
//
// sgemm is called inside the OpenMP region, with OpenBLAS set to one thread meanwhile
// (BlasSingleThreaded, kernels/cpu/blas.h); its products run near the GEMM rate, where the
// hand-written tile loops this replaced reached a fifth of it.
#include "kernels/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/vexp.h"

namespace xwin::cpu {
namespace {

constexpr int kQueryTile = 64;  // forward: queries per task
constexpr int kKeyBlock = 256;  // forward: keys per online-softmax step
constexpr int kKeyTile = 64;    // backward: keys per step of the strip
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Dims {
  int B, T, NH, NKV, HD;
  int group = NH / NKV;
  long qs = static_cast<long>(NH) * HD, kvs = static_cast<long>(NKV) * HD;  // row strides
  float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  long q_at(int b, int t, int h) const { return (static_cast<long>(b) * T + t) * qs + h * HD; }
  long kv_at(int b, int t, int h) const { return (static_cast<long>(b) * T + t) * kvs + h * HD; }
  const float* lse_row(const float* lse, int b, int h) const {
    return lse + (static_cast<long>(b) * NH + h) * T;
  }
};

// One query tile (rows i0 .. i0+n) of head h: out rows and lse. S is [kQueryTile][kKeyBlock].
void forward_tile(float* out, float* lse, const float* q, const float* k, const float* v,
                  const Dims& dm, int b, int h, int i0, float* S) {
  const int HD = dm.HD, kh = h / dm.group, n = std::min(kQueryTile, dm.T - i0);
  const int kend = i0 + n;  // keys at or after kend are masked for every row of the tile
  float m[kQueryTile], l[kQueryTile];
  std::fill(m, m + n, kNegInf);
  std::fill(l, l + n, 0.0f);
  const float* qi = q + dm.q_at(b, i0, h);
  float* oi = out + dm.q_at(b, i0, h);
  for (int j0 = 0; j0 < kend; j0 += kKeyBlock) {
    const int nk = std::min(kKeyBlock, kend - j0);
    sgemm(false, true, n, nk, HD, dm.scale, qi, dm.qs, k + dm.kv_at(b, j0, kh), dm.kvs, 0.0f, S,
          kKeyBlock);  // scaled scores
    for (int r = 0; r < n; ++r) {
      float* s = S + static_cast<long>(r) * kKeyBlock;
      const int valid = std::clamp(i0 + r + 1 - j0, 0, nk);  // causal: keys j <= i
      float mx = m[r];
#pragma omp simd reduction(max : mx)
      for (int x = 0; x < valid; ++x) mx = std::max(mx, s[x]);  // a NaN gets through exp below
      const float c = exp_nonpos(m[r] - mx);  // 0 on the first block, where m = -inf
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int x = 0; x < valid; ++x) {
        s[x] = exp_nonpos(s[x] - mx);
        sum += s[x];
      }
      std::fill(s + valid, s + nk, 0.0f);
      l[r] = l[r] * c + sum;
      m[r] = mx;
      if (j0 > 0 && c != 1.0f) {
        float* o = oi + r * dm.qs;
#pragma omp simd
        for (int d = 0; d < HD; ++d) o[d] *= c;
      }
    }
    sgemm(false, false, n, HD, nk, 1.0f, S, kKeyBlock, v + dm.kv_at(b, j0, kh), dm.kvs,
          j0 == 0 ? 0.0f : 1.0f, oi, dm.qs);
  }
  float* lse_i = lse + (static_cast<long>(b) * dm.NH + h) * dm.T + i0;
  for (int r = 0; r < n; ++r) {
    const float inv = 1.0f / l[r];
    float* o = oi + r * dm.qs;
#pragma omp simd
    for (int d = 0; d < HD; ++d) o[d] *= inv;
    lse_i[r] = m[r] + std::log(l[r]);
  }
}

// Per-thread strips of the backward pass: S/P and dP/dS for [T, kKeyTile], and D for [T].
struct Strips {
  std::vector<float> buf;
  float *P, *dS, *D;
  explicit Strips(int T) : buf(2L * T * kKeyTile + T) {
    P = buf.data();
    dS = P + static_cast<long>(T) * kKeyTile;
    D = dS + static_cast<long>(T) * kKeyTile;
  }
};

// Every gradient of head h in batch row b: its dq rows, and its share of dk and dv written to
// dk_h, dv_h (row stride ld).
void backward_head(float* dq, float* dk_h, float* dv_h, long ld, const float* dout,
                   const float* out, const float* lse, const float* q, const float* k,
                   const float* v, const Dims& dm, int b, int h, Strips& w) {
  const int T = dm.T, HD = dm.HD, kh = h / dm.group;
  const float* lse_bh = dm.lse_row(lse, b, h);
  for (int i = 0; i < T; ++i) {
    const float *o = out + dm.q_at(b, i, h), *g = dout + dm.q_at(b, i, h);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int d = 0; d < HD; ++d) s += o[d] * g[d];
    w.D[i] = s;
  }
  for (int j0 = 0; j0 < T; j0 += kKeyTile) {
    const int nk = std::min(kKeyTile, T - j0), nq = T - j0;  // queries j0 .. T see this tile
    const float *qj = q + dm.q_at(b, j0, h), *doj = dout + dm.q_at(b, j0, h);
    const float *kj = k + dm.kv_at(b, j0, kh), *vj = v + dm.kv_at(b, j0, kh);
    sgemm(false, true, nq, nk, HD, dm.scale, qj, dm.qs, kj, dm.kvs, 0.0f, w.P, kKeyTile);  // s_ij
    sgemm(false, true, nq, nk, HD, 1.0f, doj, dm.qs, vj, dm.kvs, 0.0f, w.dS, kKeyTile);    // dP_ij
    for (int r = 0; r < nq; ++r) {
      const int i = j0 + r, valid = std::min(nk, r + 1);  // causal: keys j <= i
      const float lse_i = lse_bh[i], D_i = w.D[i], scale = dm.scale;
      float *p = w.P + static_cast<long>(r) * kKeyTile,
            *ds = w.dS + static_cast<long>(r) * kKeyTile;
#pragma omp simd
      for (int x = 0; x < valid; ++x) {
        const float px = exp_nonpos(p[x] - lse_i);
        p[x] = px;
        ds[x] = px * (ds[x] - D_i) * scale;
      }
      std::fill(p + valid, p + nk, 0.0f);
      std::fill(ds + valid, ds + nk, 0.0f);
    }
    sgemm(true, false, nk, HD, nq, 1.0f, w.P, kKeyTile, doj, dm.qs, 0.0f, dv_h + j0 * ld, ld);
    sgemm(true, false, nk, HD, nq, 1.0f, w.dS, kKeyTile, qj, dm.qs, 0.0f, dk_h + j0 * ld, ld);
    sgemm(false, false, nq, HD, nk, 1.0f, w.dS, kKeyTile, kj, dm.kvs, j0 == 0 ? 0.0f : 1.0f,
          dq + dm.q_at(b, j0, h), dm.qs);
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int B, int T, int NH, int NKV, int HD) {
  const Dims dm{B, T, NH, NKV, HD};
  const int tiles = (T + kQueryTile - 1) / kQueryTile;
  const BlasSingleThreaded blas1;
#pragma omp parallel num_threads(blas1.threads())
  {
    std::vector<float> S(static_cast<size_t>(kQueryTile) * kKeyBlock);
    // Tiles outermost, costliest (last) first, so the dynamic schedule ends on short tasks.
#pragma omp for collapse(3) schedule(dynamic)
    for (int t = tiles - 1; t >= 0; --t)
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < NH; ++h)
          forward_tile(out, lse, q, k, v, dm, b, h, t * kQueryTile, S.data());
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int B,
                        int T, int NH, int NKV, int HD) {
  const Dims dm{B, T, NH, NKV, HD};
  // Without sharing (NH == NKV) a head writes dk, dv in place; otherwise per query head, in
  // scratch laid out like q, summed over each group below.
  const bool shared = dm.group > 1;
  std::vector<float> scratch(shared ? 2 * static_cast<size_t>(B) * T * dm.qs : 0);
  float *dks = scratch.data(), *dvs = shared ? dks + static_cast<size_t>(B) * T * dm.qs : nullptr;
  const BlasSingleThreaded blas1;
#pragma omp parallel num_threads(blas1.threads())
  {
    Strips w(T);
#pragma omp for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h) {
        float* dk_h = shared ? dks + dm.q_at(b, 0, h) : dk + dm.kv_at(b, 0, h);
        float* dv_h = shared ? dvs + dm.q_at(b, 0, h) : dv + dm.kv_at(b, 0, h);
        backward_head(dq, dk_h, dv_h, shared ? dm.qs : dm.kvs, dout, out, lse, q, k, v, dm, b, h,
                      w);
      }
    if (shared) {
#pragma omp for collapse(2)
      for (long bt = 0; bt < static_cast<long>(B) * T; ++bt)
        for (int kh = 0; kh < NKV; ++kh) {
          float *dkr = dk + bt * dm.kvs + kh * HD, *dvr = dv + bt * dm.kvs + kh * HD;
          const float *sk = dks + bt * dm.qs + kh * dm.group * HD,
                      *sv = dvs + bt * dm.qs + kh * dm.group * HD;
          std::copy(sk, sk + HD, dkr);
          std::copy(sv, sv + HD, dvr);
          for (int g = 1; g < dm.group; ++g)
#pragma omp simd
            for (int d = 0; d < HD; ++d) {
              dkr[d] += sk[g * HD + d];
              dvr[d] += sv[g * HD + d];
            }
        }
    }
  }
}

}  // namespace xwin::cpu
