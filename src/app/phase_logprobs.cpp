// xwin logprobs: per-token log-probabilities of token sequences under a checkpoint. Users score
// text with it; RM and DPO store reference log-probabilities the same way.
#include <algorithm>

#include "align/batch.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "core/version.h"
#include "io/h5.h"

namespace xwin::cli {

Phase phase_logprobs() {
  Phase p;
  p.name = "logprobs";
  p.summary = "per-token log-probabilities of a token dataset under a checkpoint (HDF5 out)";
  p.details =
      "For a record of n tokens (truncated to --seq_len) writes n-1 values: log p(token i |\n"
      "tokens < i) for i = 1..n-1, as a ragged /logprobs (float32) with /offsets (int64), and\n"
      "per record /sum_logp (float64, over loss-mask tokens when the dataset has a mask, all\n"
      "tokens otherwise) and /n_scored (int64).";
  p.add_options = [](po::options_description& d) {
    d.add_options()("ckpt", po::value<std::string>(), "checkpoint directory (required)")(
        "data", po::value<std::string>(), "token dataset (HDF5) to score (required)")(
        "out", po::value<std::string>(), "HDF5 file to write (required)")(
        "seq_len", po::value<int>()->default_value(0), "truncate records to this; 0 = max_seq_len")(
        "batch_size", po::value<int>()->default_value(8), "records per forward pass");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string ckpt = required(vm, "ckpt", p), data_path = required(vm, "data", p);
    const std::string out = required(vm, "out", p);
    Llama model = load_or_init(vm, p, "ckpt");
    int T = vm["seq_len"].as<int>();
    if (T <= 0) T = model.cfg.max_seq_len;
    if (T > model.cfg.max_seq_len) throw UsageError("--seq_len exceeds model.max_seq_len");
    const int bs = vm["batch_size"].as<int>();
    if (bs <= 0) throw UsageError("--batch_size must be positive");
    TokenDataset data = TokenDataset::load(data_path, model.cfg.vocab_size);
    const size_t n = data.size();
    std::vector<float> logprobs;
    std::vector<int64_t> offsets{0}, n_scored(n);
    std::vector<double> sum_logp(n);
    LmBatch batch;
    Timer timer;
    int progress_lines = 1;
    std::vector<float> lp;
    for (size_t r0 = 0; r0 < n; r0 += bs) {
      std::vector<size_t> recs;
      for (size_t r = r0; r < std::min(n, r0 + bs); r++) recs.push_back(r);
      build_lm_batch(data, recs, T, batch);
      // Score every real position; the mask only selects what sum_logp adds up.
      std::vector<float> w(batch.tokens.size(), 0.f);
      for (size_t b = 0; b < recs.size(); b++) {
        const int len = (int)std::min<int64_t>(data.length(recs[b]), T);
        for (int t = 0; t + 1 < len; t++) w[b * T + t] = 1.f;
      }
      model.forward(batch.tokens.data(), batch.B, T);
      lp.assign(batch.tokens.size(), 0.f);
      model.lm_loss(batch.targets.data(), w.data(), false, lp.data());
      for (size_t b = 0; b < recs.size(); b++) {
        const int len = (int)std::min<int64_t>(data.length(recs[b]), T);
        for (int t = 0; t + 1 < len; t++) {
          logprobs.push_back(lp[b * T + t]);
          if (batch.weights[b * T + t] > 0) sum_logp[recs[b]] += lp[b * T + t], n_scored[recs[b]]++;
        }
        offsets.push_back((int64_t)logprobs.size());
      }
      if (timer.seconds() > 10 * (double)progress_lines) {
        progress_lines++;
        log0("logprobs: %zu/%zu records (%.1f records/s)", std::min(n, r0 + bs), n,
             std::min(n, r0 + bs) / timer.seconds());
      }
    }
    if (log_rank() == 0) {
      const std::string tmp = out + ".tmp";
      {
        h5::File f(tmp, 'w');
        f.write("/logprobs", logprobs.data(), {(int64_t)logprobs.size()});
        f.write("/offsets", offsets.data(), {(int64_t)offsets.size()});
        f.write("/sum_logp", sum_logp.data(), {(int64_t)n});
        f.write("/n_scored", n_scored.data(), {(int64_t)n});
        f.set_attr("/", "schema", std::string("xwin.logprobs"));
        f.set_attr("/", "version", (int64_t)1);
        f.set_attr("/", "checkpoint", ckpt);
        f.set_attr("/", "data", data_path);
        f.set_attr("/", "seq_len", (int64_t)T);
        f.set_attr("/", "xwin_version", std::string(XWIN_VERSION " (" XWIN_GIT_REV ")"));
      }
      require(std::rename(tmp.c_str(), out.c_str()) == 0, out, ": cannot rename into place");
      double sum = 0;
      int64_t cnt = 0;
      for (size_t r = 0; r < n; r++) sum += sum_logp[r], cnt += n_scored[r];
      log0("logprobs: %zu records, mean -log p over %lld scored tokens = %.4f -> %s", n,
           (long long)cnt, cnt ? -sum / (double)cnt : 0.0, out.c_str());
    }
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
