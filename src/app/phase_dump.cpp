// xwin dump: logits, loss and every parameter gradient for one batch, written to HDF5. This is
// what validation/ compares against the independent PyTorch reference.
#include "align/batch.h"
#include "app/cli.h"
#include "app/model_source.h"
#include "core/error.h"
#include "core/log.h"
#include "io/h5.h"

namespace xwin::cli {

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
        "seq_len", po::value<int>()->default_value(0), "sequence length T; 0 = max_seq_len");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string data_path = required(vm, "data", p), out = required(vm, "out", p);
    required(vm, "ckpt", p);
    Llama model = load_or_init(vm, p, "ckpt");
    int T = vm["seq_len"].as<int>();
    if (T <= 0) T = model.cfg.max_seq_len;
    if (T > model.cfg.max_seq_len) throw UsageError("--seq_len exceeds model.max_seq_len");
    TokenDataset data = TokenDataset::load(data_path, model.cfg.vocab_size);
    std::vector<size_t> recs(data.size());
    for (size_t r = 0; r < recs.size(); r++) recs[r] = r;
    LmBatch batch;
    build_lm_batch(data, recs, T, batch);
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
