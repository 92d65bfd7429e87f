#include "judge/journal.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"

namespace xwin {

using nlohmann::json;

std::string request_key(const json& body) {
  const std::string s = body.dump();
  uint64_t h1 = 1469598103934665603ull, h2 = 0x6A09E667F3BCC908ull;
  for (unsigned char c : s) {
    h1 = (h1 ^ c) * 1099511628211ull;
    h2 = splitmix64(h2 ^ c);
  }
  h2 = splitmix64(h2 ^ s.size());
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
  return hex;
}

Journal::Journal(const std::string& path) : path_(path) {
  if (path.empty()) return;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    require(in.good(), path, ": cannot read the judge journal");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    size_t pos = 0, good_end = 0;
    for (size_t line = 1; pos < text.size(); line++) {
      const size_t nl = text.find('\n', pos);
      const bool last = nl == std::string::npos;
      const std::string s = text.substr(pos, last ? std::string::npos : nl - pos);
      try {
        if (s.find_first_not_of(" \t\r") != std::string::npos) {
          const json j = json::parse(s);
          JournalEntry e;
          e.reply = j.at("reply").get<std::string>();
          e.prompt_tokens = j.value("prompt_tokens", (int64_t)0);
          e.completion_tokens = j.value("completion_tokens", (int64_t)0);
          entries_[j.at("key").get<std::string>()].push_back(std::move(e));
          n_++;
        }
        if (!last) good_end = nl + 1;
      } catch (const std::exception& e) {
        if (last) {  // torn by a crash mid-write: forget it
          torn_ = true;
          break;
        }
        fail(path, ":", line, ": damaged judge journal line (", e.what(),
             "); delete that line (its request is asked again) or the whole journal");
      }
      if (last) good_end = text.size();
      pos = last ? text.size() : nl + 1;
    }
    if (good_end < text.size()) {
      std::filesystem::resize_file(path, good_end, ec);
      require(!ec, path, ": cannot cut the torn last line: ", ec.message());
    }
    if (torn_) log0("judge: %s: dropped a torn last line (a run died mid-write)", path.c_str());
    // A complete last line without its newline gets one before anything is appended.
    if (!text.empty() && good_end == text.size() && text.back() != '\n') {
      std::ofstream fix(path, std::ios::app);
      fix << '\n';
    }
  } else if (const auto dir = std::filesystem::path(path).parent_path(); !dir.empty()) {
    std::filesystem::create_directories(dir, ec);
  }
  out_ = std::fopen(path.c_str(), "a");
  require(out_ != nullptr, path, ": cannot open the judge journal for appending");
}

Journal::~Journal() {
  if (out_) std::fclose(out_);
}

const std::vector<JournalEntry>* Journal::find(const std::string& key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

void Journal::append(const std::string& key, const JournalEntry& e) {
  entries_[key].push_back(e);
  n_++;
  if (!out_) return;
  const std::string line = json{{"key", key},
                                {"reply", e.reply},
                                {"prompt_tokens", e.prompt_tokens},
                                {"completion_tokens", e.completion_tokens}}
                               .dump(-1, ' ', false, json::error_handler_t::replace) +
                           "\n";
  require(std::fwrite(line.data(), 1, line.size(), out_) == line.size() && std::fflush(out_) == 0,
          path_, ": cannot append to the judge journal (disk full?)");
}

}  // namespace xwin
