// The HDF5 datasets of the pipeline (DESIGN.md, "Formats"), their provenance attributes, a
// writer that every rank of a conversion feeds, and the readers later phases load:
//
//   xwin.sft       /tokens, /offsets, /loss_mask                       (as io/tokens.h)
//   xwin.pairs     /prompt/{tokens,offsets}, /chosen/..., /rejected/..., optional /margin, /tie;
//                  attribute n_ties (ties in the input, kept or not)
//   xwin.prompts   /prompt/{tokens,offsets}
//   xwin.xwin_set  /prompt/..., /responses/... (P*K records, prompt-major), /scores [P,K],
//                  optional /ref_logp [P,K], attribute K
//
// chosen, rejected and responses hold the reply ids and the EOS; a prompt holds BOS, any system
// prompt and turns, through the assistant cue. Root attributes on every dataset: schema,
// version, tokenizer_hash, tokenizer_path, template (JSON), max_seq_len, overlong, n_records,
// n_kept (written as is), n_truncated (written after truncation), n_dropped (too long),
// n_skipped (ties dropped, unannotated), source, xwin_version.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/chat_template.h"
#include "io/h5.h"
#include "io/tokens.h"

namespace xwin {

inline constexpr const char* kSchemaTokens = "xwin.tokens";  // raw token lists (data tokens)
inline constexpr const char* kSchemaSft = "xwin.sft";
inline constexpr const char* kSchemaPairs = "xwin.pairs";
inline constexpr const char* kSchemaPrompts = "xwin.prompts";
inline constexpr const char* kSchemaXwinSet = "xwin.xwin_set";

// What happens to a record longer than max_seq_len.
enum class Overlong { Drop, Truncate, Error };
Overlong overlong_from_string(const std::string& s);  // "drop", "truncate", "error"
const char* overlong_name(Overlong o);
// A record longer than max_seq_len under Overlong::Error: its own type, so that a caller which
// chose the limit (xwin pipeline: model.max_seq_len) can name its own option.
class OverlongRecord : public Error {
 public:
  using Error::Error;
};

struct DatasetInfo {
  std::string schema;
  int64_t version = 1;
  std::string tokenizer_hash, tokenizer_path, template_json, source, overlong;
  int64_t max_seq_len = 0;
  int64_t n_kept = 0, n_truncated = 0, n_dropped = 0, n_skipped = 0;
  int64_t n_records() const { return n_kept + n_truncated; }

  static DatasetInfo read(const h5::File& f);  // missing attributes stay empty / 0
  static DatasetInfo read(const std::string& path);
  void write(h5::File& f) const;
  // Throws unless the schema is one of `want` (comma-separated), naming the command that makes it.
  void check_schema(const std::string& path, const std::string& want) const;
  // Refuses a dataset tokenized with another tokenizer. No-op for an empty hash.
  void check_tokenizer(const std::string& path, const std::string& hash,
                       const std::string& tokenizer_path) const;
};

struct PairsDataset {
  DatasetInfo info;
  TokenDataset prompt, chosen, rejected;  // parallel ragged arrays, no loss masks
  std::vector<float> margin;              // empty when the file has none
  std::vector<uint8_t> tie;               // empty when the file has none
  size_t size() const { return prompt.size(); }
  // `tokenizer_hash` non-empty: refuse a dataset made with another tokenizer.
  static PairsDataset load(const std::string& path, const std::string& tokenizer_hash = "");
};

struct PromptsDataset {
  DatasetInfo info;
  TokenDataset prompt;
  size_t size() const { return prompt.size(); }
  static PromptsDataset load(const std::string& path, const std::string& tokenizer_hash = "");
};

struct XwinSetDataset {
  DatasetInfo info;
  TokenDataset prompt, responses;  // responses: record p * K + k is response k of prompt p
  int64_t K = 0;
  std::vector<float> scores, ref_logp;  // [P * K]; ref_logp empty when absent
  size_t size() const { return prompt.size(); }
  static XwinSetDataset load(const std::string& path, const std::string& tokenizer_hash = "");
  // Prompt p as a conversation, and its K responses as reply texts, with the encoder (template
  // and tokenizer) the set was made with.
  Conversation decode_prompt(size_t p, const ChatEncoder& enc) const;
  std::vector<std::string> decode_replies(size_t p, const ChatEncoder& enc) const;
};

// One dataset written by every rank of comm: each passes its share and the records land in
// rank order (collective parallel HDF5 when comm has several ranks). Everything goes to
// PATH.tmp, renamed to PATH by commit() once complete and closed.
class DatasetWriter {
 public:
  DatasetWriter(const std::string& path, MPI_Comm comm);
  ~DatasetWriter();
  // GROUP/tokens, GROUP/offsets and, with `with_mask`, GROUP/loss_mask ("" is the root).
  void ragged(const std::string& group, const TokenDataset& local, bool with_mask);
  // A [rows] (cols 0) or [rows, cols] array concatenated over ranks.
  void rows(const std::string& name, const std::vector<float>& local, int64_t cols = 0);
  void rows(const std::string& name, const std::vector<uint8_t>& local, int64_t cols = 0);
  void attr(const std::string& key, int64_t value);
  void info(const DatasetInfo& info);
  void commit();
  size_t bytes() const { return bytes_; }  // this rank's share of the data written

 private:
  std::string path_, tmp_;
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::unique_ptr<h5::File> file_;
  size_t bytes_ = 0;
  void concat(const std::string& name, hid_t type, const void* data, int64_t rows, int64_t cols,
              size_t elem);
};

}  // namespace xwin
