// xwin_bench: times one full training step (Trainer::step: zero grads, forward, LM loss,
// backward, global-norm clip, AdamW) on random tokens, and the sgemm rate of the BLAS xwin links
// in the same process and thread count. Prints one JSON line (see bench/run_bench.py).
//
//   xwin_bench --vocab 8192 --d_model 512 --layers 8 --heads 8 --ffn 1536 --seq 512 --batch 4
//              [--kv_heads H] [--steps 5] [--warmup 2] [--threads N] [--config NAME] [--phases]
//
// --phases adds a per-phase breakdown (forward / LM head + CE / backward / optimizer) and a
// replay of the step's sgemm calls and attention kernels on the same shapes, so the time outside
// BLAS and attention can be read off.
#include <cblas.h>
#include <mpi.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "align/lm_objective.h"
#include "align/trainer.h"
#include "core/error.h"
#include "core/timer.h"
#include "io/tokens.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/rmsnorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "model/llama.h"

extern "C" void openblas_set_num_threads(int);

namespace {

struct Args {
  std::string config = "custom";
  int vocab = 512, d_model = 128, layers = 4, heads = 4, kv_heads = 0, ffn = 384, seq = 128,
      batch = 16, steps = 5, warmup = 2, threads = 1;
  bool phases = false;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "xwin_bench: %s\nusage: xwin_bench --vocab V --d_model C --layers L --heads H "
               "[--kv_heads KV] --ffn F --seq T --batch B [--steps 5] [--warmup 2] "
               "[--threads N] [--config NAME] [--phases]\n",
               msg);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    if (k == "--phases") {
      a.phases = true;
      continue;
    }
    if (k == "-h" || k == "--help") usage("help");
    if (i + 1 >= argc) usage(("missing value for " + k).c_str());
    const char* v = argv[++i];
    if (k == "--config") {
      a.config = v;
      continue;
    }
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (!end || *end || x <= 0) usage(("bad value for " + k + ": " + v).c_str());
    const int n = (int)x;
    if (k == "--vocab")
      a.vocab = n;
    else if (k == "--d_model")
      a.d_model = n;
    else if (k == "--layers")
      a.layers = n;
    else if (k == "--heads")
      a.heads = n;
    else if (k == "--kv_heads")
      a.kv_heads = n;
    else if (k == "--ffn")
      a.ffn = n;
    else if (k == "--seq")
      a.seq = n;
    else if (k == "--batch")
      a.batch = n;
    else if (k == "--steps")
      a.steps = n;
    else if (k == "--warmup")
      a.warmup = n;
    else if (k == "--threads")
      a.threads = n;
    else
      usage(("unknown flag " + k).c_str());
  }
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  return a;
}

// The benchmark's FLOP count for one training step (bench/torch_step.py uses the same formula):
// 6 * tokens * matmul parameters (q, k, v, o, gate, up, down per layer, plus the LM head; the
// embedding lookup is not a matmul) + attention: forward is QK^T and PV, 2*T*T*hd FLOPs each per
// (sequence, head, layer), halved for causality; training is 3x forward.
double step_flops(const Args& a) {
  const double C = a.d_model, F = a.ffn, hd = (double)a.d_model / a.heads;
  const double QD = a.heads * hd, KD = a.kv_heads * hd;
  const double per_layer = C * QD + 2 * C * KD + QD * C + 3 * C * F;
  const double matmul_params = a.layers * per_layer + (double)a.vocab * C;
  const double tokens = (double)a.batch * a.seq;
  const double attn_fwd =
      (double)a.batch * a.layers * a.heads * 2.0 * (2.0 * a.seq * a.seq * hd) / 2.0;
  return 6.0 * tokens * matmul_params + 3.0 * attn_fwd;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median seconds of fn over reps runs, after one untimed run.
double time_median(int reps, const std::function<void()>& fn) {
  fn();
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    xwin::Timer tm;
    fn();
    t.push_back(tm.seconds());
  }
  return median(t);
}

void fill_random(std::vector<float>& v, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  for (float& x : v) x = d(g);
}

