// xwin_sample_bench: generation speed of the KV-cache Generator (src/generate) on random weights
// and random prompts: every prompt is prefilled, then all rows decode together, temperature +
// top-p sampling, EOS disabled so each row generates exactly --new_tokens tokens. Prints one
// JSON line (see bench/sampling/run_sample_bench.py; validation/torch_sampler.py prints the same
// fields for PyTorch).
//
//   xwin_sample_bench --vocab 4096 --d_model 256 --layers 6 --heads 8 --ffn 768 --batch 64
//                     --prompt_len 64 --new_tokens 128 [--kv_heads H] [--threads N]
//                     [--top_p 0.9] [--temperature 1.0] [--reps 3] [--warmup 1] [--config NAME]
//
// tokens_per_s is the headline: generated tokens / wall time of Generator::run (prefill, decode
// and sampling, median of --reps runs). The split (prefill forward / decode forward / sampling)
// comes from a second, instrumented loop that makes the same library calls as Generator::run in
// the same order (Llama::forward_cached, Sampler::draw) with a timer around each; it must draw
// the same tokens and log-probs as the Generator ("split_tokens_match", "split_max_logp_diff";
// a mismatch means Generator::run changed and this loop no longer mirrors it), and its total is
// reported next to the Generator's so the bookkeeping outside those calls can be read off.
#include <cblas.h>
#include <mpi.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/timer.h"
#include "generate/generator.h"
#include "generate/sampler.h"
#include "model/llama.h"

extern "C" void openblas_set_num_threads(int);

namespace {

struct Args {
  std::string config = "custom";
  int vocab = 4096, d_model = 256, layers = 6, heads = 8, kv_heads = 0, ffn = 768, batch = 64,
      prompt_len = 64, new_tokens = 128, threads = 1, reps = 3, warmup = 1;
  float top_p = 0.9f, temperature = 1.0f;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "xwin_sample_bench: %s\nusage: xwin_sample_bench [--vocab V] [--d_model C] "
               "[--layers L] [--heads H] [--kv_heads KV] [--ffn F] [--batch B] "
               "[--prompt_len P] [--new_tokens N] [--threads T] [--top_p 0.9] "
               "[--temperature 1.0] [--reps 3] [--warmup 1] [--config NAME]\n",
               msg);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    if (k == "-h" || k == "--help") usage("help");
    if (i + 1 >= argc) usage(("missing value for " + k).c_str());
    const char* v = argv[++i];
    if (k == "--config") {
      a.config = v;
      continue;
    }
    char* end = nullptr;
    if (k == "--top_p" || k == "--temperature") {
      const float x = std::strtof(v, &end);
      if (!end || *end) usage(("bad value for " + k + ": " + v).c_str());
      (k == "--top_p" ? a.top_p : a.temperature) = x;
      continue;
    }
    const long x = std::strtol(v, &end, 10);
    const bool zero_ok = k == "--warmup";
    if (!end || *end || x < 0 || (x == 0 && !zero_ok))
      usage(("bad value for " + k + ": " + v).c_str());
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
    else if (k == "--batch")
      a.batch = n;
    else if (k == "--prompt_len")
      a.prompt_len = n;
    else if (k == "--new_tokens")
      a.new_tokens = n;
    else if (k == "--threads")
      a.threads = n;
    else if (k == "--reps")
      a.reps = n;
    else if (k == "--warmup")
      a.warmup = n;
    else
      usage(("unknown flag " + k).c_str());
  }
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  return a;
}

// CPU seconds of the whole process (every thread, spin-waits included): on a shared machine it
// says how much of the wall time the benchmark was actually running.
double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Wall and process CPU time since the last lap.
struct Lap {
  xwin::Timer t;
  double c0 = cpu_seconds();
  void add(double& wall, double& cpu) {
    const double c = cpu_seconds();
    wall += t.seconds(), cpu += c - c0;
    t.reset(), c0 = c;
  }
};

struct Split {
  double prefill = 0, decode = 0, sampling = 0, total = 0;
  double prefill_cpu = 0, decode_cpu = 0, sampling_cpu = 0, total_cpu = 0;
  int64_t tokens = 0;
  std::vector<std::vector<int32_t>> out;  // per request
  std::vector<std::vector<float>> logp;
};

