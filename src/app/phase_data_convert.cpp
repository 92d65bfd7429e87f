// xwin data sft / pairs / prompts / xwin_set: JSON records -> the HDF5 datasets of DESIGN.md,
// through the SentencePiece tokenizer and the chat template. Every rank converts a contiguous
// share of the file and all ranks write one dataset together (collective parallel HDF5), so
// record order is file order whatever the rank count. Records longer than max_seq_len are
// dropped, truncated (prompt cut from the left, response kept) or stop the run (--overlong).
#include <mpi.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "app/text_options.h"
#include "core/error.h"
#include "core/log.h"
#include "io/chat_template.h"
#include "io/datasets.h"
#include "io/jsonl.h"
#include "io/records.h"

namespace xwin::cli {

using nlohmann::json;

namespace {

struct Options {
  std::string in, out;
  int64_t max_seq_len = 0;
  Overlong overlong = Overlong::Drop;
  Ties ties = Ties::Drop;
};

enum class Fate { Kept, Truncated, Dropped, Skipped };

// Applies the overlong policy to a record of `len` tokens; `cut` truncates it in place and
// says whether the response survived.
template <typename Cut>
Fate fit(size_t len, const Options& o, Cut cut) {
  if ((int64_t)len <= o.max_seq_len) return Fate::Kept;
  if (o.overlong == Overlong::Error)
    throw OverlongRecord("the record has " + std::to_string(len) + " tokens, more than " +
                         "max_seq_len = " + std::to_string(o.max_seq_len) +
                         "; raise --max_seq_len or pass --overlong drop (or truncate)");
  if (o.overlong == Overlong::Drop) return Fate::Dropped;
  return cut() ? Fate::Truncated : Fate::Dropped;
}

int64_t sum(int64_t v) {
  int64_t s = 0;
  MPI_Allreduce(&v, &s, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return s;
}

// One kind of dataset: turns records into this rank's share, then writes it (collectively).
class Builder {
 public:
  Builder(const ChatEncoder& enc, const Options& o) : enc_(enc), o_(o) {}
  virtual ~Builder() = default;
  virtual Fate add(const json& rec) = 0;
  // Checks that need every rank's records (collective); `in` names the input in errors.
  virtual void finish(const std::string& in, int64_t n_written) {}
  virtual void write(DatasetWriter& w) = 0;
  int64_t tokens = 0;

 protected:
  const ChatEncoder& enc_;
  const Options& o_;
};

class SftBuilder : public Builder {
 public:
  using Builder::Builder;
  Fate add(const json& rec) override {
    EncodedChat e = enc_.encode(conversation_from_json(rec));
    const Fate f = fit(e.tokens.size(), o_, [&] { return truncate_left(e, o_.max_seq_len); });
    if (f == Fate::Dropped) return f;
    data_.append(e.tokens, e.loss_mask);
    tokens += (int64_t)e.tokens.size();
    return f;
  }
  void write(DatasetWriter& w) override { w.ragged("", data_, true); }

 private:
  TokenDataset data_;
};

// A prompt and responses that must all fit after it: the prompt gives way from the left.
Fate fit_prompt(EncodedChat& prompt, size_t longest, const Options& o) {
  return fit(prompt.tokens.size() + longest, o, [&] {
    return (int64_t)longest + 2 <= o.max_seq_len &&
           truncate_left(prompt, (size_t)o.max_seq_len - longest);
  });
}

class PairsBuilder : public Builder {
 public:
  using Builder::Builder;
  Fate add(const json& rec) override {
    const PairRecord p = pair_from_json(rec, o_.ties);
    n_tie_ += p.tie;  // ties in the input, kept or not
    if (p.skip) return Fate::Skipped;
    EncodedChat pe = enc_.encode_prompt(p.prompt);
    const std::vector<int32_t> c = enc_.encode_reply(p.prompt, pe.tokens, p.chosen);
    const std::vector<int32_t> r = enc_.encode_reply(p.prompt, pe.tokens, p.rejected);
    const Fate f = fit_prompt(pe, std::max(c.size(), r.size()), o_);
    if (f == Fate::Dropped) return f;
    prompt_.append(pe.tokens, {}), chosen_.append(c, {}), rejected_.append(r, {});
    margin_.push_back(p.margin), tie_.push_back(p.tie);
    n_margin_ += p.has_margin;
    tokens += (int64_t)(pe.tokens.size() + c.size() + r.size());
    return f;
  }
  void finish(const std::string& in, int64_t n) override {
    n_margin_ = sum(n_margin_), n_tie_ = sum(n_tie_);
    require(n_margin_ == 0 || n_margin_ == n, in, ": ", n_margin_, " of ", n,
            " pairs give a \"margin\"; give it on every record or on none");
  }
  void write(DatasetWriter& w) override {
    w.ragged("/prompt", prompt_, false);
    w.ragged("/chosen", chosen_, false);
    w.ragged("/rejected", rejected_, false);
    if (n_margin_ > 0) w.rows("/margin", margin_);
    if (o_.ties == Ties::Keep && n_tie_ > 0) w.rows("/tie", tie_);
    w.attr("n_ties", n_tie_);
  }

 private:
  TokenDataset prompt_, chosen_, rejected_;
  std::vector<float> margin_;
  std::vector<uint8_t> tie_;
  int64_t n_margin_ = 0, n_tie_ = 0;
};

class PromptsBuilder : public Builder {
 public:
  using Builder::Builder;
  Fate add(const json& rec) override {
    EncodedChat pe = enc_.encode_prompt(prompt_from_json(rec));
    const Fate f = fit_prompt(pe, 0, o_);
    if (f == Fate::Dropped) return f;
    prompt_.append(pe.tokens, {});
    tokens += (int64_t)pe.tokens.size();
    return f;
  }
  void write(DatasetWriter& w) override { w.ragged("/prompt", prompt_, false); }

 private:
  TokenDataset prompt_;
};

class XwinSetBuilder : public Builder {
 public:
  using Builder::Builder;
  Fate add(const json& rec) override {
    const XwinSetRecord x = xwin_set_from_json(rec);
    const int64_t k = (int64_t)x.responses.size();
    require(K_ == 0 || k == K_, "the record has ", k, " responses but earlier ones have ", K_,
            "; every prompt of an Xwin-Set needs the same number K");
    K_ = k;
    EncodedChat pe = enc_.encode_prompt(x.prompt);
    std::vector<std::vector<int32_t>> rs;
    size_t longest = 0;
    for (const std::string& r : x.responses) {
      rs.push_back(enc_.encode_reply(x.prompt, pe.tokens, r));
      longest = std::max(longest, rs.back().size());
    }
    const Fate f = fit_prompt(pe, longest, o_);
    if (f == Fate::Dropped) return f;
    prompt_.append(pe.tokens, {});
    for (const auto& r : rs) responses_.append(r, {}), tokens += (int64_t)r.size();
    scores_.insert(scores_.end(), x.scores.begin(), x.scores.end());
    ref_logp_.insert(ref_logp_.end(), x.ref_logp.begin(), x.ref_logp.end());
    n_ref_ += !x.ref_logp.empty();
    tokens += (int64_t)pe.tokens.size();
    return f;
  }
  void finish(const std::string& in, int64_t n) override {
    int64_t lo = K_ > 0 ? K_ : INT64_MAX, hi = K_;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    require(lo == hi, in, ": records have ", lo, " and ", hi, " responses; every prompt of ",
            "an Xwin-Set needs the same number K");
    K_ = hi, n_ref_ = sum(n_ref_);
    require(n_ref_ == 0 || n_ref_ == n, in, ": ", n_ref_, " of ", n, " records give ",
            "\"ref_logp\"; give it on every record or on none");
  }
  void write(DatasetWriter& w) override {
    w.ragged("/prompt", prompt_, false);
    w.ragged("/responses", responses_, false);
    w.rows("/scores", scores_, K_);
    if (n_ref_ > 0) w.rows("/ref_logp", ref_logp_, K_);
    w.attr("K", K_);
  }

 private:
  TokenDataset prompt_, responses_;
  std::vector<float> scores_, ref_logp_;
  int64_t K_ = 0, n_ref_ = 0;
};

Options read_options(const po::variables_map& vm, const Phase& p) {
  Options o;
  o.in = required(vm, "in", p);
  o.out = required(vm, "out", p);
  o.max_seq_len = vm["max_seq_len"].as<int64_t>();
  if (o.max_seq_len < 2) throw UsageError("--max_seq_len must be at least 2");
  try {
    o.overlong = overlong_from_string(vm["overlong"].as<std::string>());
  } catch (const Error& e) {
    throw UsageError(std::string("--") + e.what());
  }
  if (vm.count("ties")) {
    const std::string t = vm["ties"].as<std::string>();
    if (t != "drop" && t != "keep") throw UsageError("--ties = '" + t + "' is not drop or keep");
    o.ties = t == "keep" ? Ties::Keep : Ties::Drop;
  }
  return o;
}

struct Timing {
  double parse = 0, convert = 0, write = 0;
};

// Converts this rank's share of the input; the counts are this rank's.
void convert_share(const JsonShare& in, Builder& b, int64_t counts[4], Timing& t) {
  for (size_t i = 0; i < in.size(); i++) {
    const double t0 = MPI_Wtime();
    const json rec = in.parse(i);
    const double t1 = MPI_Wtime();
    try {
      counts[(int)b.add(rec)]++;
    } catch (const json::exception& e) {
      fail(in.where(i), ": ", e.what());
    } catch (const OverlongRecord& e) {
      throw OverlongRecord(in.where(i) + ": " + e.what());
    } catch (const Error& e) {
      fail(in.where(i), ": ", e.what());
    }
    t.parse += t1 - t0, t.convert += MPI_Wtime() - t1;
  }
}

void report(const Phase& p, const Options& o, const int64_t n[4], int64_t tokens, Timing t,
            double read_s, size_t bytes) {
  MPI_Allreduce(MPI_IN_PLACE, &t, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const int64_t records = n[0] + n[1] + n[2] + n[3];
  log0(
      "%s: %lld records: %lld kept, %lld truncated, %lld dropped (> max_seq_len %lld, "
      "overlong = %s), %lld skipped; %lld tokens -> %s",
      p.name.c_str(), (long long)records, (long long)n[0], (long long)n[1], (long long)n[2],
      (long long)o.max_seq_len, overlong_name(o.overlong), (long long)n[3], (long long)tokens,
      o.out.c_str());
  log0(
      "%s: %d rank(s): read %.2f s, JSON parse %.2f s, tokenize + template %.2f s "
      "(%.0f records/s), HDF5 write %.2f s (%.0f records/s, %.1f MB)",
      p.name.c_str(), ranks, read_s, t.parse, t.convert, records / std::max(t.convert, 1e-9),
      t.write, records / std::max(t.write, 1e-9), bytes / 1e6);
}

template <typename B>
int convert(const Phase& p, const po::variables_map& vm, const char* schema) {
  const Options o = read_options(vm, p);
  const Tokenizer tok(tokenizer_model(vm, p));
  const ChatEncoder enc(tok, chat_template(vm));
  B builder(enc, o);
  const double t0 = MPI_Wtime();
  const JsonShare in(o.in, MPI_COMM_WORLD);
  double read_s = MPI_Wtime() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &read_s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  int64_t n[4] = {0, 0, 0, 0};
  Timing t;
  convert_share(in, builder, n, t);
  MPI_Allreduce(MPI_IN_PLACE, n, 4, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  require(n[0] + n[1] > 0, o.in, ": no records to write (", n[2],
          " longer than max_seq_len = ", o.max_seq_len, ", ", n[3],
          " skipped); check the file and --max_seq_len");
  builder.finish(o.in, n[0] + n[1]);

  DatasetInfo info;
  info.schema = schema, info.tokenizer_hash = tok.hash(), info.tokenizer_path = tok.path();
  info.template_json = enc.chat_template().to_json(), info.source = o.in;
  info.overlong = overlong_name(o.overlong), info.max_seq_len = o.max_seq_len;
  info.n_kept = n[0], info.n_truncated = n[1], info.n_dropped = n[2], info.n_skipped = n[3];
  const double t1 = MPI_Wtime();
  DatasetWriter w(o.out, MPI_COMM_WORLD);
  builder.write(w);
  w.info(info);
  w.commit();
  t.write = MPI_Wtime() - t1;
  const int64_t bytes = sum((int64_t)w.bytes());
  report(p, o, n, sum(builder.tokens), t, read_s, (size_t)bytes);
  return 0;
}

void add_convert_options(po::options_description& d, const char* input) {
  d.add_options()("in", po::value<std::string>(), input)("out", po::value<std::string>(),
                                                         "HDF5 dataset to write (required)")(
      "max_seq_len", po::value<int64_t>()->default_value(4096),
      "longest record in tokens (prompt + the longest response)")(
      "overlong", po::value<std::string>()->default_value("drop"),
      "records longer than max_seq_len: drop, truncate (cut the prompt from the left, keep "
      "the response) or error");
}

Phase data_phase(const std::string& name, const std::string& summary, const char* input) {
  Phase p;
  p.name = name;
  p.summary = summary;
  p.groups = {Group::Tokenizer, Group::Template};
  p.add_options = [input](po::options_description& d) { add_convert_options(d, input); };
  return p;
}

const char* kCommon =
    "Runs on every rank (mpiexec -n N): each converts a contiguous share of the file and all\n"
    "write one dataset with collective parallel HDF5, through OUT.tmp renamed when complete.\n"
    "Attributes record the tokenizer hash, the template and the counts of kept, truncated,\n"
    "dropped and skipped records.";

}  // namespace

Phase phase_data_sft() {
  Phase p = data_phase("data sft", "conversations (ShareGPT / OpenAI JSONL) -> SFT dataset",
                       "conversations JSONL (required)");
  p.details = std::string(
                  "Each line: {\"conversations\": [{\"from\": \"human\"|\"gpt\"|\"system\", "
                  "\"value\": ...}]} or\n{\"messages\": [{\"role\": "
                  "\"user\"|\"assistant\"|\"system\", \"content\": ...}]}, ending with a "
                  "reply.\nThe loss mask covers every reply and the EOS after it.\n") +
              kCommon;
  p.run = [p](const po::variables_map& vm) { return convert<SftBuilder>(p, vm, kSchemaSft); };
  return p;
}

Phase phase_data_pairs() {
  Phase p = data_phase("data pairs", "preference pairs (JSONL, AlpacaEval annotations) -> pairs",
                       "pairs JSONL or AlpacaEval annotations JSON (required)");
  p.details = std::string(
                  "Records: {\"prompt\": TEXT or TURNS (or \"conversations\"/\"messages\"), "
                  "\"chosen\": ..., \"rejected\": ...,\n\"margin\": x (optional)}, or "
                  "AlpacaEval's {\"instruction\", \"output_1\", \"output_2\", \"preference\"}\n"
                  "(1 or 2; 0 and 1.5 are ties, see --ties; no preference: skipped).\n") +
              kCommon;
  const auto base = p.add_options;
  p.add_options = [base](po::options_description& d) {
    base(d);
    d.add_options()("ties", po::value<std::string>()->default_value("drop"),
                    "AlpacaEval ties: drop, or keep (as output_1 > output_2, flagged in /tie)");
  };
  p.run = [p](const po::variables_map& vm) { return convert<PairsBuilder>(p, vm, kSchemaPairs); };
  return p;
}

Phase phase_data_prompts() {
  Phase p = data_phase("data prompts", "prompts for sampling (last turn the user's) -> prompts",
                       "prompts JSONL: conversations, {\"prompt\"} or {\"instruction\"} "
                       "(required)");
  p.details = std::string(
                  "Each prompt ends with the assistant cue (\"ASSISTANT:\"), ready for the "
                  "sampler.\n") +
              kCommon;
  p.run = [p](const po::variables_map& vm) {
    return convert<PromptsBuilder>(p, vm, kSchemaPrompts);
  };
  return p;
}

Phase phase_data_xwin_set() {
  Phase p = data_phase("data xwin_set", "prompts with K scored responses (JSONL) -> Xwin-Set",
                       "Xwin-Set JSONL (required)");
  p.details = std::string(
                  "Each line: a prompt (as for data prompts), \"responses\": [K texts], "
                  "\"scores\": [K numbers],\n\"ref_logp\": [K numbers] (optional). K is the "
                  "same for every prompt.\n") +
              kCommon;
  p.run = [p](const po::variables_map& vm) {
    return convert<XwinSetBuilder>(p, vm, kSchemaXwinSet);
  };
  return p;
}

}  // namespace xwin::cli
