#include "io/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"

namespace xwin {

std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), path, ": cannot open to hash it; check the path");
  uint64_t h = 0xcbf29ce484222325ull;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    for (std::streamsize i = 0; i < in.gcount(); i++) {
      h ^= (uint8_t)buf[i];
      h *= 0x100000001b3ull;
    }
  }
  char hex[32];
  std::snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  return std::string("fnv1a64:") + hex;
}

Tokenizer::Tokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_path) {
  require(!model_path.empty(), "no tokenizer given; pass --tokenizer.model PATH (a SentencePiece ",
          "tokenizer.model, e.g. Llama-2's, or one made by `xwin tokenizer train`)");
  const auto st = sp_->Load(model_path);
  require(st.ok(), model_path, ": cannot load as a SentencePiece model (", st.ToString(),
          "); pass the tokenizer.model file itself");
  bos_ = sp_->bos_id(), eos_ = sp_->eos_id(), unk_ = sp_->unk_id();
  vocab_ = sp_->GetPieceSize();
  require(bos_ >= 0 && eos_ >= 0, model_path, ": the tokenizer has no BOS or EOS piece (bos ", bos_,
          ", eos ", eos_, "); the chat template needs both");
  hash_ = file_hash(model_path);
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  const auto st = sp_->Encode(absl::string_view(text.data(), text.size()), &ids);
  require(st.ok(), path_, ": SentencePiece cannot encode a text (", st.ToString(), ")");
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::vector<TokenSpan> Tokenizer::encode_spans(std::string_view text) const {
  sentencepiece::ImmutableSentencePieceText spt;
  const auto st = sp_->Encode(absl::string_view(text.data(), text.size()), spt.mutable_proto());
  require(st.ok(), path_, ": SentencePiece cannot encode a text (", st.ToString(), ")");
  std::vector<TokenSpan> out;
  out.reserve(spt.pieces_size());
  for (const auto& p : spt.pieces()) out.push_back({(int32_t)p.id(), p.begin(), p.end()});
  return out;
}

std::string Tokenizer::decode(const int32_t* ids, size_t n) const {
  std::vector<int> v;
  v.reserve(n);
  for (size_t i = 0; i < n; i++) {
    require(ids[i] >= 0 && ids[i] < vocab_, path_, ": token id ", ids[i],
            " is outside the tokenizer's vocabulary [0, ", vocab_,
            "); the ids come from another tokenizer");
    v.push_back(ids[i]);
  }
  std::string text;
  const auto st = sp_->Decode(v, &text);
  require(st.ok(), path_, ": SentencePiece cannot decode (", st.ToString(), ")");
  return text;
}

std::string Tokenizer::piece(int32_t id) const {
  require(id >= 0 && id < vocab_, path_, ": token id ", id, " is outside [0, ", vocab_, ")");
  return sp_->IdToPiece(id);
}

namespace {

// Every string of a JSON value except role names, split into lines: SentencePiece trains on
// sentences and skips any longer than max_sentence_length.
void json_strings(const nlohmann::json& j, const std::string& key, std::vector<std::string>& out) {
  if (j.is_string()) {
    if (key == "from" || key == "role") return;
    const std::string& s = j.get_ref<const std::string&>();
    size_t a = 0;
    while (a <= s.size()) {
      size_t b = s.find('\n', a);
      if (b == std::string::npos) b = s.size();
      if (b > a) out.push_back(s.substr(a, b - a));
      a = b + 1;
    }
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) json_strings(it.value(), it.key(), out);
  } else if (j.is_array()) {
    for (const auto& v : j) json_strings(v, key, out);
  }
}

bool is_json_file(const std::string& path) {
  const auto ext = std::filesystem::path(path).extension().string();
  return ext == ".jsonl" || ext == ".json";
}

// Feeds the trainer line by line from text files, or the strings of JSONL records.
class Sentences : public sentencepiece::SentenceIterator {
 public:
  explicit Sentences(const std::vector<std::string>& files) : files_(files) { Next(); }
  bool done() const override { return done_; }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }
  void Next() override {
    while (pending_.empty()) {
      if (!next_line()) return void(done_ = true);
    }
    value_ = std::move(pending_.back());
    pending_.pop_back();
  }

 private:
  bool next_line() {
    while (!in_.is_open() || !std::getline(in_, line_)) {
      if (in_.is_open()) in_.close();
      if (file_ == files_.size()) return false;
      in_.open(files_[file_]);
      require(in_.good(), files_[file_], ": cannot open the training text; check the path");
      json_ = is_json_file(files_[file_]), lineno_ = 0, file_++;
    }
    lineno_++;
    if (!json_) return pending_.push_back(line_), true;
    if (line_.find_first_not_of(" \t\r") == std::string::npos) return true;
    try {
      json_strings(nlohmann::json::parse(line_), "", pending_);
    } catch (const nlohmann::json::exception& e) {
      fail(files_[file_ - 1], ":", lineno_, ": not valid JSON (", e.what(),
           "); JSONL training input needs one JSON value a line");
    }
    std::reverse(pending_.begin(), pending_.end());
    return true;
  }
  std::vector<std::string> files_;
  size_t file_ = 0;
  long lineno_ = 0;
  bool json_ = false, done_ = false;
  std::ifstream in_;
  std::string line_, value_;
  std::vector<std::string> pending_;
};

}  // namespace

void train_tokenizer(const TokenizerTrainOptions& o) {
  require(!o.inputs.empty(), "tokenizer train: no --input files");
  require(o.model_type == "bpe" || o.model_type == "unigram", "tokenizer train: model_type '",
          o.model_type, "' is not bpe or unigram");
  const std::string tmp = o.out_dir + ".tmp";
  std::filesystem::remove_all(tmp);
  std::filesystem::create_directories(tmp);
  const std::unordered_map<std::string, std::string> args = {
      {"model_prefix", tmp + "/tokenizer"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"input_sentence_size", std::to_string(o.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"hard_vocab_limit", "false"},
      {"minloglevel", "1"}};
  Sentences sentences(o.inputs);
  sentencepiece::SetRandomGeneratorSeed(1);  // same input, same tokenizer (sampling, shuffling)
  const auto st = sentencepiece::SentencePieceTrainer::Train(args, &sentences);
  require(st.ok(), "tokenizer train: SentencePiece failed (", st.ToString(), "); with ",
          "byte_fallback the vocabulary needs at least 259 + the characters of the input");
  std::filesystem::remove_all(o.out_dir);
  std::filesystem::rename(tmp, o.out_dir);
}

}  // namespace xwin
