// Attention for incremental decoding against a KV cache. Row r holds n new queries at positions
// pos[r] .. pos[r]+n-1 whose keys/values are already written into cache slot slot[r]; query i
// attends to cache positions 0 .. pos[r]+i (causal). Layouts: q, out [R, n, NH, HD]; the cache
// [slots, Tmax, NKV, HD] for k and for v. One pass of online softmax over the keys per query.
#pragma once

namespace xwin::cpu {

void attention_cached(float* out, const float* q, const float* kcache, const float* vcache,
                      const int* slot, const int* pos, int R, int n, int NH, int NKV, int HD,
                      int Tmax);

}  // namespace xwin::cpu
