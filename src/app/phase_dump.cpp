// xwin dump: logits, loss and every parameter gradient for one batch, written to HDF5. This is
// what validation/ compares against the independent PyTorch reference.
#include <memory>

#include "align/batch.h"
#include "align/dpo_objective.h"
#include "align/rm_objective.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "io/h5.h"

namespace xwin::cli {

// Loss and gradients of a preference objective over every record of the dataset, one batch.
static int dump_preference(const po::variables_map& vm, Llama& model, const std::string& kind,
                           const std::string& data_path, int T, const std::string& out) {
  std::unique_ptr<Objective> obj;
  size_t n = 0;
  if (kind == "rm") {
    require(model.cfg.value_head, "dump --objective rm needs a checkpoint with a value head");
    auto groups = groups_from_pairs(PairsDataset::load(data_path), true);
    n = groups.size();
    obj = std::make_unique<RmObjective>(std::move(groups), T, false, 0, 0.0);
  } else if (kind == "dpo") {
    DpoConfig dc;
    dc.beta = vm["beta"].as<double>();
    dc.loss = dpo_loss_from_string(vm["loss"].as<std::string>());
    auto pairs = read_dpo_pairs(data_path);
    n = pairs.size();
    obj = std::make_unique<DpoObjective>(std::move(pairs), T, false, 0, dc);
  } else {
    throw UsageError("--objective must be lm, rm or dpo (got '" + kind + "')");
  }
  std::vector<int64_t> samples(n);
  for (size_t i = 0; i < n; i++) samples[i] = (int64_t)i;
  std::vector<int32_t> tokens;
  int B = 0, TT = 0;
  obj->inputs(samples, tokens, B, TT);
  model.zero_grad();
  model.forward(tokens.data(), B, TT);
  const double loss = obj->head(model, samples, 1.0 / (double)obj->count(samples), true);
  model.backward(tokens.data());
  if (log_rank() != 0) return 0;
  h5::File f(out, 'w');
  f.write("/loss", &loss, {});
  for (const auto& t : model.layout.tensors)
    f.write("/grads/" + t.name, model.grads.data() + t.offset, t.shape);
  log0("dump: objective %s, %zu pairs, loss=%.8f -> %s", kind.c_str(), n, loss, out.c_str());
  return 0;
}

Phase phase_dump() {
  Phase p;
  p.name = "dump";
  p.summary = "logits, loss and gradients of one batch (all records of --data) to HDF5";
  p.details =
      "Writes /logits [B, T, V], /loss (mean masked cross-entropy), /grads/<param> and, with a\n"
      "value head, /value [B, T]. Meant for small models: validation and debugging.";
  p.add_options = [](po::options_description& d) {
    d.add_options()("ckpt", po::value<std::string>(), "checkpoint directory (required)")(
        "data", po::value<std::string>(), "token dataset; every record joins the batch (required)")(
        "out", po::value<std::string>(), "HDF5 file to write (required)")(
        "seq_len", po::value<int>()->default_value(0), "sequence length T; 0 = max_seq_len")(
        "objective", po::value<std::string>()->default_value("lm"),
        "lm: masked CE on a token dataset; rm: Bradley-Terry on a pairs dataset (needs a value "
        "head); dpo: DPO on pairs with reference log-probs (as xwin dpo writes them)")(
        "beta", po::value<double>()->default_value(0.1, "0.1"), "DPO beta (objective dpo)")(
        "loss", po::value<std::string>()->default_value("sigmoid"), "DPO loss (objective dpo)");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string data_path = required(vm, "data", p), out = required(vm, "out", p);
    required(vm, "ckpt", p);
    Llama model = load_or_init(vm, p, "ckpt");
    int T = vm["seq_len"].as<int>();
    if (T <= 0) T = model.cfg.max_seq_len;
    if (T > model.cfg.max_seq_len) throw UsageError("--seq_len exceeds model.max_seq_len");
    const std::string objective = vm["objective"].as<std::string>();
    if (objective != "lm") return dump_preference(vm, model, objective, data_path, T, out);
    TokenDataset data = TokenDataset::load(data_path, model.cfg.vocab_size);
    std::vector<size_t> recs(data.size());
    for (size_t r = 0; r < recs.size(); r++) recs[r] = r;
    LmBatch batch;
    build_lm_batch(data, recs, T, batch);
    T = batch.T;  // the longest record, at most --seq_len
    require(batch.n_loss_tokens > 0, data_path, ": no position carries loss");
    std::vector<float> w(batch.weights);
    for (float& x : w) x /= (float)batch.n_loss_tokens;
    model.zero_grad();
    model.forward(batch.tokens.data(), batch.B, T);
    std::vector<float> logits((size_t)batch.B * T * model.cfg.vocab_size);
    model.logits(logits.data());
    std::vector<float> value;
    if (model.cfg.value_head) {
      value.resize((size_t)batch.B * T);
      model.values(value.data());
    }
    const double loss = model.lm_loss(batch.targets.data(), w.data(), true, nullptr);
    model.backward(batch.tokens.data());
    if (log_rank() != 0) return 0;
    h5::File f(out, 'w');
    f.write("/logits", logits.data(), {batch.B, T, model.cfg.vocab_size});
    f.write("/loss", &loss, {});
    if (!value.empty()) f.write("/value", value.data(), {batch.B, T});
    for (const auto& t : model.layout.tensors)
      f.write("/grads/" + t.name, model.grads.data() + t.offset, t.shape);
    log0("dump: B=%d T=%d loss=%.8f -> %s", batch.B, T, loss, out.c_str());
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
