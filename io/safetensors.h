// Safetensors (the Hugging Face weight format), read and written by xwin itself. A file is an
// 8-byte little-endian header length N, N bytes of JSON {name: {"dtype", "shape",
// "data_offsets": [begin, end]}, "__metadata__": {...}}, then the raw little-endian tensor data,
// offsets relative to the end of the header. Files are memory-mapped for reading; tensors are
// converted to fp32 on the way out (F32, F16 and BF16 exactly) and from fp32 on the way in
// (F16 and BF16 rounded to nearest even). Every error names the file and the tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace xwin::safetensors {

// The floating-point dtypes xwin converts; other dtypes (I32, F64, ...) are read as entries but
// refused by read_f32.
enum class DType { F32, F16, BF16 };
// "F32", "F16", "BF16".
const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct Entry {
  std::string dtype;  // as written in the header: "F32", "BF16", "I32", ...
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte range in the data section
};

// A read-only memory-mapped safetensors file, validated on open: the header is complete JSON,
// every entry is well-formed and lies inside the file (a truncated file is refused here).
class File {
 public:
  explicit File(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  const nlohmann::json& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  // Converts tensor `name` to fp32 into out, after checking that it is a float tensor of
  // exactly `shape` (the message names the file, the tensor and what was expected).
  void read_f32(const std::string& name, const std::vector<int64_t>& shape, float* out) const;

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, Entry> entries_;
  nlohmann::json metadata_;
};

// One fp32 tensor to write.
struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

// Writes `tensors` in `dtype` into dir, in shards of at most max_shard_bytes (a tensor larger
// than that gets a shard of its own), the Hugging Face way: one shard is `model.safetensors`;
// several are `model-0000K-of-0000N.safetensors` with `model.safetensors.index.json` mapping
// every tensor to its shard. Every file gets __metadata__ {"format": "pt"} (transformers
// requires it). Returns the names of the files written.
std::vector<std::string> write_model(const std::string& dir, const std::vector<Tensor>& tensors,
                                     DType dtype, size_t max_shard_bytes);

// fp32 <-> 16-bit conversions (exact widening; round-to-nearest-even narrowing, NaN kept NaN).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
uint16_t f32_to_f16(float f);
uint16_t f32_to_bf16(float f);

}  // namespace xwin::safetensors