// Row-major sgemm in the three orientations the model uses (see kernels/cpu/matmul.cpp):
//   NT  forward       out[M, OC]  = inp[M, IC]  @ W[OC, IC]^T
//   NN  backward dx   dinp[M, IC] += dout[M, OC] @ W[OC, IC]
//   TN  backward dW   dW[OC, IC]  += dout[M, OC]^T @ inp[M, IC]
// Each is 2*M*IC*OC FLOPs. Returns best-of-reps GFLOP/s per orientation and the aggregate
// (total FLOPs / sum of the three best times).
nlohmann::json sgemm_rate(int M, int IC, int OC, int reps) {
  std::vector<float> inp((size_t)M * IC), W((size_t)OC * IC), dout((size_t)M * OC),
      out((size_t)M * OC), dinp((size_t)M * IC), dW((size_t)OC * IC);
  fill_random(inp, 1), fill_random(W, 2, 0.05f), fill_random(dout, 3, 0.01f);
  std::fill(dinp.begin(), dinp.end(), 0.f), std::fill(dW.begin(), dW.end(), 0.f);
  const double flops = 2.0 * M * IC * OC;
  auto best = [&](const std::function<void()>& fn) {
    fn();
    double b = 1e30;
    for (int r = 0; r < reps; r++) {
      xwin::Timer t;
      fn();
      b = std::min(b, t.seconds());
    }
    return b;
  };
  const double nt = best([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, OC, IC, 1.0f, inp.data(), IC, W.data(),
                IC, 0.0f, out.data(), OC);
  });
  const double nn = best([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, IC, OC, 1.0f, dout.data(), OC,
                W.data(), IC, 1.0f, dinp.data(), IC);
  });
  const double tn = best([&] {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, M, 1.0f, dout.data(), OC,
                inp.data(), IC, 1.0f, dW.data(), IC);
  });
  return {{"shape", {M, IC, OC}},
          {"NT", flops / nt * 1e-9},
          {"NN", flops / nn * 1e-9},
          {"TN", flops / tn * 1e-9},
          {"aggregate", 3 * flops / (nt + nn + tn) * 1e-9}};
}

