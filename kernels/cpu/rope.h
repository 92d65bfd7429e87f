// Rotary position embedding, Llama/HF "rotate-half" convention: for head vector x of size HD,
// x1 = x[:HD/2], x2 = x[HD/2:], angle_i(pos) = pos * theta^(-2i/HD),
// out1 = x1*cos - x2*sin, out2 = x2*cos + x1*sin.
#pragma once

namespace xwin::cpu {

// cos/sin tables of shape [T, HD/2] for positions 0..T-1. inv_freq is rounded to float as
// Hugging Face computes it; the angle and its cos/sin are computed in double, then rounded.
void rope_tables(float* cos, float* sin, int T, int HD, float theta);
// In place on x[B, T, NH, HD]; row t of the tables is used for position t.
void rope_forward(float* x, const float* cos, const float* sin, int B, int T, int NH, int HD);
// One token's NH heads at position `pos`, from x into out (out == x rotates in place): the
// decode path rotates each new key straight into the KV cache.
void rope_token(float* out, const float* x, const float* cos, const float* sin, int pos, int NH,
                int HD);
// In place on dx[B, T, NH, HD]: applies the inverse (transposed) rotation.
void rope_backward(float* dx, const float* cos, const float* sin, int B, int T, int NH, int HD);

}  // namespace xwin::cpu
