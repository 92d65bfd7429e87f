// Causal GQA attention with an online softmax (FlashAttention-2 on the CPU).
//
// Forward: a tile of 64 queries walks the key tiles left to right keeping, per query, a running
// max m, a running sum l = sum exp(s - m) and an unnormalised output acc = sum exp(s - m) v.
// When a tile raises the max, l and acc are rescaled by exp(m_old - m_new), so each row is exact
// after the diagonal tile and only lse = m + log(l) is kept for the backward pass.
//
// Backward: P = exp(s - lse) is recomputed tile by tile and, with D_i = dout_i . out_i (which
// equals sum_j P_ij dP_ij), dS = P * (dP - D). It runs as two passes that each own what they
// write, so nothing races and nothing is reduced: pass one over (b, kv head, key tile) sums dk
// and dv over every query head of the group; pass two over (b, head, query tile) sums dq. The
// price is computing s, P and dP twice; the gain is parallelism over tiles, not just heads.
//
// Layout trick: every tile is held transposed, [HD][64] or [64][64], with the 64 queries (or
// keys) of the tile as the contiguous lanes. Then every product is a sum of broadcast-times-row
// updates into 64 accumulators that stay in registers (accumulate_row), and the softmax runs
// across lanes; no inner loop ends in a horizontal reduction. Per-thread memory is a few
// [HD][64] and [64][64] tiles: O(T) overall, never T x T.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/vexp.h"

