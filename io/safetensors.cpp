#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; xwin reads it in place");

namespace xwin::safetensors {

namespace fs = std::filesystem;

// The safetensors library refuses headers above 100 MB; a larger value means a damaged file.
static const uint64_t kMaxHeader = 100u << 20;

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

size_t dtype_size(DType d) {
  return d == DType::F32 ? 4 : 2;
}

// Element size of every dtype the format defines (0: unknown).
static size_t any_dtype_size(const std::string& d) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
      {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

static size_t numel(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= (size_t)d;
  return n;
}

// ---------------------------------------------------------------------------- conversions

static uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in fp32
    const float v = std::ldexp((float)mant, -24);
    return float_of(bits_of(v) | sign);
  }
  if (exp == 31) return float_of(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

float bf16_to_f32(uint16_t b) {
  return float_of((uint32_t)b << 16);
}

// Rounds x / 2^shift to nearest, ties to even.
static uint32_t round_shift(uint32_t x, int shift) {
  const uint32_t r = x >> shift, rem = x & ((1u << shift) - 1), half = 1u << (shift - 1);
  return r + (rem > half || (rem == half && (r & 1)));
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = bits_of(f), sign = (u >> 16) & 0x8000, a = u & 0x7fffffff;
  if (a > 0x7f800000) {  // NaN: keep the payload's top bits, and keep it a NaN
    const uint32_t m = (a >> 13) & 0x3ff;
    return (uint16_t)(sign | 0x7c00 | (m ? m : 0x200));
  }
  if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00);  // >= 65520 rounds to inf
  if (a < 0x38800000) {  // below 2^-14: a half subnormal, round(|f| * 2^24)
    const int shift = 126 - (int)(a >> 23);
    if (shift > 24) return (uint16_t)sign;
    return (uint16_t)(sign | round_shift((a & 0x7fffff) | 0x800000, shift));
  }
  // Normal: rebias the exponent; a mantissa carry correctly bumps the exponent.
  return (uint16_t)(sign | round_shift(a - (112u << 23), 13));
}

uint16_t f32_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffff) > 0x7f800000) {
    const uint32_t r = u >> 16;
    return (uint16_t)((r & 0x7f) ? r : r | 0x40);
  }
  return (uint16_t)round_shift(u, 16);
}

// ---------------------------------------------------------------------------- reading

File::File(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  require(fd >= 0, path, ": cannot open (", std::strerror(errno), "); check the path");
  struct stat st;
  const bool stat_ok = ::fstat(fd, &st) == 0;
  size_ = stat_ok ? (size_t)st.st_size : 0;
  if (stat_ok && size_ >= 8) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    map_ = p == MAP_FAILED ? nullptr : (const uint8_t*)p;
  }
  ::close(fd);
  require(stat_ok, path, ": cannot stat");
  require(size_ >= 8, path, ": truncated safetensors file (", size_,
          " bytes, shorter than the 8-byte header length)");
  require(map_ != nullptr, path, ": cannot memory-map (", std::strerror(errno), ")");

  uint64_t n = 0;
  std::memcpy(&n, map_, 8);
  require(n <= kMaxHeader, path, ": not a safetensors file (header length ", n,
          " bytes is implausible)");
  require(n <= size_ - 8, path, ": truncated safetensors file: the header declares ", n,
          " bytes but only ", size_ - 8, " follow the length field; re-download or re-export it");
  data_ = map_ + 8 + n;
  const size_t data_size = size_ - 8 - n;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse((const char*)map_ + 8, (const char*)map_ + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": the safetensors header is not valid JSON (", e.what(), ")");
  }
  require(header.is_object(), path, ": the safetensors header is not a JSON object");
  const std::string* cut_name = nullptr;
  const Entry* cut = nullptr;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      metadata_ = v;
      continue;
    }
    Entry e;
    try {
      e.dtype = v.at("dtype").get<std::string>();
      e.shape = v.at("shape").get<std::vector<int64_t>>();
      const auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      require(off.size() == 2 && off[0] <= off[1], path, ": tensor ", name,
              ": data_offsets must be [begin, end] with begin <= end");
      e.begin = off[0], e.end = off[1];
    } catch (const nlohmann::json::exception& ex) {
      fail(path, ": tensor ", name, ": malformed header entry (", ex.what(), ")");
    }
    for (int64_t d : e.shape) require(d >= 0, path, ": tensor ", name, ": negative dimension");
    const size_t es = any_dtype_size(e.dtype);
    require(es == 0 || e.end - e.begin == numel(e.shape) * es, path, ": tensor ", name,
            ": data_offsets span ", e.end - e.begin, " bytes but ", e.dtype, " ",
            shape_str(e.shape), " needs ", numel(e.shape) * es);
    const auto it = entries_.emplace(name, e).first;
    if (e.end > data_size && (!cut || e.begin < cut->begin))
      cut_name = &it->first, cut = &it->second;
  }
  if (cut)
    fail(path, ": truncated safetensors file: tensor ", *cut_name, " needs bytes [", cut->begin,
         ", ", cut->end, ") of the data section but only ", data_size,
         " are present; re-download or re-export it");
}

