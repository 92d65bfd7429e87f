// xwin_gpu_sample_bench: sampling throughput of GpuSampler (src/gpu/sampler_gpu.h) on random
// weights and random prompts, one distinct prompt per batch row, EOS disabled so every row
// generates exactly --new_tokens tokens. Defaults: the ~1B config (vocab 32000, d_model 2048,
// 16 layers of 16 heads, ffn 5504), 64-token prompts, 128 new tokens, temperature 1, top-p 0.9,
// bf16, batches 64 and 256.
//
//   xwin_gpu_sample_bench [--batch 64,256] [--precision bf16|fp32] [--prompt_len 64]
//                         [--new_tokens 128] [--top_p 0.9] [--top_k 0] [--temperature 1.0]
//                         [--reps 3] [--warmup 1] [--vocab V] [--d_model C] [--layers L]
//                         [--heads H] [--kv_heads KV] [--ffn F] [--config NAME] [--json FILE]
//
// tokens_per_s = generated tokens / wall time of GpuSampler::run (prefill, decode, draws and
// the host's bookkeeping; the median of --reps runs after --warmup untimed ones; the weight
// upload is timed apart). Device memory: what the sampler allocated, and the device's in-use
// high-water (cudaMemGetInfo after setup and after every run: every allocation is made by then;
// it includes the CUDA context and cuBLASLt). Prints a table; --json writes the same as JSON.
// Exits 77 without a CUDA device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/timer.h"
#include "gpu/sampler_gpu.h"
#include "model/llama.h"

namespace {

struct Args {
  std::string config = "1b", precision = "bf16", json;
  std::vector<int> batches = {64, 256};
  int vocab = 32000, d_model = 2048, layers = 16, heads = 16, kv_heads = 0, ffn = 5504;
  int prompt_len = 64, new_tokens = 128, top_k = 0, reps = 3, warmup = 1;
  float top_p = 0.9f, temperature = 1.0f;
};

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr,
               "xwin_gpu_sample_bench: %s\nusage: xwin_gpu_sample_bench [--batch 64,256] "
               "[--precision bf16|fp32] [--prompt_len 64] [--new_tokens 128] [--top_p 0.9] "
               "[--top_k 0] [--temperature 1.0] [--reps 3] [--warmup 1] [--vocab V] "
               "[--d_model C] [--layers L] [--heads H] [--kv_heads KV] [--ffn F] "
               "[--config NAME] [--json FILE]\n",
               msg.c_str());
  std::exit(2);
}

int to_int(const std::string& k, const std::string& v, int min) {
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || x < min) usage("bad value for " + k + ": " + v);
  return (int)x;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") usage("help");
    if (i + 1 >= argc) usage("missing value for " + k);
    const std::string v = argv[++i];
    if (k == "--config") {
      a.config = v;
    } else if (k == "--json") {
      a.json = v;
    } else if (k == "--precision") {
      if (v != "bf16" && v != "fp32") usage("--precision is bf16 or fp32, not " + v);
      a.precision = v;
    } else if (k == "--batch") {
      a.batches.clear();
      std::stringstream ss(v);
      for (std::string b; std::getline(ss, b, ',');) a.batches.push_back(to_int(k, b, 1));
    } else if (k == "--top_p" || k == "--temperature") {
      char* end = nullptr;
      const float x = std::strtof(v.c_str(), &end);
      if (v.empty() || *end) usage("bad value for " + k + ": " + v);
      (k == "--top_p" ? a.top_p : a.temperature) = x;
    } else {
      int* field = k == "--vocab"        ? &a.vocab
                   : k == "--d_model"    ? &a.d_model
                   : k == "--layers"     ? &a.layers
                   : k == "--heads"      ? &a.heads
                   : k == "--kv_heads"   ? &a.kv_heads
                   : k == "--ffn"        ? &a.ffn
                   : k == "--prompt_len" ? &a.prompt_len
                   : k == "--new_tokens" ? &a.new_tokens
                   : k == "--top_k"      ? &a.top_k
                   : k == "--reps"       ? &a.reps
                   : k == "--warmup"     ? &a.warmup
                                         : nullptr;
      if (!field) usage("unknown flag " + k);
      *field = to_int(k, v, k == "--warmup" || k == "--top_k" ? 0 : 1);
    }
  }
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

