#include "io/hf.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/log.h"

namespace xwin::hf {

namespace fs = std::filesystem;
using nlohmann::json;

static const char* kSingle = "model.safetensors";
static const char* kIndex = "model.safetensors.index.json";

// ---------------------------------------------------------------------------- config.json

static json read_json(const fs::path& path, const std::string& what) {
  std::ifstream in(path);
  require(in.good(), path.string(), ": cannot open (", what, ")");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

// The shortest decimal that reads back as the same float: 1e-05, not 9.99999974737875e-06.
static json short_float(float f) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, f);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

ModelConfig config_from_json(const json& j, const std::string& where) {
  require(j.is_object(), where, ": not a JSON object; expected a Hugging Face config.json");
  auto has = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto integer = [&](const char* key) {
    require(has(key), where, ": missing key '", key,
            "'; a Llama config.json needs vocab_size, hidden_size, intermediate_size, ",
            "num_hidden_layers, num_attention_heads and max_position_embeddings");
    require(j[key].is_number_integer(), where, ": key '", key, "' must be an integer, not ",
            j[key].dump());
    return j[key].get<int>();
  };
  auto number = [&](const char* key, double dflt) {
    if (!has(key)) {
      log0("import: %s has no %s; using transformers' default %g", where.c_str(), key, dflt);
      return dflt;
    }
    require(j[key].is_number(), where, ": key '", key, "' must be a number, not ", j[key].dump());
    return j[key].get<double>();
  };
  auto refuse = [&](bool bad, const char* key, const char* why) {
    require(!bad, where, ": ", key, " = ", j.value(key, json()).dump(), " is not supported (", why,
            ")");
  };
  if (has("model_type") && j["model_type"] != "llama")
    log0("import: warning: %s has model_type %s; importing it as a Llama", where.c_str(),
         j["model_type"].dump().c_str());

  ModelConfig c;
  c.vocab_size = integer("vocab_size");
  c.d_model = integer("hidden_size");
  c.d_ff = integer("intermediate_size");
  c.n_layers = integer("num_hidden_layers");
  c.n_heads = integer("num_attention_heads");
  c.max_seq_len = integer("max_position_embeddings");
  c.n_kv_heads = has("num_key_value_heads") ? integer("num_key_value_heads") : c.n_heads;
  c.rope_theta = (float)number("rope_theta", 10000.0);
  c.norm_eps = (float)number("rms_norm_eps", 1e-6);
  if (has("tie_word_embeddings")) {
    require(j["tie_word_embeddings"].is_boolean(), where,
            ": key 'tie_word_embeddings' must be true or false");
    c.tie_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  c.value_head = false;

  refuse(has("rope_scaling"), "rope_scaling", "xwin's RoPE has no scaling");
  refuse(has("hidden_act") && j["hidden_act"] != "silu", "hidden_act",
         "xwin's MLP is SwiGLU with silu");
  refuse(has("attention_bias") && j["attention_bias"] != false, "attention_bias",
         "xwin has no biases");
  refuse(has("mlp_bias") && j["mlp_bias"] != false, "mlp_bias", "xwin has no biases");
  refuse(has("sliding_window") && (!j["sliding_window"].is_number_integer() ||
                                   j["sliding_window"].get<long>() < c.max_seq_len),
         "sliding_window", "xwin's attention is full causal attention");
  refuse(has("head_dim") && c.n_heads > 0 && j["head_dim"] != json(c.d_model / c.n_heads),
         "head_dim", "xwin needs head_dim = hidden_size / num_attention_heads");
  c.validate(where);
  return c;
}

json config_to_json(const ModelConfig& c, safetensors::DType dtype, int bos_token_id,
                    int eos_token_id) {
  const char* torch_dtype = dtype == safetensors::DType::F32    ? "float32"
                            : dtype == safetensors::DType::BF16 ? "bfloat16"
                                                                : "float16";
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.d_model},
          {"intermediate_size", c.d_ff},
          {"num_hidden_layers", c.n_layers},
          {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads},
          {"head_dim", c.head_dim()},
          {"max_position_embeddings", c.max_seq_len},
          {"rms_norm_eps", short_float(c.norm_eps)},
          {"rope_theta", short_float(c.rope_theta)},
          {"rope_scaling", nullptr},
          {"tie_word_embeddings", c.tie_embeddings},
          {"hidden_act", "silu"},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"mlp_bias", false},
          {"initializer_range", 0.02},
          {"pretraining_tp", 1},
          {"use_cache", true},
          {"bos_token_id", bos_token_id},
          {"eos_token_id", eos_token_id},
          {"torch_dtype", torch_dtype}};
}

