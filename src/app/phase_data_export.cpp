// xwin data export: any xwin dataset -> JSONL a person can read, in the same record formats
// `xwin data` reads, so JSONL -> HDF5 -> JSONL gives back the conversations. The template comes
// from the dataset itself; the tokenizer must be the one it was made with (checked by hash).
#include <nlohmann/json.hpp>

#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "io/datasets.h"
#include "io/jsonl.h"
#include "io/records.h"

namespace xwin::cli {

using nlohmann::json;

namespace {

struct Export {
  const ChatEncoder& enc;
  TurnFormat format;
  JsonlWriter& out;
  size_t limit;

  json prompt(const TokenDataset& d, size_t r) const {
    const Conversation c = enc.decode_prompt(d.tokens.data() + d.offsets[r], (size_t)d.length(r));
    return turns_to_json(c, format);
  }
  std::string reply(const TokenDataset& prompts, size_t p, const TokenDataset& d, size_t r) const {
    return enc.decode_reply(prompts.tokens.data() + prompts.offsets[p], (size_t)prompts.length(p),
                            d.tokens.data() + d.offsets[r], (size_t)d.length(r));
  }
  const char* key() const { return format == TurnFormat::OpenAI ? "messages" : "conversations"; }
};

// Runs `one` on records [0, n) up to the limit, naming the record in any error.
template <typename F>
size_t each(const std::string& path, size_t n, size_t limit, F one) {
  const size_t m = limit > 0 ? std::min(n, limit) : n;
  for (size_t r = 0; r < m; r++) {
    try {
      one(r);
    } catch (const Error& e) {
      fail(path, ": record ", r, ": ", e.what());
    }
  }
  return m;
}

size_t export_sft(const std::string& path, const Export& x) {
  const TokenDataset d = TokenDataset::load(path);
  require(d.loss_mask.size() == d.tokens.size(), path, ": an SFT dataset needs /loss_mask");
  return each(path, d.size(), x.limit, [&](size_t r) {
    const size_t o = (size_t)d.offsets[r];
    const Conversation c = x.enc.decode(&d.tokens[o], &d.loss_mask[o], (size_t)d.length(r));
    x.out.write(conversation_to_json(c, x.format));
  });
}

size_t export_pairs(const std::string& path, const std::string& hash, const Export& x) {
  const PairsDataset d = PairsDataset::load(path, hash);
  return each(path, d.size(), x.limit, [&](size_t r) {
    json j{{x.key(), x.prompt(d.prompt, r)},
           {"chosen", x.reply(d.prompt, r, d.chosen, r)},
           {"rejected", x.reply(d.prompt, r, d.rejected, r)}};
    if (!d.margin.empty()) j["margin"] = d.margin[r];
    if (!d.tie.empty() && d.tie[r]) j["tie"] = true;
    x.out.write(j);
  });
}

size_t export_prompts(const std::string& path, const std::string& hash, const Export& x) {
  const PromptsDataset d = PromptsDataset::load(path, hash);
  return each(path, d.size(), x.limit, [&](size_t r) {
    x.out.write(json{{x.key(), x.prompt(d.prompt, r)}});
  });
}

size_t export_xwin_set(const std::string& path, const std::string& hash, const Export& x) {
  const XwinSetDataset d = XwinSetDataset::load(path, hash);
  const size_t K = (size_t)d.K;
  return each(path, d.size(), x.limit, [&](size_t p) {
    json j{{x.key(), x.prompt(d.prompt, p)}, {"responses", json::array()}};
    for (size_t k = 0; k < K; k++)
      j["responses"].push_back(x.reply(d.prompt, p, d.responses, p * K + k));
    j["scores"] = std::vector<float>(d.scores.begin() + p * K, d.scores.begin() + (p + 1) * K);
    if (!d.ref_logp.empty())
      j["ref_logp"] =
          std::vector<float>(d.ref_logp.begin() + p * K, d.ref_logp.begin() + (p + 1) * K);
    x.out.write(j);
  });
}

size_t export_tokens(const std::string& path, JsonlWriter& out, size_t limit) {
  const TokenDataset d = TokenDataset::load(path);
  return each(path, d.size(), limit, [&](size_t r) {
    const auto b = d.tokens.begin() + d.offsets[r], e = d.tokens.begin() + d.offsets[r + 1];
    json j{{"tokens", std::vector<int32_t>(b, e)}};
    if (!d.loss_mask.empty())
      j["loss_mask"] = std::vector<int>(d.loss_mask.begin() + d.offsets[r],
                                        d.loss_mask.begin() + d.offsets[r + 1]);
    out.write(j);
  });
}

}  // namespace

Phase phase_data_export() {
  Phase p;
  p.name = "data export";
  p.summary = "any xwin dataset (sft, pairs, prompts, xwin_set, tokens) -> readable JSONL";
  p.details =
      "Writes the record formats `xwin data` reads: {\"conversations\": [...]} for SFT and\n"
      "prompts; plus \"chosen\"/\"rejected\" (and \"margin\", \"tie\") for pairs; plus "
      "\"responses\",\n\"scores\" (and \"ref_logp\") for an Xwin-Set. The template is the "
      "dataset's own; the\ntokenizer must be the one it was made with. A system prompt equal to "
      "the template's\ndefault is not written as a turn.";
  p.groups = {Group::Tokenizer};
  p.add_options = [](po::options_description& d) {
    d.add_options()("in", po::value<std::string>(), "HDF5 dataset to read (required)")(
        "out", po::value<std::string>(), "JSONL file to write (required)")(
        "format", po::value<std::string>()->default_value("sharegpt"),
        "turns as sharegpt ({\"from\", \"value\"}) or openai ({\"role\", \"content\"})")(
        "limit", po::value<int64_t>()->default_value(0),
        "export only the first N records (0: all)");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string in = required(vm, "in", p), out_path = required(vm, "out", p);
    const std::string fmt = vm["format"].as<std::string>();
    if (fmt != "sharegpt" && fmt != "openai")
      throw UsageError("--format = '" + fmt + "' is not sharegpt or openai");
    if (log_rank() != 0) return 0;
    const DatasetInfo info = DatasetInfo::read(in);
    info.check_schema(in, "xwin.sft,xwin.pairs,xwin.prompts,xwin.xwin_set,xwin.tokens");
    JsonlWriter out(out_path);
    size_t n = 0;
    if (info.schema == kSchemaTokens) {
      n = export_tokens(in, out, (size_t)vm["limit"].as<int64_t>());
    } else {
      const Tokenizer tok(tokenizer_model(vm, p));
      info.check_tokenizer(in, tok.hash(), tok.path());
      const ChatEncoder enc(tok, ChatTemplate::from_json(info.template_json, in));
      const TurnFormat f = fmt == "openai" ? TurnFormat::OpenAI : TurnFormat::ShareGPT;
      const Export x{enc, f, out, (size_t)vm["limit"].as<int64_t>()};
      if (info.schema == kSchemaSft)
        n = export_sft(in, x);
      else if (info.schema == kSchemaPairs)
        n = export_pairs(in, tok.hash(), x);
      else if (info.schema == kSchemaPrompts)
        n = export_prompts(in, tok.hash(), x);
      else
        n = export_xwin_set(in, tok.hash(), x);
    }
    out.commit();
    log0("data export: %zu %s records -> %s", n, info.schema.c_str(), out_path.c_str());
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
