// SentencePiece tokenizer (any tokenizer.model, e.g. Llama-2's) behind a small interface: ids,
// ids with the byte span of text each piece covers (the chat template needs them to draw the
// loss mask), decoding, and a content hash that datasets record so a phase can refuse data made
// with another tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace xwin {

// A piece and the bytes [begin, end) of the input it stands for. Byte-fallback pieces of one
// character share its span: all but the last are empty at the character's start.
struct TokenSpan {
  int32_t id;
  uint32_t begin, end;
};

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  // Plain SentencePiece encoding (dummy-prefix space included, no BOS/EOS), as
  // sentencepiece.SentencePieceProcessor.encode does in Python.
  std::vector<int32_t> encode(std::string_view text) const;
  std::vector<TokenSpan> encode_spans(std::string_view text) const;
  // Control ids (BOS, EOS) decode to nothing.
  std::string decode(const int32_t* ids, size_t n) const;
  std::string decode(const std::vector<int32_t>& ids) const {
    return decode(ids.data(), ids.size());
  }
  std::string piece(int32_t id) const;

  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t unk_id() const { return unk_; }
  int32_t vocab_size() const { return vocab_; }
  const std::string& path() const { return path_; }
  // "fnv1a64:<16 hex digits>" of the tokenizer.model bytes.
  const std::string& hash() const { return hash_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string path_, hash_;
  int32_t bos_ = -1, eos_ = -1, unk_ = -1, vocab_ = 0;
};

// 64-bit FNV-1a of a file's bytes, as "fnv1a64:<hex>". Cheap, dependency-free, and stable: it
// names a tokenizer file, it does not defend against forgery.
std::string file_hash(const std::string& path);

struct TokenizerTrainOptions {
  std::vector<std::string> inputs;  // text files (one sentence a line) or JSONL (every string)
  std::string out_dir;              // receives tokenizer.model and tokenizer.vocab
  int vocab_size = 8000;
  std::string model_type = "bpe";
  double character_coverage = 0.99995;
  int64_t max_sentences = 2000000;  // sentences sampled for training (0: all)
  bool byte_fallback = true;
};

// Trains with SentencePiece's own trainer, in the Llama-2 configuration (identity
// normalisation, whitespace kept, digits split, byte fallback, unk 0 / bos 1 / eos 2). Writes
// OUT.tmp and renames it, so OUT exists only when complete.
void train_tokenizer(const TokenizerTrainOptions& o);

}  // namespace xwin
