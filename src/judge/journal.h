// The judge's append-only journal: one JSONL line per reply an endpoint gave, keyed by a hash
// of the request body (model, messages, sampling settings), flushed as soon as the reply is in.
// A crashed, killed or repeated run reads it back and replays every reply it holds, so no
// request is paid for twice. Replies to one key are kept in order: a reply that was asked again
// (unparseable verdict) replays as the same sequence. Only replies are journaled, never
// errors (a 400 is asked again next run) and never credentials.
//
// Line: {"key": 32 hex digits, "reply": text, "prompt_tokens": n, "completion_tokens": n}.
// A torn last line (the process died mid-write) is dropped and cut off before appending; a bad
// line anywhere else is an error naming the file and line.
#pragma once
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace xwin {

// 128-bit non-cryptographic hash (two independent 64-bit streams) of a request body's
// canonical JSON, as 32 hex digits.
std::string request_key(const nlohmann::json& body);

struct JournalEntry {
  std::string reply;
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

class Journal {
 public:
  // Loads `path` if it exists and opens it for appending; an empty path keeps nothing.
  explicit Journal(const std::string& path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // The replies recorded for key, oldest first (null when none).
  const std::vector<JournalEntry>* find(const std::string& key) const;
  // Records a reply (in memory and, with a path, on disk, flushed).
  void append(const std::string& key, const JournalEntry& e);
  size_t size() const { return n_; }
  const std::string& path() const { return path_; }
  bool dropped_torn_line() const { return torn_; }

 private:
  std::string path_;
  std::FILE* out_ = nullptr;
  std::unordered_map<std::string, std::vector<JournalEntry>> entries_;
  size_t n_ = 0;
  bool torn_ = false;
};

}  // namespace xwin
