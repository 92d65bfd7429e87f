// xwin tokenizer train / encode / decode: SentencePiece through its own library. `train` makes
// a new tokenizer.model with SentencePiece's trainer (the demo's small vocabulary); encode and
// decode are for inspection and for the parity test against python3-sentencepiece. Also home of
// the shared [tokenizer] and [template] option groups.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "io/jsonl.h"
#include "io/tokenizer.h"

namespace xwin::cli {

using nlohmann::json;

static const char* kTemplateKeys[] = {"system", "system_suffix", "user_prefix", "user_suffix",
                                      "assistant_prefix"};

static std::string* template_field(ChatTemplate& t, const std::string& key) {
  if (key == "system") return &t.system;
  if (key == "system_suffix") return &t.system_suffix;
  if (key == "user_prefix") return &t.user_prefix;
  if (key == "user_suffix") return &t.user_suffix;
  return &t.assistant_prefix;
}

void add_text_group(po::options_description& d, Group g) {
  if (g == Group::Tokenizer) {
    po::options_description m("Tokenizer [tokenizer]");
    m.add_options()("tokenizer.model", po::value<std::string>()->default_value(""),
                    "SentencePiece tokenizer.model (Llama-2's, or one from `xwin tokenizer "
                    "train`)");
    d.add(m);
    return;
  }
  ChatTemplate t;
  po::options_description m(
      "Chat template [template] (Vicuna v1.1 by default; quote values to keep spaces: "
      "user_prefix = \"USER: \")");
  m.add_options()("template.name", po::value<std::string>()->default_value(t.name),
                  "name recorded in datasets");
  const char* help[] = {"system prompt used when a conversation has none",
                        "text after a non-empty system prompt", "text before each user turn",
                        "text after each user turn",
                        "text before each reply; prompts for sampling end here, trailing "
                        "whitespace stripped (it belongs to the reply's first piece)"};
  for (size_t i = 0; i < 5; i++) {
    const std::string quoted = json(*template_field(t, kTemplateKeys[i])).dump();
    const std::string shown = quoted.size() > 24 ? quoted.substr(0, 20) + "...\"" : quoted;
    m.add_options()(("template." + std::string(kTemplateKeys[i])).c_str(),
                    po::value<std::string>()->default_value(quoted, shown), help[i]);
  }
  d.add(m);
}

std::string tokenizer_model(const po::variables_map& vm, const Phase& phase) {
  const std::string m = vm.count("tokenizer.model") ? vm["tokenizer.model"].as<std::string>() : "";
  if (m.empty())
    throw UsageError("xwin " + phase.name + " needs --tokenizer.model (or 'model = ...' in the " +
                     "deck's [tokenizer] section): a SentencePiece tokenizer.model");
  return m;
}

static std::string unquote(const std::string& key, const std::string& v) {
  if (v.empty() || v.front() != '"') return v;
  if (v.size() < 2 || v.back() != '"')
    throw UsageError(key + " = " + v + " has no closing quote; in a deck '#' starts a comment, " +
                     "so write it as \\u0023 inside the quotes");
  try {
    return json::parse(v).get<std::string>();
  } catch (const json::exception& e) {
    throw UsageError(key + " = " + v + " is not a valid JSON string (" + e.what() + ")");
  }
}

ChatTemplate chat_template(const po::variables_map& vm) {
  ChatTemplate t;
  t.name = vm["template.name"].as<std::string>();
  for (const char* k : kTemplateKeys) {
    const std::string key = "template." + std::string(k);
    *template_field(t, k) = unquote(key, vm[key].as<std::string>());
  }
  try {
    t.validate();
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  return t;
}

Phase phase_tokenizer_train() {
  Phase p;
  p.name = "tokenizer train";
  p.summary = "train a SentencePiece tokenizer on text or JSONL files";
  p.details =
      "Uses SentencePiece's own trainer in the Llama-2 configuration: BPE, identity\n"
      "normalisation, whitespace kept, digits split, byte fallback; unk 0, bos 1, eos 2.\n"
      "Text files give one sentence a line; .jsonl/.json files give every string of every\n"
      "record (role names excepted), line by line. Writes OUT/tokenizer.model and\n"
      "OUT/tokenizer.vocab (through OUT.tmp, renamed when complete).";
  p.add_options = [](po::options_description& d) {
    d.add_options()("input", po::value<std::vector<std::string>>()->multitoken()->composing(),
                    "training files (required; several allowed)")("out", po::value<std::string>(),
                                                                  "output folder (required)")(
        "vocab_size", po::value<int>()->default_value(8000), "number of pieces")(
        "model_type", po::value<std::string>()->default_value("bpe"), "bpe or unigram")(
        "character_coverage", po::value<double>()->default_value(0.99995, "0.99995"),
        "share of characters covered by pieces; the rest fall back to bytes")(
        "max_sentences", po::value<int64_t>()->default_value(2000000),
        "sentences sampled for training (0: all)")(
        "byte_fallback", po::value<bool>()->default_value(true, "true"),
        "encode unknown characters as UTF-8 bytes instead of <unk>");
  };
  p.run = [p](const po::variables_map& vm) {
    TokenizerTrainOptions o;
    if (!vm.count("input")) throw UsageError("xwin tokenizer train needs --input FILE...");
    o.inputs = vm["input"].as<std::vector<std::string>>();
    o.out_dir = required(vm, "out", p);
    o.vocab_size = vm["vocab_size"].as<int>();
    o.model_type = vm["model_type"].as<std::string>();
    o.character_coverage = vm["character_coverage"].as<double>();
    o.max_sentences = vm["max_sentences"].as<int64_t>();
    o.byte_fallback = vm["byte_fallback"].as<bool>();
    if (o.vocab_size < 8) throw UsageError("--vocab_size must be at least 8");
    if (log_rank() != 0) return 0;
    train_tokenizer(o);
    const Tokenizer tok(o.out_dir + "/tokenizer.model");
    log0("tokenizer train: %d pieces -> %s/tokenizer.model (%s)", tok.vocab_size(),
         o.out_dir.c_str(), tok.hash().c_str());
    return 0;
  };
  return p;
}

static void add_io_options(po::options_description& d, const char* what) {
  d.add_options()("in", po::value<std::string>()->default_value(""), what)(
      "out", po::value<std::string>()->default_value("-"), "output JSONL file (- = stdout)");
}

// Runs `each` on every record of --in, writing its results to --out as JSONL.
template <typename F>
static void map_jsonl(const po::variables_map& vm, F each) {
  const JsonShare in(vm["in"].as<std::string>(), MPI_COMM_SELF);
  const std::string out = vm["out"].as<std::string>();
  std::unique_ptr<JsonlWriter> file;
  if (out != "-") file = std::make_unique<JsonlWriter>(out);
  for (size_t i = 0; i < in.size(); i++) {
    json r;
    try {
      r = each(in.parse(i));
    } catch (const json::exception& e) {
      fail(in.where(i), ": ", e.what());
    } catch (const Error& e) {
      fail(in.where(i), ": ", e.what());
    }
    if (file)
      file->write(r);
    else
      std::cout << r.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  if (file) file->commit();
}

Phase phase_tokenizer_encode() {
  Phase p;
  p.name = "tokenizer encode";
  p.summary = "text -> token ids (inspection; plain SentencePiece, no BOS/EOS)";
  p.details =
      "--text prints the ids of one string; --in reads JSONL {\"text\": ...} and writes\n"
      "{\"ids\": [...]} (with --pieces also {\"pieces\": [...]}) per line.";
  p.groups = {Group::Tokenizer};
  p.add_options = [](po::options_description& d) {
    d.add_options()("text", po::value<std::string>(), "one string to encode")(
        "pieces", po::bool_switch(), "also show the pieces");
    add_io_options(d, "JSONL file of {\"text\": ...} records");
  };
  p.run = [p](const po::variables_map& vm) {
    const Tokenizer tok(tokenizer_model(vm, p));
    if (log_rank() != 0) return 0;
    const bool pieces = vm["pieces"].as<bool>();
    auto encode = [&](const std::string& text) {
      json r;
      r["ids"] = tok.encode(text);
      if (pieces) {
        r["pieces"] = json::array();
        for (int32_t id : r["ids"]) r["pieces"].push_back(tok.piece(id));
      }
      return r;
    };
    if (vm.count("text")) {
      const json r = encode(vm["text"].as<std::string>());
      for (const auto& id : r["ids"]) std::cout << id << " ";
      std::cout << "\n";
      if (pieces) std::cout << r["pieces"].dump(-1, ' ', false) << "\n";
      return 0;
    }
    if (vm["in"].as<std::string>().empty())
      throw UsageError("xwin tokenizer encode needs --text STRING or --in FILE.jsonl");
    map_jsonl(vm, [&](const json& rec) { return encode(rec.at("text").get<std::string>()); });
    return 0;
  };
  return p;
}

static std::vector<int32_t> parse_ids(const std::string& s) {
  std::string t = s;
  for (char& c : t)
    if (c == ',' || c == '[' || c == ']') c = ' ';
  std::istringstream in(t);
  std::vector<int32_t> ids;
  std::string w;
  while (in >> w) {
    try {
      size_t used = 0;
      ids.push_back(std::stoi(w, &used));
      if (used != w.size()) throw std::invalid_argument(w);
    } catch (const std::exception&) {
      throw UsageError("--ids: '" + w + "' is not a token id; give ids like \"1 450 4996\"");
    }
  }
  return ids;
}

Phase phase_tokenizer_decode() {
  Phase p;
  p.name = "tokenizer decode";
  p.summary = "token ids -> text (inspection)";
  p.details =
      "--ids \"1 450 4996\" prints the text; --in reads JSONL {\"ids\": [...]} and writes\n"
      "{\"text\": ...} per line. Control ids (BOS, EOS) decode to nothing.";
  p.groups = {Group::Tokenizer};
  p.add_options = [](po::options_description& d) {
    d.add_options()("ids", po::value<std::string>(), "ids separated by spaces or commas");
    add_io_options(d, "JSONL file of {\"ids\": [...]} records");
  };
  p.run = [p](const po::variables_map& vm) {
    const Tokenizer tok(tokenizer_model(vm, p));
    if (log_rank() != 0) return 0;
    if (vm.count("ids")) {
      std::cout << tok.decode(parse_ids(vm["ids"].as<std::string>())) << "\n";
      return 0;
    }
    if (vm["in"].as<std::string>().empty())
      throw UsageError("xwin tokenizer decode needs --ids \"1 2 3\" or --in FILE.jsonl");
    map_jsonl(vm, [&](const json& rec) {
      return json{{"text", tok.decode(rec.at("ids").get<std::vector<int32_t>>())}};
    });
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
