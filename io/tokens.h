// Ragged token datasets (DESIGN.md formats): flat `tokens` (int32), `offsets` (int64, n+1) and,
// for training, a parallel `loss_mask` (uint8). Record r is tokens[offsets[r] : offsets[r+1]].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace xwin {

struct TokenDataset {
  std::vector<int32_t> tokens;
  std::vector<int64_t> offsets{0};
  std::vector<uint8_t> loss_mask;  // empty when the file has none

  size_t size() const { return offsets.size() - 1; }
  int64_t length(size_t r) const { return offsets[r + 1] - offsets[r]; }
  void append(const std::vector<int32_t>& toks, const std::vector<uint8_t>& mask);

  // Loads and checks structure (monotone offsets, matching lengths); `vocab_size` > 0 also
  // checks every token id, naming the first bad record.
  static TokenDataset load(const std::string& path, int vocab_size = 0);
  // Writes to path + ".tmp" and renames, so a crash never leaves a half-written dataset.
  void save(const std::string& path, const std::string& source) const;
};

}  // namespace xwin
