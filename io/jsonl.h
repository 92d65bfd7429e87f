// JSON record files: JSONL (one value a line) or one JSON array (AlpacaEval's files), read as
// this rank's share so that conversion runs on every rank. Records keep their file order:
// rank r gets a contiguous block, and every error names the file and the line (or element).
#pragma once
#include <mpi.h>

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace xwin {

// Offset of the first byte that is not well-formed UTF-8 (overlongs, surrogates and
// code points above U+10FFFF included), or npos.
size_t invalid_utf8(std::string_view s);

class JsonShare {
 public:
  // Reads this rank's block of `path`. Collective over comm (it numbers lines across ranks).
  JsonShare(const std::string& path, MPI_Comm comm);
  size_t size() const { return array_ ? elements_.size() : lines_.size(); }
  // Record i of the share, parsed; throws naming the file and line on bad UTF-8 or JSON.
  nlohmann::json parse(size_t i) const;
  // "file:LINE" (JSONL) or "file: element N" (JSON array), for messages.
  std::string where(size_t i) const;
  const std::string& path() const { return path_; }
  // Bytes of input this rank read (for throughput reports).
  size_t bytes() const { return bytes_; }

 private:
  struct Line {
    int64_t number;
    std::string_view text;
  };
  std::string path_, buffer_;
  bool array_ = false;
  size_t bytes_ = 0;
  std::vector<Line> lines_;
  std::vector<nlohmann::json> elements_;
  int64_t first_element_ = 0;

  void read_lines(std::ifstream& in, size_t file_size, MPI_Comm comm);
  void read_array(std::ifstream& in, size_t file_size, MPI_Comm comm);
};

// Writes JSONL to PATH.tmp and renames it into place on commit(); removed if never committed.
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();
  void write(const nlohmann::json& j);
  void commit();

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool done_ = false;
};

}  // namespace xwin
