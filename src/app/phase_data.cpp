// xwin data tokens / data synth: the minimal dataset writers of the foundation. `tokens` turns
// JSONL token lists into the HDF5 token format; `synth` writes a small verifiable task (reverse
// a string of symbols) so the demo trains on something with a known right answer.
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/tokens.h"

namespace xwin::cli {

Phase phase_data_tokens() {
  Phase p;
  p.name = "data tokens";
  p.summary = "JSONL token lists -> HDF5 token dataset";
  p.details =
      "Each line: {\"tokens\": [ids...], \"loss_mask\": [0/1...]} (loss_mask optional: without it\n"
      "the file has no mask and every token is a training target).";
  p.add_options = [](po::options_description& d) {
    d.add_options()("in", po::value<std::string>(), "JSONL file to read (required)")(
        "out", po::value<std::string>(), "HDF5 file to write (required)");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string in_path = required(vm, "in", p), out = required(vm, "out", p);
    if (log_rank() != 0) return 0;
    std::ifstream in(in_path);
    require(in.good(), in_path, ": cannot open");
    TokenDataset d;
    std::string line;
    long lineno = 0;
    bool any_mask = false, any_nomask = false;
    while (std::getline(in, line)) {
      lineno++;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::vector<int32_t> toks;
      std::vector<uint8_t> mask;
      try {
        auto j = nlohmann::json::parse(line);
        toks = j.at("tokens").get<std::vector<int32_t>>();
        if (j.contains("loss_mask")) {
          for (int v : j["loss_mask"].get<std::vector<int>>()) mask.push_back(v != 0);
          any_mask = true;
        } else {
          any_nomask = true;
        }
      } catch (const nlohmann::json::exception& e) {
        fail(in_path, ":", lineno, ": not a {\"tokens\": [...]} record (", e.what(), ")");
      }
      require(mask.empty() || mask.size() == toks.size(), in_path, ":", lineno, ": loss_mask has ",
              mask.size(), " entries but tokens has ", toks.size());
      for (int32_t t : toks) require(t >= 0, in_path, ":", lineno, ": negative token id ", t);
      d.append(toks, mask);
    }
    require(!(any_mask && any_nomask), in_path,
            ": some records have loss_mask and some do not; give it on every line or none");
    require(d.size() > 0, in_path, ": no records");
    if (!any_mask) d.loss_mask.clear();
    d.save(out, in_path);
    log0("data tokens: %zu records, %zu tokens -> %s", d.size(), d.tokens.size(), out.c_str());
    return 0;
  };
  return p;
}

Phase phase_data_synth() {
  Phase p;
  p.name = "data synth";
  p.summary = "write a synthetic verifiable SFT task (reverse a symbol string) as HDF5";
  p.details =
      "Token ids: 0 pad, 1 BOS, 2 EOS, 3 separator, 4.. symbols. Record: BOS s_1..s_n SEP\n"
      "s_n..s_1 EOS, loss mask on the reversed part and EOS. Lengths are uniform in\n"
      "[min_len, max_len]; every record is a function of (seed, index).";
  p.add_options = [](po::options_description& d) {
    d.add_options()("out", po::value<std::string>(), "HDF5 file to write (required)")(
        "records", po::value<int>()->default_value(2048), "number of records")(
        "symbols", po::value<int>()->default_value(16), "alphabet size (vocab needs symbols + 4)")(
        "min_len", po::value<int>()->default_value(4), "shortest string")(
        "max_len", po::value<int>()->default_value(12), "longest string")(
        "seed", po::value<uint64_t>()->default_value(7), "seed");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string out = required(vm, "out", p);
    const int n = vm["records"].as<int>(), S = vm["symbols"].as<int>();
    const int lo = vm["min_len"].as<int>(), hi = vm["max_len"].as<int>();
    const uint64_t seed = vm["seed"].as<uint64_t>();
    if (n <= 0 || S <= 0 || lo <= 0 || hi < lo)
      throw UsageError("data synth needs records > 0, symbols > 0 and 0 < min_len <= max_len");
    if (log_rank() != 0) return 0;
    TokenDataset d;
    for (int r = 0; r < n; r++) {
      const int len = lo + (int)(rng_u64(seed, 1, r) % (uint64_t)(hi - lo + 1));
      std::vector<int32_t> s(len), toks{1};
      for (int i = 0; i < len; i++) s[i] = 4 + (int)(rng_u64(seed, 2 + r, i) % (uint64_t)S);
      toks.insert(toks.end(), s.begin(), s.end());
      toks.push_back(3);
      toks.insert(toks.end(), s.rbegin(), s.rend());
      toks.push_back(2);
      std::vector<uint8_t> mask(toks.size(), 0);
      for (size_t i = len + 2; i < toks.size(); i++) mask[i] = 1;
      d.append(toks, mask);
    }
    d.save(out, "xwin data synth (reverse)");
    log0("data synth: %d records of the reverse task, %zu tokens -> %s", n, d.tokens.size(),
         out.c_str());
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
