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
#include "parallel/pipeline.h"

namespace xwin::cli {

namespace {

// Log-probabilities of some records: per record its id, n_scored, sum_logp, and its values
// (concatenated in record order; offsets index them).
struct Scores {
  std::vector<int64_t> records, n_scored, offsets{0};
  std::vector<double> sum_logp;
  std::vector<float> logprobs;
};

// On the last stage after the forward of `recs`: every real position is scored; the mask only
// selects what sum_logp adds up.
void score_batch(Llama& model, const TokenDataset& data, const std::vector<size_t>& recs,
                 const LmBatch& batch, int T, std::vector<float>& lp, Scores& out) {
  std::vector<float> w(batch.tokens.size(), 0.f);
  for (size_t b = 0; b < recs.size(); b++) {
    const int len = (int)std::min<int64_t>(data.length(recs[b]), T);
    for (int t = 0; t + 1 < len; t++) w[b * T + t] = 1.f;
  }
  lp.assign(batch.tokens.size(), 0.f);
  model.lm_loss(batch.targets.data(), w.data(), false, lp.data());
  for (size_t b = 0; b < recs.size(); b++) {
    const int len = (int)std::min<int64_t>(data.length(recs[b]), T);
    double sum = 0;
    int64_t cnt = 0;
    for (int t = 0; t + 1 < len; t++) {
      out.logprobs.push_back(lp[b * T + t]);
      if (batch.weights[b * T + t] > 0) sum += lp[b * T + t], cnt++;
    }
    out.records.push_back((int64_t)recs[b]);
    out.sum_logp.push_back(sum);
    out.n_scored.push_back(cnt);
    out.offsets.push_back((int64_t)out.logprobs.size());
  }
}

template <typename T>
std::vector<T> gatherv(const std::vector<T>& x, MPI_Datatype type, MPI_Comm comm) {
  if (comm == MPI_COMM_NULL) return x;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank), MPI_Comm_size(comm, &size);
  const int n = (int)x.size();
  std::vector<int> counts(size), displs(size, 0);
  MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm);
  for (int r = 1; r < size; r++) displs[r] = displs[r - 1] + counts[r - 1];
  std::vector<T> out(rank == 0 ? (size_t)displs[size - 1] + counts[size - 1] : 0);
  MPI_Gatherv(x.data(), n, type, out.data(), counts.data(), displs.data(), type, 0, comm);
  return out;
}

// Every record's scores on rank 0 of comm, in record order (other ranks get empty vectors).
Scores gather_scores(const Scores& local, size_t n, MPI_Comm comm) {
  std::vector<int64_t> lengths(local.records.size());
  for (size_t i = 0; i < lengths.size(); i++) lengths[i] = local.offsets[i + 1] - local.offsets[i];
  const std::vector<int64_t> recs = gatherv(local.records, MPI_INT64_T, comm);
  const std::vector<int64_t> lens = gatherv(lengths, MPI_INT64_T, comm);
  const std::vector<int64_t> cnts = gatherv(local.n_scored, MPI_INT64_T, comm);
  const std::vector<double> sums = gatherv(local.sum_logp, MPI_DOUBLE, comm);
  const std::vector<float> vals = gatherv(local.logprobs, MPI_FLOAT, comm);
  Scores all;
  if (log_rank() != 0) return all;
  require(recs.size() == n, "internal: logprobs gathered ", recs.size(), " of ", n, " records");
  std::vector<int64_t> at(n), len(n);
  int64_t pos = 0;
  for (size_t i = 0; i < recs.size(); i++)
    at[recs[i]] = pos, len[recs[i]] = lens[i], pos += lens[i];
  all.n_scored.resize(n), all.sum_logp.resize(n);
  for (size_t i = 0; i < recs.size(); i++)
    all.n_scored[recs[i]] = cnts[i], all.sum_logp[recs[i]] = sums[i];
  for (size_t r = 0; r < n; r++) {
    all.logprobs.insert(all.logprobs.end(), vals.begin() + at[r], vals.begin() + at[r] + len[r]);
    all.offsets.push_back((int64_t)all.logprobs.size());
  }
  return all;
}

}  // namespace

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
    // Batch j (records [j*bs, (j+1)*bs)) belongs to data-parallel group j % dp; inside a group
    // the batches are the micro-batches of a forward-only pipeline over its TP/PP ranks. The
    // batches do not depend on the layout, so neither do the values.
    const Grid& grid = model.grid;
    const size_t n_batches = (n + bs - 1) / bs;
    std::vector<size_t> mine;
    for (size_t j = grid.dp_rank; j < n_batches; j += grid.dp_size) mine.push_back(j);
    Scores local;  // this rank's records, in increasing order (last stage, TP rank 0 only)
    LmBatch batch;
    std::vector<float> lp;
    Timer timer;
    int progress_lines = 1;
    auto records = [&](int i) {
      std::vector<size_t> recs;
      for (size_t r = mine[i] * bs; r < std::min(n, (mine[i] + 1) * bs); r++) recs.push_back(r);
      return recs;
    };
    PipelineStage stage;
    stage.prepare = [&](int i) {
      build_lm_batch(data, records(i), T, batch);  // batch.T: the batch's longest record
      return (size_t)batch.B * batch.T * model.cfg.d_model;
    };
    stage.forward = [&](int i, const float* x) {
      const float* y = model.forward_stage(batch.tokens.data(), x, batch.B, batch.T, 0);
      if (grid.last_stage()) score_batch(model, data, records(i), batch, batch.T, lp, local);
      if (timer.seconds() > 10 * (double)progress_lines) {
        progress_lines++;
        log0("logprobs: %zu/%zu batches on rank 0's group (%.1f batches/s)", (size_t)i + 1,
             mine.size(), (i + 1) / timer.seconds());
      }
      return y;
    };
    pipeline_forward(grid.pp, (int)mine.size(), stage);
    if (!(grid.last_stage() && grid.tp_rank == 0)) local = Scores{};
    const Scores all = gather_scores(local, n, grid.world);
    const std::vector<float>& logprobs = all.logprobs;
    const std::vector<int64_t>& offsets = all.offsets;
    const std::vector<double>& sum_logp = all.sum_logp;
    const std::vector<int64_t>& n_scored = all.n_scored;
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