size_t device_used() {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
  return total - free;
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  try {
    using namespace xwin;
    cudaDeviceProp prop{};
    require(cudaGetDeviceProperties(&prop, 0) == cudaSuccess,
            "cannot read the CUDA device's properties");
    ModelConfig cfg;
    cfg.vocab_size = a.vocab, cfg.d_model = a.d_model, cfg.n_layers = a.layers;
    cfg.n_heads = a.heads, cfg.n_kv_heads = a.kv_heads, cfg.d_ff = a.ffn;
    cfg.max_seq_len = a.prompt_len + a.new_tokens, cfg.tie_embeddings = false;
    cfg.validate("xwin_gpu_sample_bench flags");
    Timer init_t;
    Llama model(cfg);
    model.init_random(1234);
    std::printf(
        "%s on %s: %zu parameters (random init %.1f s), prompts %d + %d new tokens, "
        "T %.2f top_k %d top_p %.2f, %s\n",
        a.config.c_str(), prop.name, model.layout.total, init_t.seconds(), a.prompt_len,
        a.new_tokens, a.temperature, a.top_k, a.top_p, a.precision.c_str());

    SamplingParams p;
    p.temperature = a.temperature, p.top_p = a.top_p, p.top_k = a.top_k;
    p.max_new_tokens = a.new_tokens, p.eos_id = -1, p.seed = 7;
    const auto precision =
        a.precision == "bf16" ? GpuSampler::Precision::bf16 : GpuSampler::Precision::fp32;

    nlohmann::json results = nlohmann::json::array();
    std::printf("%6s %9s %8s %9s %11s %12s %12s %10s\n", "batch", "precision", "tokens", "run_s",
                "tokens/s", "step_ms", "sampler_GiB", "peak_GiB");
    for (int batch : a.batches) {
      std::vector<GenRequest> reqs(batch);
      std::mt19937 g(42);
      std::uniform_int_distribution<int32_t> tok(0, a.vocab - 1);
      for (int b = 0; b < batch; b++) {
        reqs[b].sample_id = (uint64_t)b;
        reqs[b].prompt.resize(a.prompt_len);
        for (auto& t : reqs[b].prompt) t = tok(g);
      }
      const size_t used_before = device_used();
      Timer upload_t;
      GpuSampler gen(model, batch, p, precision);
      const double upload_s = upload_t.seconds();
      size_t peak = device_used();
      auto run_once = [&]() {
        const int64_t before = gen.generated_tokens();
        Timer t;
        gen.run(reqs, [](size_t, GenOutput&&) {});
        const double s = t.seconds();
        peak = std::max(peak, device_used());
        require(gen.generated_tokens() - before == (int64_t)batch * a.new_tokens,
                "internal: the sampler stopped early");
        return s;
      };
      for (int i = 0; i < a.warmup; i++) run_once();
      std::vector<double> times;
      for (int i = 0; i < a.reps; i++) times.push_back(run_once());
      const double run_s = median(times);
      const int64_t tokens = (int64_t)batch * a.new_tokens;
      const double tps = tokens / run_s, step_ms = 1e3 * run_s / a.new_tokens;
      std::printf("%6d %9s %8lld %9.3f %11.0f %12.2f %12.2f %10.2f\n", batch, a.precision.c_str(),
                  (long long)tokens, run_s, tps, step_ms, gen.device_bytes() / kGiB, peak / kGiB);
      std::fflush(stdout);
      results.push_back({{"batch", batch},
                         {"precision", a.precision},
                         {"generated_tokens", tokens},
                         {"run_s", run_s},
                         {"run_times", times},
                         {"tokens_per_s", tps},
                         {"ms_per_step", step_ms},
                         {"upload_s", upload_s},
                         {"sampler_device_bytes", gen.device_bytes()},
                         {"device_used_before_bytes", used_before},
                         {"device_used_peak_bytes", peak}});
    }
    if (!a.json.empty()) {
      const nlohmann::json out = {{"impl", "xwin_gpu_sampler"},
                                  {"device", prop.name},
                                  {"config", a.config},
                                  {"vocab", a.vocab},
                                  {"d_model", a.d_model},
                                  {"layers", a.layers},
                                  {"heads", a.heads},
                                  {"kv_heads", a.kv_heads},
                                  {"ffn", a.ffn},
                                  {"params", model.layout.total},
                                  {"prompt_len", a.prompt_len},
                                  {"new_tokens", a.new_tokens},
                                  {"temperature", a.temperature},
                                  {"top_k", a.top_k},
                                  {"top_p", a.top_p},
                                  {"warmup", a.warmup},
                                  {"reps", a.reps},
                                  {"results", results}};
      std::ofstream f(a.json);
      require((bool)f, "cannot write ", a.json, "; check the directory exists and is writable");
      f << out.dump(2) << "\n";
      require((bool)f, "writing ", a.json, " failed");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xwin_gpu_sample_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