// ---------------------------------------------------------------------------- import

// The tensors of an HF directory: which file holds each one. model.safetensors wins over an
// index, as in transformers. Every file is opened (and so checked for truncation) up front.
class Source {
 public:
  explicit Source(const fs::path& dir) {
    if (fs::exists(dir / kSingle)) {
      listing_ = (dir / kSingle).string();
      open(listing_);
      for (const auto& kv : files_[listing_]->entries()) where_[kv.first] = listing_;
      return;
    }
    require(fs::exists(dir / kIndex), dir.string(), ": no ", kSingle, " or ", kIndex,
            "; xwin imports safetensors (convert pytorch_model*.bin with transformers' ",
            "save_pretrained(safe_serialization=True))");
    listing_ = (dir / kIndex).string();
    const json index = read_json(listing_, "the shard index");
    require(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
            listing_, ": has no \"weight_map\" object mapping tensor names to shard files");
    for (const auto& [name, file] : index["weight_map"].items()) {
      require(file.is_string(), listing_, ": weight_map entry ", name, " is not a file name");
      const std::string path = (dir / file.get<std::string>()).string();
      require(fs::exists(path), listing_, ": tensor ", name, " is in shard ", path,
              ", which does not exist; the download is incomplete");
      if (!files_.count(path)) open(path);
      where_[name] = path;
    }
  }

  const std::map<std::string, std::string>& where() const { return where_; }
  const std::string& listing() const { return listing_; }
  const std::string& dtype(const std::string& name) const {
    return files_.at(where_.at(name))->entries().at(name).dtype;
  }

  void read(const std::string& name, const std::vector<int64_t>& shape, float* out) const {
    auto it = where_.find(name);
    require(it != where_.end(), listing_, ": tensor ", name,
            " is missing; config.json describes a model that has it");
    const safetensors::File& f = *files_.at(it->second);
    require(f.has(name), f.path(), ": tensor ", name, " is missing, but ", listing_,
            " says this shard holds it; the shard or the index is damaged");
    f.read_f32(name, shape, out);
  }

 private:
  std::string listing_;
  std::map<std::string, std::string> where_;
  std::map<std::string, std::unique_ptr<safetensors::File>> files_;
  void open(const std::string& path) { files_[path] = std::make_unique<safetensors::File>(path); }
};

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Refuses tensors a Llama of this config does not have; skips those HF itself ignores.
static void check_extra(const Source& src, const Llama& model) {
  for (const auto& [name, file] : src.where()) {
    if (model.layout.find(name)) continue;
    if (ends_with(name, "rotary_emb.inv_freq")) continue;  // a buffer old conversions saved
    if (name == "lm_head.weight" && model.cfg.tie_embeddings) {
      log0(
          "import: warning: %s: ignoring lm_head.weight; config.json ties the LM head to "
          "model.embed_tokens.weight (transformers does the same)",
          file.c_str());
      continue;
    }
    if (name.rfind("value_head.", 0) == 0) {
      log0(
          "import: warning: %s: skipping %s (an xwin reward model's value head; import "
          "makes a language model)",
          file.c_str(), name.c_str());
      continue;
    }
    fail(file, ": unexpected tensor ", name, "; a Llama with this config.json has no such ",
         "parameter (a different architecture, or config.json does not match the weights)");
  }
}

Llama import_model(const std::string& dir_name) {
  const fs::path dir(dir_name);
  require(fs::is_directory(dir), dir_name, ": not a directory; --hf names a Hugging Face ",
          "model directory (config.json and safetensors)");
  const fs::path cfg_path = dir / "config.json";
  const ModelConfig cfg =
      config_from_json(read_json(cfg_path, "the model's config.json"), cfg_path.string());
  const Source src(dir);
  Llama model(cfg);
  check_extra(src, model);
  std::map<std::string, int> dtype_counts;
  for (const auto& t : model.layout.tensors) {
    src.read(t.name, t.shape, model.params.data() + t.offset);
    dtype_counts[src.dtype(t.name)]++;
  }
  std::string dtypes;
  for (const auto& [d, n] : dtype_counts)
    dtypes += (dtypes.empty() ? "" : ", ") + std::to_string(n) + " " + d;
  log0("import: %s: %zu parameters in %zu tensors (%s)", src.listing().c_str(), model.layout.total,
       model.layout.tensors.size(), dtypes.c_str());
  return model;
}

