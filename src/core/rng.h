// Counter-based random numbers: every value is a pure function of (seed, stream, index), so
// initialisation, data order and sampling do not depend on how work is split across ranks
// (DESIGN.md invariant 1) and a resumed run draws exactly what the uninterrupted one would.
#pragma once
#include <cmath>
#include <cstdint>

namespace xwin {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t rng_u64(uint64_t seed, uint64_t stream, uint64_t index) {
  return splitmix64(splitmix64(seed ^ splitmix64(stream)) + index);
}

// Uniform in (0, 1): 53 random bits, never exactly 0 (safe for log).
inline double rng_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return (static_cast<double>(rng_u64(seed, stream, index) >> 11) + 0.5) * 0x1.0p-53;
}

// Standard normal via Box-Muller on the counter pair (2i, 2i+1).
inline double rng_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  double u1 = rng_uniform(seed, stream, 2 * index);
  double u2 = rng_uniform(seed, stream, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Stable 64-bit hash of a string, used to derive per-tensor streams from names.
inline uint64_t hash_name(const char* s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; ++s) h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
  return h;
}

}  // namespace xwin