File::~File() {
  if (map_) ::munmap((void*)map_, size_);
}

void File::read_f32(const std::string& name, const std::vector<int64_t>& shape, float* out) const {
  auto it = entries_.find(name);
  require(it != entries_.end(), path_, ": tensor ", name, " is missing");
  const Entry& e = it->second;
  require(e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16", path_, ": tensor ", name,
          " has dtype ", e.dtype, "; xwin needs a floating-point weight (F32, F16 or BF16)");
  require(e.shape == shape, path_, ": tensor ", name, " has shape ", shape_str(e.shape),
          " but the model config needs ", shape_str(shape));
  const size_t n = numel(shape);
  const uint8_t* src = data_ + e.begin;
  if (e.dtype == "F32") {
    std::memcpy(out, src, n * 4);
    return;
  }
  const bool bf = e.dtype == "BF16";
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    out[i] = bf ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

// ---------------------------------------------------------------------------- writing

static void write_file(const fs::path& path, const std::vector<const Tensor*>& tensors,
                       DType dtype) {
  const size_t es = dtype_size(dtype);
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  size_t offset = 0;
  for (const Tensor* t : tensors) {
    const size_t bytes = numel(t->shape) * es;
    header[t->name] = {{"dtype", dtype_name(dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const uint64_t n = text.size();

  std::ofstream out(path, std::ios::binary);
  require(out.good(), path.string(), ": cannot create; check that the folder is writable");
  out.write((const char*)&n, 8);
  out.write(text.data(), (std::streamsize)n);
  std::vector<uint16_t> buf;
  const size_t chunk = 1 << 20;
  for (const Tensor* t : tensors) {
    const size_t total = numel(t->shape);
    if (dtype == DType::F32) {
      out.write((const char*)t->data, (std::streamsize)(total * 4));
      continue;
    }
    for (size_t i0 = 0; i0 < total; i0 += chunk) {
      const size_t m = std::min(chunk, total - i0);
      buf.resize(m);
      for (size_t i = 0; i < m; i++)
        buf[i] = dtype == DType::BF16 ? f32_to_bf16(t->data[i0 + i]) : f32_to_f16(t->data[i0 + i]);
      out.write((const char*)buf.data(), (std::streamsize)(m * 2));
    }
  }
  out.close();
  require(!out.fail(), path.string(), ": write failed (disk full?)");
}

std::vector<std::string> write_model(const std::string& dir, const std::vector<Tensor>& tensors,
                                     DType dtype, size_t max_shard_bytes) {
  std::vector<std::vector<const Tensor*>> shards(1);
  size_t shard_bytes = 0, total_bytes = 0;
  for (const Tensor& t : tensors) {
    const size_t bytes = numel(t.shape) * dtype_size(dtype);
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes)
      shards.emplace_back(), shard_bytes = 0;
    shards.back().push_back(&t);
    shard_bytes += bytes, total_bytes += bytes;
  }
  std::vector<std::string> names;
  if (shards.size() == 1) {
    names.push_back("model.safetensors");
    write_file(fs::path(dir) / names[0], shards[0], dtype);
    return names;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t k = 0; k < shards.size(); k++) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    names.push_back(name);
    write_file(fs::path(dir) / name, shards[k], dtype);
    for (const Tensor* t : shards[k]) weight_map[t->name] = name;
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}},
                                {"weight_map", weight_map}};
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::ofstream out(index_path);
  out << index.dump(2) << "\n";
  out.close();
  require(!out.fail(), index_path.string(), ": write failed (disk full?)");
  names.push_back("model.safetensors.index.json");
  return names;
}

}  // namespace xwin::safetensors