// Per-phase times of a step on the model, plus a replay of its sgemm calls and attention
// kernels on the same shapes (outside the model) to split forward/backward into BLAS, attention
// and everything else.
nlohmann::json phase_breakdown(const Args& a, xwin::Llama& model, const xwin::LmBatch& batch,
                               xwin::Trainer& trainer, int reps) {
  using namespace xwin;
  const int B = a.batch, T = a.seq, N = B * T, C = a.d_model, F = a.ffn, V = a.vocab;
  const int HD = C / a.heads, QD = a.heads * HD, KD = a.kv_heads * HD;
  std::vector<float> w(batch.weights);
  const float scale = 1.0f / (float)std::max<int64_t>(1, batch.n_loss_tokens);
  for (float& x : w) x *= scale;

  nlohmann::json j;
  j["zero_grad"] = time_median(reps, [&] { model.zero_grad(); });
  j["forward"] = time_median(reps, [&] { model.forward(batch.tokens.data(), B, T); });
  model.forward(batch.tokens.data(), B, T);
  j["lm_head_ce"] =
      time_median(reps, [&] { model.lm_loss(batch.targets.data(), w.data(), true, nullptr); });
  // backward() only reads the last forward's activations and dhidden(); rerunning it
  // accumulates into grads, which is harmless for timing.
  j["backward"] = time_median(reps, [&] { model.backward(batch.tokens.data()); });
  const size_t P = model.layout.total;
  std::vector<float> m(P, 0.f), v(P, 0.f);
  j["optimizer"] = time_median(reps, [&] {
    float* g = model.grads.data();
    const double norm = std::sqrt(cpu::sum_squares(g, P));
    cpu::scale_inplace(g, (float)(1.0 / (norm + 1e-6)), P);
    for (const auto& t : model.layout.tensors) {
      cpu::AdamWHyper h{1e-4f, 0.9f, 0.95f, 1e-8f, t.decay ? 0.1f : 0.f};
      cpu::adamw_update(model.params.data() + t.offset, g + t.offset, m.data() + t.offset,
                        v.data() + t.offset, t.numel, h, 1);
    }
  });

  // sgemm replay: the 7 projections per layer forward (NT), and per projection dinp (NN) and
  // dW (TN) backward; the LM head in chunks of 256 rows: logits (NT), dx (NN), dW (TN).
  struct Shape {
    int IC, OC;
  };
  const std::vector<Shape> proj = {{C, QD}, {C, KD}, {C, KD}, {QD, C}, {C, F}, {C, F}, {F, C}};
  size_t big = 0;
  for (auto s : proj) big = std::max(big, (size_t)std::max(s.IC, s.OC));
  std::vector<float> X((size_t)N * big), Y((size_t)N * big), Wt(big * big), dWt(big * big);
  fill_random(X, 4), fill_random(Y, 5, 0.01f), fill_random(Wt, 6, 0.05f);
  std::fill(dWt.begin(), dWt.end(), 0.f);
  // The step's threading: sgemm_rows (kernels/cpu/blas.h), as matmul_forward / _backward.
  auto nt = [&](int M, int IC, int OC) {
    cpu::sgemm_rows(false, true, M, OC, IC, 1.0f, X.data(), IC, Wt.data(), IC, 0.0f, Y.data(), OC);
  };
  auto nn = [&](int M, int IC, int OC) {
    cpu::sgemm_rows(false, false, M, IC, OC, 1.0f, Y.data(), OC, Wt.data(), IC, 1.0f, X.data(), IC);
  };
  auto tn = [&](int M, int IC, int OC) {
    cpu::sgemm_rows(true, false, OC, IC, M, 1.0f, Y.data(), OC, X.data(), IC, 1.0f, dWt.data(), IC);
  };
  j["sgemm_layers_fwd"] = time_median(reps, [&] {
    for (int l = 0; l < a.layers; l++)
      for (auto s : proj) nt(N, s.IC, s.OC);
  });
  j["sgemm_layers_bwd"] = time_median(reps, [&] {
    for (int l = 0; l < a.layers; l++)
      for (auto s : proj) nn(N, s.IC, s.OC), tn(N, s.IC, s.OC);
  });
  {
    const int chunk = 256;
    std::vector<float> logits((size_t)chunk * V), Wh((size_t)V * C), dWh((size_t)V * C, 0.f),
        xb((size_t)chunk * C), dxb((size_t)chunk * C);
    fill_random(logits, 7, 0.01f), fill_random(Wh, 8, 0.05f), fill_random(xb, 9);
    const int rows = B * (T - 1);
    j["sgemm_lm_head"] = time_median(reps, [&] {
      for (int r0 = 0; r0 < rows; r0 += chunk) {
        const int M = std::min(chunk, rows - r0);
        cpu::sgemm_rows(false, true, M, V, C, 1.0f, xb.data(), C, Wh.data(), C, 0.0f, logits.data(),
                        V);
        cpu::sgemm_rows(false, false, M, C, V, 1.0f, logits.data(), V, Wh.data(), C, 0.0f,
                        dxb.data(), C);
        cpu::sgemm_rows(true, false, V, C, M, 1.0f, logits.data(), V, xb.data(), C, 1.0f,
                        dWh.data(), C);
      }
    });
  }
  {
    std::vector<float> q((size_t)N * QD), k((size_t)N * KD), vv((size_t)N * KD), o((size_t)N * QD),
        lse((size_t)B * a.heads * T), dout((size_t)N * QD), dq((size_t)N * QD), dk((size_t)N * KD),
        dv((size_t)N * KD);
    fill_random(q, 10), fill_random(k, 11), fill_random(vv, 12), fill_random(dout, 13, 0.01f);
    j["attention_fwd"] = a.layers * time_median(reps, [&] {
                           cpu::attention_forward(o.data(), lse.data(), q.data(), k.data(),
                                                  vv.data(), B, T, a.heads, a.kv_heads, HD);
                         });
    j["attention_bwd"] = a.layers * time_median(reps, [&] {
                           cpu::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(),
                                                   o.data(), lse.data(), q.data(), k.data(),
                                                   vv.data(), B, T, a.heads, a.kv_heads, HD);
                         });
  }
  {
    // Everything else the layers do, per kernel, summed over layers (same calls as llama.cpp).
    const size_t NC = (size_t)N * C, NF = (size_t)N * F;
    std::vector<float> x(NC), y(NC), dx(NC), rstd(N), wn(C, 1.f), dwn(C, 0.f), gq((size_t)N * QD),
        gk((size_t)N * KD), g1(NF), g2(NF), g3(NF), d1(NF), d2(NF), cs((size_t)T * HD / 2),
        sn((size_t)T * HD / 2), wte((size_t)V * C), dwte((size_t)V * C, 0.f);
    fill_random(x, 14), fill_random(y, 15, 0.01f), fill_random(gq, 16), fill_random(gk, 17);
    fill_random(g1, 18, 3.f), fill_random(g2, 19), fill_random(g3, 20, 0.01f);
    fill_random(wte, 21);
    cpu::rope_tables(cs.data(), sn.data(), T, HD, 10000.f);
    const int L = a.layers;
    nlohmann::json k;
    k["rmsnorm_fwd"] =
        (2 * L + 1) * time_median(reps, [&] {
          cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), wn.data(), N, C, 1e-5f);
        });
    k["rmsnorm_bwd"] = (2 * L + 1) * time_median(reps, [&] {
                         cpu::rmsnorm_backward(dx.data(), dwn.data(), y.data(), x.data(), wn.data(),
                                               rstd.data(), N, C);
                       });
    k["rope_fwd_or_bwd"] =
        L * time_median(reps, [&] {
          cpu::rope_forward(gq.data(), cs.data(), sn.data(), B, T, a.heads, HD);
          cpu::rope_forward(gk.data(), cs.data(), sn.data(), B, T, a.kv_heads, HD);
        });
    k["swiglu_fwd"] =
        L * time_median(reps, [&] { cpu::swiglu_forward(d1.data(), g1.data(), g2.data(), NF); });
    k["swiglu_bwd"] =
        L * time_median(reps, [&] {
          cpu::swiglu_backward(d1.data(), d2.data(), g3.data(), g1.data(), g2.data(), NF);
        });
    k["add_inplace_fwd"] =
        2 * L * time_median(reps, [&] { cpu::add_inplace(dx.data(), x.data(), NC); });
    // backward zeroes dact (N*F), dln twice and datt (N*QD) per layer with std::fill_n.
    k["zero_fill_bwd"] = L * time_median(reps, [&] {
                           std::fill_n(d1.begin(), NF, 0.f);
                           std::fill_n(dx.begin(), NC, 0.f);
                           std::fill_n(dx.begin(), NC, 0.f);
                           std::fill_n(gq.begin(), (size_t)N * QD, 0.f);
                         });
    k["embedding_fwd"] = time_median(
        reps, [&] { cpu::embedding_forward(y.data(), batch.tokens.data(), wte.data(), N, C); });
    k["embedding_bwd"] = time_median(
        reps, [&] { cpu::embedding_backward(dwte.data(), y.data(), batch.tokens.data(), N, C); });
    j["kernels"] = k;
  }
  (void)trainer;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  // One rank: the Trainer's grid and reductions need MPI initialised.
  MPI_Init(&argc, &argv);
  int code = 0;
  omp_set_num_threads(a.threads);
  openblas_set_num_threads(a.threads);
  try {
    using namespace xwin;
    ModelConfig cfg;
    cfg.vocab_size = a.vocab, cfg.d_model = a.d_model, cfg.n_layers = a.layers;
    cfg.n_heads = a.heads, cfg.n_kv_heads = a.kv_heads, cfg.d_ff = a.ffn;
    cfg.max_seq_len = a.seq, cfg.tie_embeddings = false;
    Llama model(cfg);
    model.init_random(1234);

    // batch records of seq+1 random tokens, every token in the loss mask; build_lm_batch
    // truncates to T = seq, so each row has seq - 1 loss positions.
    TokenDataset data;
    std::mt19937 g(42);
    std::uniform_int_distribution<int32_t> tok(0, a.vocab - 1);
    for (int r = 0; r < a.batch; r++) {
      std::vector<int32_t> t(a.seq + 1);
      for (auto& x : t) x = tok(g);
      data.append(t, std::vector<uint8_t>(t.size(), 1));
    }

    TrainConfig tc;
    tc.steps = 1000000, tc.batch_size = a.batch, tc.micro_batch_size = a.batch;
    tc.seq_len = a.seq, tc.lr = 1e-4, tc.min_lr = 1e-5, tc.warmup_steps = 10, tc.shuffle = false;
    Trainer trainer(model, tc, "/tmp/xwin_bench_out");
    LmObjective obj(data, a.seq, false, tc.seed);

    int64_t s = 0;
    for (int i = 0; i < a.warmup; i++) trainer.step(obj, s++);
    std::vector<double> times;
    double last_loss = 0;
    int64_t tokens = 0;
    for (int i = 0; i < a.steps; i++) {
      Timer t;
      StepStats st = trainer.step(obj, s++);
      times.push_back(t.seconds());
      last_loss = st.loss, tokens = st.tokens;
    }
    const double step_s = median(times);
    const double flops = step_flops(a);

    // The sgemm rate on a representative large shape of the medium config: M = batch * seq =
    // 2048 rows, the FFN projection 512 <-> 1536, in the three orientations the model uses.
    const nlohmann::json sg = sgemm_rate(2048, 512, 1536, 5);

    nlohmann::json out = {{"impl", "xwin"},
                          {"config", a.config},
                          {"threads", a.threads},
                          {"step_s", step_s},
                          {"step_times", times},
                          {"tokens_per_step", tokens},
                          {"tokens_per_s", (double)tokens / step_s},
                          {"flops_per_step", flops},
                          {"gflops", flops / step_s * 1e-9},
                          {"sgemm_gflops", sg["aggregate"]},
                          {"sgemm", sg},
                          {"loss", last_loss},
                          {"params", model.layout.total}};
    if (a.phases) {
      LmBatch batch;
      std::vector<size_t> recs(a.batch);
      for (int i = 0; i < a.batch; i++) recs[i] = i;
      build_lm_batch(data, recs, a.seq, batch);
      out["phases"] = phase_breakdown(a, model, batch, trainer, std::max(3, a.steps));
    }
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xwin_bench: error: %s\n", e.what());
    code = 1;
  }
  MPI_Finalize();
  return code;
}