namespace xwin::cpu {
namespace {

constexpr int kTile = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// c[0:64] += sum_{k < K} a[k * sa] * B[k][0:64], with B rows 64 apart. Out of line on purpose:
// on its own gcc keeps the 64 sums in registers; inlined into the tile loops it spills them.
__attribute__((noinline)) void accumulate_row(float* __restrict c, const float* a, long sa,
                                              const float* __restrict B, int K) {
  float acc[kTile];
  std::copy(c, c + kTile, acc);
  for (int k = 0; k < K; ++k) {
    const float ak = a[k * sa];
#pragma omp simd
    for (int x = 0; x < kTile; ++x) acc[x] += ak * B[k * kTile + x];
  }
  std::copy(acc, acc + kTile, c);
}

// dst[k][0:64] = sum_d a_k[d] * B[d][0:64] for rows a_k = a + k * sa, k < K.
inline void rows_times(float* dst, const float* a, long sa, int K, const float* B, int HD) {
  for (int k = 0; k < K; ++k) {
    std::fill(dst + k * kTile, dst + (k + 1) * kTile, 0.0f);
    accumulate_row(dst + k * kTile, a + k * sa, 1, B, HD);
  }
}

// Tt[d][r] = rows[r][d] for r < n (rows sa apart), zero-padded to 64 lanes.
inline void load_transposed(float* Tt, const float* rows, long sa, int n, int HD) {
  std::fill(Tt, Tt + static_cast<long>(HD) * kTile, 0.0f);
  for (int r = 0; r < n; ++r)
    for (int d = 0; d < HD; ++d) Tt[d * kTile + r] = rows[r * sa + d];
}

// rows[r][d] = Tt[d][r] for r < n.
inline void store_transposed(float* rows, long sa, const float* Tt, int n, int HD) {
  for (int r = 0; r < n; ++r)
    for (int d = 0; d < HD; ++d) rows[r * sa + d] = Tt[d * kTile + r];
}

inline float dot(const float* a, const float* b, int n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

// Per-thread tiles, allocated once per call: four [HD][64] and two [64][64].
struct Tiles {
  std::vector<float> buf;
  float *a, *b, *acc1, *acc2, *s1, *s2;
  explicit Tiles(int HD) : buf(4L * HD * kTile + 2L * kTile * kTile) {
    const long t = static_cast<long>(HD) * kTile;
    a = buf.data();
    b = a + t;
    acc1 = b + t;
    acc2 = acc1 + t;
    s1 = acc2 + t;
    s2 = s1 + kTile * kTile;
  }
};

struct Dims {
  int B, T, NH, NKV, HD;
  int group = NH / NKV, tiles = (T + kTile - 1) / kTile;
  long qs = static_cast<long>(NH) * HD, kvs = static_cast<long>(NKV) * HD;  // row strides
  float scale = 1.0f / std::sqrt(static_cast<float>(HD));
  long q_at(int b, int t, int h) const { return (static_cast<long>(b) * T + t) * qs + h * HD; }
  long kv_at(int b, int t, int h) const { return (static_cast<long>(b) * T + t) * kvs + h * HD; }
};

// One query tile (rows i0 .. i0+n) of head h: out rows and lse.
void forward_tile(float* out, float* lse, const float* q, const float* k, const float* v,
                  const Dims& dm, int b, int h, int i0, Tiles& w) {
  const int HD = dm.HD, kh = h / dm.group, n = std::min(kTile, dm.T - i0);
  float *Qt = w.a, *Ot = w.acc1, *St = w.s1;
  float m[kTile], l[kTile], c[kTile];
  load_transposed(Qt, q + dm.q_at(b, i0, h), dm.qs, n, HD);
  std::fill(Ot, Ot + static_cast<long>(HD) * kTile, 0.0f);
  std::fill(m, m + kTile, kNegInf);
  std::fill(l, l + kTile, 0.0f);
  for (int j0 = 0; j0 <= i0; j0 += kTile) {
    const int nk = std::min(kTile, dm.T - j0);
    const float* kj = k + dm.kv_at(b, j0, kh);
    const float* vj = v + dm.kv_at(b, j0, kh);
    rows_times(St, kj, dm.kvs, nk, Qt, HD);  // St[j][r] = k_j . q_r
    float m_new[kTile];
    std::copy(m, m + kTile, m_new);
    for (int j = 0; j < nk; ++j) {
      float* s = St + j * kTile;
#pragma omp simd
      for (int r = 0; r < kTile; ++r) {
        const float mask = j0 + j > i0 + r ? kNegInf : 0.0f;  // causal
        s[r] = s[r] * dm.scale + mask;
        m_new[r] = std::max(m_new[r], s[r]);
      }
    }
#pragma omp simd
    for (int r = 0; r < kTile; ++r) {
      c[r] = exp_nonpos(m[r] - m_new[r]);  // 0 on the first tile, where m = -inf
      l[r] *= c[r];
    }
    for (int j = 0; j < nk; ++j) {
      float* s = St + j * kTile;
#pragma omp simd
      for (int r = 0; r < kTile; ++r) {
        s[r] = exp_nonpos(s[r] - m_new[r]);
        l[r] += s[r];
      }
    }
    for (int d = 0; d < HD; ++d) {
      float* o = Ot + d * kTile;
#pragma omp simd
      for (int r = 0; r < kTile; ++r) o[r] *= c[r];
      accumulate_row(o, vj + d, dm.kvs, St, nk);  // Ot[d][r] += sum_j v_j[d] P[j][r]
    }
    std::copy(m_new, m_new + kTile, m);
  }
  for (int d = 0; d < HD; ++d)
    for (int r = 0; r < kTile; ++r) Ot[d * kTile + r] /= l[r];
  store_transposed(out + dm.q_at(b, i0, h), dm.qs, Ot, n, HD);
  float* lse_row = lse + (static_cast<long>(b) * dm.NH + h) * dm.T + i0;
  for (int r = 0; r < n; ++r) lse_row[r] = m[r] + std::log(l[r]);
}

// One row of a tile, in place: s (raw scores) becomes P = exp(s * scale - lse), 0 where masked,
// and dp becomes dS * scale = P (dP - D) scale. lse(x), D(x) and masked(x) describe lane x.
template <typename Lse, typename Dv, typename Masked>
inline void softmax_grad_row(float* s, float* dp, float scale, Lse lse, Dv D, Masked masked) {
#pragma omp simd
  for (int x = 0; x < kTile; ++x) {
    const float mask = masked(x) ? kNegInf : 0.0f;
    const float p = exp_nonpos(s[x] * scale - lse(x) + mask);
    s[x] = p;
    dp[x] = p * (dp[x] - D(x)) * scale;
  }
}

// Pass one: dk, dv of key tile j0 (of kv head kh) from every query at or after it.
void backward_kv_tile(float* dk, float* dv, const float* dout, const float* out, const float* lse,
                      const float* q, const float* k, const float* v, const Dims& dm, int b, int kh,
                      int j0, Tiles& w) {
  const int HD = dm.HD, nk = std::min(kTile, dm.T - j0);
  float *Kt = w.a, *Vt = w.b, *dKt = w.acc1, *dVt = w.acc2, *P = w.s1, *dS = w.s2;
  load_transposed(Kt, k + dm.kv_at(b, j0, kh), dm.kvs, nk, HD);
  load_transposed(Vt, v + dm.kv_at(b, j0, kh), dm.kvs, nk, HD);
  std::fill(dKt, dKt + static_cast<long>(HD) * kTile, 0.0f);
  std::fill(dVt, dVt + static_cast<long>(HD) * kTile, 0.0f);
  for (int h = kh * dm.group; h < (kh + 1) * dm.group; ++h) {
    const float* lse_bh = lse + (static_cast<long>(b) * dm.NH + h) * dm.T;
    for (int i0 = j0; i0 < dm.T; i0 += kTile) {
      const int n = std::min(kTile, dm.T - i0);
      const float* qi = q + dm.q_at(b, i0, h);
      const float* doi = dout + dm.q_at(b, i0, h);
      rows_times(P, qi, dm.qs, n, Kt, HD);    // P[i][j] = q_i . k_j, for now
      rows_times(dS, doi, dm.qs, n, Vt, HD);  // dS[i][j] = do_i . v_j, for now
      for (int r = 0; r < n; ++r) {
        const int i = i0 + r;
        const float lse_i = lse_bh[i], D_i = dot(doi + r * dm.qs, out + dm.q_at(b, i, h), HD);
        softmax_grad_row(
            P + r * kTile, dS + r * kTile, dm.scale, [&](int) { return lse_i; },
            [&](int) { return D_i; }, [&](int x) { return j0 + x > i; });
      }
      for (int d = 0; d < HD; ++d) {
        accumulate_row(dVt + d * kTile, doi + d, dm.qs, P, n);  // sum_i do_i[d] P[i][j]
        accumulate_row(dKt + d * kTile, qi + d, dm.qs, dS, n);  // sum_i q_i[d] dS[i][j]
      }
    }
  }
  store_transposed(dk + dm.kv_at(b, j0, kh), dm.kvs, dKt, nk, HD);
  store_transposed(dv + dm.kv_at(b, j0, kh), dm.kvs, dVt, nk, HD);
}

// Pass two: dq of query tile i0 of head h from every key up to the diagonal.
void backward_q_tile(float* dq, const float* dout, const float* out, const float* lse,
                     const float* q, const float* k, const float* v, const Dims& dm, int b, int h,
                     int i0, Tiles& w) {
  const int HD = dm.HD, kh = h / dm.group, n = std::min(kTile, dm.T - i0);
  float *Qt = w.a, *dOt = w.b, *dQt = w.acc1, *St = w.s1, *dSt = w.s2;
  load_transposed(Qt, q + dm.q_at(b, i0, h), dm.qs, n, HD);
  load_transposed(dOt, dout + dm.q_at(b, i0, h), dm.qs, n, HD);
  std::fill(dQt, dQt + static_cast<long>(HD) * kTile, 0.0f);
  float lse_r[kTile] = {}, D[kTile] = {};
  const float* lse_bh = lse + (static_cast<long>(b) * dm.NH + h) * dm.T;
  for (int r = 0; r < n; ++r) {
    lse_r[r] = lse_bh[i0 + r];
    D[r] = dot(dout + dm.q_at(b, i0 + r, h), out + dm.q_at(b, i0 + r, h), HD);
  }
  for (int j0 = 0; j0 <= i0; j0 += kTile) {
    const int nk = std::min(kTile, dm.T - j0);
    const float* kj = k + dm.kv_at(b, j0, kh);
    rows_times(St, kj, dm.kvs, nk, Qt, HD);                         // k_j . q_r
    rows_times(dSt, v + dm.kv_at(b, j0, kh), dm.kvs, nk, dOt, HD);  // v_j . do_r
    for (int j = 0; j < nk; ++j)
      softmax_grad_row(
          St + j * kTile, dSt + j * kTile, dm.scale, [&](int r) { return lse_r[r]; },
          [&](int r) { return D[r]; }, [&](int r) { return j0 + j > i0 + r; });
    for (int d = 0; d < HD; ++d)
      accumulate_row(dQt + d * kTile, kj + d, dm.kvs, dSt, nk);  // sum_j k_j[d] dS[j][r]
  }
  store_transposed(dq + dm.q_at(b, i0, h), dm.qs, dQt, n, HD);
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int B, int T, int NH, int NKV, int HD) {
  const Dims dm{B, T, NH, NKV, HD};
#pragma omp parallel
  {
    Tiles w(HD);
    // Tiles outermost, costliest (last) first, so the dynamic schedule ends on short tasks.
#pragma omp for collapse(3) schedule(dynamic)
    for (int t = dm.tiles - 1; t >= 0; --t)
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < NH; ++h) forward_tile(out, lse, q, k, v, dm, b, h, t * kTile, w);
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int B,
                        int T, int NH, int NKV, int HD) {
  const Dims dm{B, T, NH, NKV, HD};
#pragma omp parallel
  {
    Tiles w(HD);
    // Costliest tiles first, as in the forward: early key tiles see the most queries.
#pragma omp for collapse(3) schedule(dynamic)
    for (int t = 0; t < dm.tiles; ++t)
      for (int b = 0; b < B; ++b)
        for (int kh = 0; kh < NKV; ++kh)
          backward_kv_tile(dk, dv, dout, out, lse, q, k, v, dm, b, kh, t * kTile, w);
#pragma omp for collapse(3) schedule(dynamic)
    for (int t = dm.tiles - 1; t >= 0; --t)
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < NH; ++h)
          backward_q_tile(dq, dout, out, lse, q, k, v, dm, b, h, t * kTile, w);
  }
}

}  // namespace xwin::cpu
