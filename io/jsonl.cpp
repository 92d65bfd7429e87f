#include "io/jsonl.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace xwin {

size_t invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c == 0xE0)
      len = 3, lo = 0xA0;
    else if (c == 0xED)
      len = 3, hi = 0x9F;  // no UTF-16 surrogates
    else if (c >= 0xE1 && c <= 0xEF)
      len = 3;
    else if (c == 0xF0)
      len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
      len = 4;
    else if (c == 0xF4)
      len = 4, hi = 0x8F;  // nothing above U+10FFFF
    else
      return i;
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; k++)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

static int comm_rank(MPI_Comm c) {
  int r = 0;
  MPI_Comm_rank(c, &r);
  return r;
}
static int comm_size(MPI_Comm c) {
  int s = 1;
  MPI_Comm_size(c, &s);
  return s;
}

// The first line start at or after byte `pos`.
static size_t line_start(std::ifstream& in, size_t pos, size_t size) {
  if (pos == 0 || pos >= size) return std::min(pos, size);
  in.clear();
  in.seekg((std::streamoff)pos - 1);
  char ch;
  while (in.get(ch)) {
    if (ch == '\n') return (size_t)in.tellg();
  }
  return size;
}

JsonShare::JsonShare(const std::string& path, MPI_Comm comm) : path_(path) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), path, ": cannot open; check the path");
  in.seekg(0, std::ios::end);
  const size_t size = (size_t)in.tellg();
  in.seekg(0);
  char ch = 0;
  while (in.get(ch) && (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')) {
  }
  array_ = in.gcount() > 0 && ch == '[';
  if (array_)
    read_array(in, size, comm);
  else
    read_lines(in, size, comm);
}

void JsonShare::read_lines(std::ifstream& in, size_t size, MPI_Comm comm) {
  const int r = comm_rank(comm), n = comm_size(comm);
  const size_t a = line_start(in, size * r / n, size), b = line_start(in, size * (r + 1) / n, size);
  buffer_.resize(b - a);
  in.clear();
  in.seekg((std::streamoff)a);
  in.read(buffer_.data(), (std::streamsize)buffer_.size());
  require((size_t)in.gcount() == buffer_.size(), path_, ": read failed (file changed?)");
  bytes_ = buffer_.size();
  // Number the lines across ranks: lines before this block = the sum over lower ranks.
  int64_t count = std::count(buffer_.begin(), buffer_.end(), '\n');
  if (!buffer_.empty() && buffer_.back() != '\n') count++;
  int64_t before = 0;
  MPI_Exscan(&count, &before, 1, MPI_INT64_T, MPI_SUM, comm);
  if (r == 0) before = 0;
  std::string_view rest(buffer_);
  for (int64_t no = before + 1; !rest.empty(); no++) {
    size_t e = rest.find('\n');
    std::string_view line = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) lines_.push_back({no, line});
  }
}

static int64_t line_of(const std::string& text, size_t byte) {
  return 1 + std::count(text.begin(), text.begin() + std::min(byte, text.size()), '\n');
}

void JsonShare::read_array(std::ifstream& in, size_t size, MPI_Comm comm) {
  std::string text(size, '\0');
  in.clear();
  in.seekg(0);
  in.read(text.data(), (std::streamsize)size);
  const size_t bad = invalid_utf8(text);
  require(bad == std::string::npos, path_, ":", line_of(text, bad), ": invalid UTF-8 (byte ", bad,
          " of the file); re-encode the file as UTF-8");
  nlohmann::json all;
  try {
    all = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path_, ":", line_of(text, e.byte), ": malformed JSON (", e.what(),
         "); the file must be one JSON array or one JSON object a line (JSONL)");
  }
  require(all.is_array(), path_, ": expected a JSON array of records");
  const int r = comm_rank(comm), n = comm_size(comm);
  const size_t lo = all.size() * r / n, hi = all.size() * (r + 1) / n;
  first_element_ = (int64_t)lo;
  bytes_ = size / n;
  for (size_t i = lo; i < hi; i++) elements_.push_back(std::move(all[i]));
}

std::string JsonShare::where(size_t i) const {
  if (array_) return path_ + ": element " + std::to_string(first_element_ + (int64_t)i + 1);
  return path_ + ":" + std::to_string(lines_[i].number);
}

nlohmann::json JsonShare::parse(size_t i) const {
  if (array_) return elements_[i];
  const std::string_view s = lines_[i].text;
  const size_t bad = invalid_utf8(s);
  require(bad == std::string_view::npos, where(i), ": invalid UTF-8 at byte ", bad + 1,
          " of the line; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)");
  try {
    return nlohmann::json::parse(s);
  } catch (const nlohmann::json::parse_error& e) {
    fail(where(i), ": malformed JSON (", e.what(), "); each line must be one JSON object");
  }
}

JsonlWriter::JsonlWriter(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  out_.open(tmp_, std::ios::binary | std::ios::trunc);
  require(out_.good(), tmp_, ": cannot create; check that the folder exists and is writable");
}

JsonlWriter::~JsonlWriter() {
  if (done_) return;
  out_.close();
  std::remove(tmp_.c_str());
}

void JsonlWriter::write(const nlohmann::json& j) {
  out_ << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

void JsonlWriter::commit() {
  out_.close();
  require(!out_.fail(), tmp_, ": writing failed (disk full or quota?)");
  require(std::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": cannot rename ", tmp_,
          " into place");
  done_ = true;
}

}  // namespace xwin