// ---------------------------------------------------------------------------- export

static const char* kTokenizerFiles[] = {"tokenizer.model", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json",
                                        "added_tokens.json"};

// The tokenizer files to copy: each given file, or the known tokenizer files of a given folder.
static std::vector<fs::path> tokenizer_sources(const std::vector<std::string>& given) {
  std::vector<fs::path> out;
  for (const std::string& g : given) {
    if (fs::is_directory(g)) {
      const size_t before = out.size();
      for (const char* f : kTokenizerFiles)
        if (fs::is_regular_file(fs::path(g) / f)) out.push_back(fs::path(g) / f);
      require(out.size() > before, g, ": no tokenizer files (tokenizer.model, tokenizer.json, ",
              "tokenizer_config.json, ...) in this folder; check --tokenizer");
    } else {
      require(fs::is_regular_file(g), g, ": no such tokenizer file; check --tokenizer");
      out.emplace_back(g);
    }
  }
  return out;
}

static void write_json(const fs::path& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  out.close();
  require(!out.fail(), path.string(), ": write failed (disk full?)");
}

// An existing destination is replaced only when it looks like a model directory.
static void check_replaceable(const fs::path& dir) {
  if (!fs::exists(dir)) return;
  require(fs::is_directory(dir) && (fs::is_empty(dir) || fs::exists(dir / "config.json")),
          dir.string(), ": exists and is not a model directory (no config.json); choose another ",
          "--hf or remove it");
}

void export_model(const Llama& model, const std::string& dir_name, const ExportOptions& o) {
  fs::path dir = fs::path(dir_name).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "out/" -> "out"
  const fs::path tmp = dir.string() + ".tmp";
  check_replaceable(dir);
  const std::vector<fs::path> tokenizer = tokenizer_sources(o.tokenizer_files);

  std::vector<safetensors::Tensor> tensors;
  for (const auto& t : model.layout.tensors)
    if (o.value_head || t.name.rfind("value_head.", 0) != 0)
      tensors.push_back({t.name, t.shape, model.params.data() + t.offset});
  if (model.cfg.value_head && !o.value_head)
    log0(
        "export: warning: skipping value_head.weight and value_head.bias (a reward model's "
        "value head has no Hugging Face equivalent; --value_head writes them as extra tensors)");

  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  require(!ec, tmp.string(), ": cannot create (", ec.message(), ")");
  const auto files = safetensors::write_model(tmp.string(), tensors, o.dtype, o.max_shard_bytes);
  write_json(tmp / "config.json",
             config_to_json(model.cfg, o.dtype, o.bos_token_id, o.eos_token_id));
  write_json(tmp / "generation_config.json",
             {{"bos_token_id", o.bos_token_id}, {"eos_token_id", o.eos_token_id}});
  for (const fs::path& f : tokenizer) {
    fs::copy_file(f, tmp / f.filename(), fs::copy_options::overwrite_existing, ec);
    require(!ec, f.string(), ": cannot copy into ", tmp.string(), " (", ec.message(), ")");
  }
  if (tokenizer.empty())
    log0(
        "export: warning: no --tokenizer given, so %s has no tokenizer files; transformers' "
        "AutoTokenizer and vLLM need them (e.g. --tokenizer path/to/tokenizer.model)",
        dir.c_str());

  check_replaceable(dir);
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  require(!ec, dir.string(), ": cannot rename the finished export into place (", ec.message(), ")");
  log0("export: %zu tensors as %s in %zu safetensors file(s) -> %s", tensors.size(),
       safetensors::dtype_name(o.dtype), files.size() - (files.size() > 1), dir.c_str());
}

size_t parse_size(const std::string& s, const std::string& what) {
  static const std::pair<const char*, double> units[] = {
      {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
      {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},
      {"B", 1.0},      {"", 1.0}};
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  const std::string unit = end ? std::string(end) : "";
  for (const auto& [name, scale] : units)
    if (unit == name && end != s.c_str() && v * scale >= 1 && v * scale < 1e18)
      return (size_t)(v * scale);
  fail(what, " = '", s, "' is not a size; write e.g. 5GB, 500MB, 2GiB or a byte count");
}

}  // namespace xwin::hf