// Generator::run for the case the benchmark uses (one request per slot, equal prompt lengths,
// every row runs the full max_new_tokens): prefill the prompts in as few passes as the
// Generator uses, then decode all rows together; each step's draws in parallel over rows with a
// sampler per thread. The same Llama / Sampler calls as Generator::run, each phase timed.
Split instrumented(xwin::Llama& model, const std::vector<xwin::GenRequest>& reqs,
                   const xwin::SamplingParams& p) {
  using namespace xwin;
  const int B = (int)reqs.size(), V = model.cfg.vocab_size;
  const int P = (int)reqs[0].prompt.size();
  const int Tmax = std::min<int>(model.cfg.max_seq_len, P + p.max_new_tokens);
  Split s;
  Lap total;
  KvCache cache = model.make_cache(B, Tmax);
  Sampler sampler(p);
  std::vector<Sampler> pool(std::max(1, omp_get_max_threads()), sampler);
  std::vector<Draw> draws(B);
  std::vector<float> logits((size_t)B * V);
  std::vector<int> slots(B), pos(B);
  std::vector<int32_t> last(B);
  s.out.assign(B, {});
  s.logp.assign(B, {});
  // Prefill: prompts of equal length go together, as many a pass as prefill_rows() in
  // generator.cpp allows (activations within 2^26 floats); then the first tokens' draws.
  const size_t per_token = 7 * (size_t)model.cfg.d_model + 3 * (size_t)model.cfg.d_ff;
  const int group = (int)std::max<size_t>(1, (size_t(1) << 26) / (per_token * P));
  std::vector<int32_t> toks;
  std::vector<int> zeros(B, 0);
  for (int b = 0; b < B; b++) slots[b] = b, pos[b] = P;
  for (int b0 = 0; b0 < B; b0 += group) {
    const int R = std::min(group, B - b0);
    toks.clear();
    for (int b = b0; b < b0 + R; b++)
      toks.insert(toks.end(), reqs[b].prompt.begin(), reqs[b].prompt.end());
    Lap t;
    model.forward_cached(toks.data(), R, P, &slots[b0], zeros.data(), cache, logits.data());
    t.add(s.prefill, s.prefill_cpu);
#pragma omp parallel for schedule(dynamic) if (R > 1)
    for (int i = 0; i < R; i++)
      draws[i] =
          pool[omp_get_thread_num()].draw(&logits[(size_t)i * V], V, reqs[b0 + i].sample_id, P);
    t.add(s.sampling, s.sampling_cpu);
    for (int i = 0; i < R; i++) {
      last[b0 + i] = draws[i].token;
      s.out[b0 + i].push_back(draws[i].token);
      s.logp[b0 + i].push_back(draws[i].logp);
    }
  }
  for (int step = 1; step < p.max_new_tokens && pos[0] < Tmax; step++) {
    Lap t;
    model.forward_cached(last.data(), B, 1, slots.data(), pos.data(), cache, logits.data());
    t.add(s.decode, s.decode_cpu);
#pragma omp parallel for schedule(dynamic) if (B > 1)
    for (int b = 0; b < B; b++)
      draws[b] =
          pool[omp_get_thread_num()].draw(&logits[(size_t)b * V], V, reqs[b].sample_id, pos[b] + 1);
    for (int b = 0; b < B; b++) {
      pos[b]++;
      last[b] = draws[b].token;
      s.out[b].push_back(draws[b].token);
      s.logp[b].push_back(draws[b].logp);
    }
    t.add(s.sampling, s.sampling_cpu);
  }
  total.add(s.total, s.total_cpu);
  for (const auto& o : s.out) s.tokens += (int64_t)o.size();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  MPI_Init(&argc, &argv);
  int code = 0;
  omp_set_num_threads(a.threads);
  openblas_set_num_threads(a.threads);
  try {
    using namespace xwin;
    ModelConfig cfg;
    cfg.vocab_size = a.vocab, cfg.d_model = a.d_model, cfg.n_layers = a.layers;
    cfg.n_heads = a.heads, cfg.n_kv_heads = a.kv_heads, cfg.d_ff = a.ffn;
    cfg.max_seq_len = a.prompt_len + a.new_tokens, cfg.tie_embeddings = false;
    Llama model(cfg);
    model.init_random(1234);

    SamplingParams p;
    p.temperature = a.temperature, p.top_p = a.top_p, p.top_k = 0;
    p.max_new_tokens = a.new_tokens, p.eos_id = -1, p.seed = 7;
    p.validate();

    std::vector<GenRequest> reqs(a.batch);
    std::mt19937 g(42);
    std::uniform_int_distribution<int32_t> tok(0, a.vocab - 1);
    for (int b = 0; b < a.batch; b++) {
      reqs[b].sample_id = (uint64_t)b;
      reqs[b].prompt.resize(a.prompt_len);
      for (auto& t : reqs[b].prompt) t = tok(g);
    }

    // Headline: Generator::run, as `xwin sample` uses it.
    std::vector<std::vector<int32_t>> gen_out(a.batch);
    std::vector<std::vector<float>> gen_logp(a.batch);
    std::vector<double> cpu_times;
    auto run_gen = [&]() {
      Generator gen(model, a.batch, p);
      const double c0 = cpu_seconds();
      Timer t;
      gen.run(reqs, [&](size_t i, GenOutput&& o) {
        gen_out[i] = std::move(o.tokens);
        gen_logp[i] = std::move(o.logp);
      });
      const double s = t.seconds();
      cpu_times.push_back(cpu_seconds() - c0);
      require(gen.generated_tokens() == (int64_t)a.batch * a.new_tokens,
              "internal: the generator stopped early (", gen.generated_tokens(), " tokens)");
      return s;
    };
    for (int i = 0; i < a.warmup; i++) run_gen();
    cpu_times.clear();
    std::vector<double> times;
    for (int i = 0; i < a.reps; i++) times.push_back(run_gen());
    const double gen_s = median(times);
    const int64_t tokens = (int64_t)a.batch * a.new_tokens;

    // Split: the instrumented replica; keep the run with the median total.
    std::vector<Split> splits;
    for (int i = 0; i < a.reps; i++) splits.push_back(instrumented(model, reqs, p));
    std::sort(splits.begin(), splits.end(),
              [](const Split& x, const Split& y) { return x.total < y.total; });
    const Split& s = splits[splits.size() / 2];
    bool match = true;
    double logp_diff = 0;
    for (int b = 0; b < a.batch; b++) {
      match = match && s.out[b] == gen_out[b];
      for (size_t i = 0; i < std::min(s.logp[b].size(), gen_logp[b].size()); i++)
        logp_diff = std::max(logp_diff, (double)std::fabs(s.logp[b][i] - gen_logp[b][i]));
    }
    // A fingerprint of what was generated (tokens and the bits of their log-probs), to check
    // that an optimisation of the generator leaves its output unchanged.
    uint64_t fp = 1469598103934665603ull;
    auto mix = [&](uint32_t x) { fp = (fp ^ x) * 1099511628211ull; };
    for (int b = 0; b < a.batch; b++)
      for (size_t i = 0; i < gen_out[b].size(); i++) {
        uint32_t bits;
        std::memcpy(&bits, &gen_logp[b][i], sizeof bits);
        mix((uint32_t)gen_out[b][i]), mix(bits);
      }
    char fp_hex[17];
    std::snprintf(fp_hex, sizeof fp_hex, "%016llx", (unsigned long long)fp);

    // How many tokens top-p keeps on these logits (random weights give flat distributions):
    // the kept-set size of the first decode step's rows, outside any timing.
    double keep_mean = 0;
    {
      const int V = a.vocab, B = a.batch, P = a.prompt_len;
      KvCache cache = model.make_cache(B, P + 1);
      std::vector<float> logits((size_t)V);
      std::vector<float> pr(V);
      for (int b = 0; b < B; b++) {
        const int p0 = 0;
        model.forward_cached(reqs[b].prompt.data(), 1, P, &b, &p0, cache, logits.data());
        const float mx = *std::max_element(logits.begin(), logits.end());
        double z = 0;
        for (int v = 0; v < V; v++) z += pr[v] = std::exp((logits[v] - mx) / a.temperature);
        std::sort(pr.begin(), pr.end(), std::greater<float>());
        double cum = 0;
        int n = 0;
        while (n < V && cum < a.top_p * z) cum += pr[n++];
        keep_mean += n;
      }
      keep_mean /= B;
    }

    nlohmann::json out = {
        {"impl", "xwin"},
        {"config", a.config},
        {"threads", a.threads},
        {"batch", a.batch},
        {"prompt_len", a.prompt_len},
        {"new_tokens", a.new_tokens},
        {"top_p", a.top_p},
        {"temperature", a.temperature},
        {"generated_tokens", tokens},
        {"total_s", gen_s},
        {"run_times", times},
        {"tokens_per_s", (double)tokens / gen_s},
        {"cpu_s", median(cpu_times)},
        {"tokens_per_cpu_s", (double)tokens / median(cpu_times)},
        {"split",
         {{"prefill_forward_s", s.prefill},
          {"decode_forward_s", s.decode},
          {"sampling_s", s.sampling},
          {"other_s", s.total - s.prefill - s.decode - s.sampling},
          {"total_s", s.total},
          {"prefill_forward_cpu_s", s.prefill_cpu},
          {"decode_forward_cpu_s", s.decode_cpu},
          {"sampling_cpu_s", s.sampling_cpu},
          {"total_cpu_s", s.total_cpu},
          {"decode_steps", a.new_tokens - 1},
          {"decode_step_ms", 1e3 * (s.decode + s.sampling) / std::max(1, a.new_tokens - 1)},
          {"sampling_share", s.sampling / s.total},
          {"tokens_per_s", (double)s.tokens / s.total}}},
        {"split_tokens_match", match},
        {"split_max_logp_diff", logp_diff},
        {"output_fingerprint", fp_hex},
        {"top_p_kept_mean", keep_mean},
        {"params", model.layout.total}};
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xwin_sample_bench: error: %s\n", e.what());
    code = 1;
  }
  MPI_Finalize();
  return code;
}
