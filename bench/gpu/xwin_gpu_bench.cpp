// xwin_gpu_bench: training throughput of the GPU engine (GpuLlama::train_step: zero grads,
// forward, LM head + CE, backward, global-norm clip, AdamW) on random tokens, by default the
// ~1B Llama (d_model 2048, 16 layers, 16 heads, d_ff 5504, vocab 32000, T 2048) in bf16.
// Prints one table and writes the same figures as JSON (--json FILE).
//
//   xwin_gpu_bench [--batch 4] [--seq 2048] [--steps 10] [--warmup 3] [--precision bf16]
//                  [--vocab V] [--d_model C] [--layers L] [--heads H] [--kv_heads KV] [--ffn F]
//                  [--tied] [--peak-tflops P] [--json FILE]
//
// MFU = model FLOPs per token x tokens/s / peak, with the model FLOPs of a training step per
// token taken as 6 N + 12 L T C (PaLM, appendix B): N counts the parameters of every matrix
// that takes part in a product (the layers' projections and the LM head; the input embedding
// table only when it is tied, as the head; norms are left out), and 12 L T C the attention
// scores and their weighted sums, forward and backward, without halving for the causal mask.
// The peak is the card's dense bf16 tensor rate: 989.4 TFLOP/s for H100 SXM and H200, 756 for
// H100 PCIe, 312 for A100; other cards need --peak-tflops (else MFU is not reported).
// Exits 77 without a CUDA device (CTest's "skipped").
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "align/trainer.h"
#include "core/error.h"
#include "gpu/llama_gpu.h"
#include "model/llama.h"

namespace {

using namespace xwin;

struct Args {
  int vocab = 32000, d_model = 2048, layers = 16, heads = 16, kv_heads = 0, ffn = 5504;
  int seq = 2048, batch = 4, steps = 10, warmup = 3;
  bool tied = false;
  double peak_tflops = 0;
  std::string precision = "bf16", json;
};

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr,
               "xwin_gpu_bench: %s\nusage: xwin_gpu_bench [--batch 4] [--seq 2048] [--steps 10] "
               "[--warmup 3] [--precision bf16|fp32] [--vocab V] [--d_model C] [--layers L] "
               "[--heads H] [--kv_heads KV] [--ffn F] [--tied] [--peak-tflops P] [--json FILE]\n",
               msg.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") usage("help");
    if (k == "--tied") {
      a.tied = true;
      continue;
    }
    if (i + 1 >= argc) usage("missing value for " + k);
    const std::string v = argv[++i];
    if (k == "--precision") {
      a.precision = v;
      continue;
    }
    if (k == "--json") {
      a.json = v;
      continue;
    }
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (!end || *end || !(x > 0) || (k != "--peak-tflops" && x != std::floor(x)))
      usage("bad value for " + k + ": " + v);
    if (k == "--peak-tflops") {
      a.peak_tflops = x;
      continue;
    }
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
    else
      usage("unknown option " + k);
  }
  return a;
}

// Dense bf16 tensor-core peak of known cards, TFLOP/s (0: unknown).
double known_peak(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && has("PCIe")) return 756.0;
  if (has("H100") || has("H200")) return 989.4;
  if (has("A100")) return 312.0;
  return 0.0;
}

// Parameters of the matrices that take part in a product (see the header comment).
double matmul_params(const ParamLayout& layout, const ModelConfig& cfg) {
  double n = 0;
  for (const TensorInfo& t : layout.tensors)
    if (t.shape.size() == 2 && (t.name != "model.embed_tokens.weight" || cfg.tie_embeddings))
      n += (double)t.numel;
  return n;
}

double gib(size_t bytes) {
  return (double)bytes / (1024.0 * 1024.0 * 1024.0);
}

int run(const Args& a) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("xwin_gpu_bench: no CUDA device: skipped\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const std::string device = prop.name;
  const double peak = a.peak_tflops > 0 ? a.peak_tflops : known_peak(device);

  ModelConfig cfg;
  cfg.vocab_size = a.vocab, cfg.d_model = a.d_model, cfg.n_layers = a.layers;
  cfg.n_heads = a.heads, cfg.n_kv_heads = a.kv_heads > 0 ? a.kv_heads : a.heads;
  cfg.d_ff = a.ffn, cfg.max_seq_len = a.seq, cfg.tie_embeddings = a.tied;
  const GpuPrecision precision = parse_gpu_precision(a.precision);
  const int B = a.batch, T = a.seq, N = B * T;

  GpuLlama gpu(cfg, precision, N, T);
  {  // The CPU model only initialises the weights.
    Llama init(cfg);
    init.init_random(1234);
    gpu.upload(init);
  }
  std::mt19937 g(7);
  std::uniform_int_distribution<int> tok(0, cfg.vocab_size - 1);
  std::vector<int32_t> tokens(N), targets(N);
  std::vector<float> mask(N, 1.f);
  TrainConfig tc;
  tc.steps = a.warmup + a.steps, tc.batch_size = B, tc.micro_batch_size = B, tc.seq_len = T;
  tc.warmup_steps = 1;

  double seconds = 0, first_loss = 0, last_loss = 0;
  for (int s = 0; s < a.warmup + a.steps; s++) {
    for (int n = 0; n < N; n++) tokens[n] = tok(g);
    for (int n = 0; n < N; n++) targets[n] = n % T + 1 < T ? tokens[n + 1] : tok(g);
    gpu.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    const GpuStepStats st = gpu.train_step(tokens.data(), targets.data(), mask.data(), B, T, tc, s);
    gpu.synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gpu.memory();  // samples the high-water mark after every step
    if (s >= a.warmup) seconds += dt;
    if (s == 0) first_loss = st.loss;
    last_loss = st.loss;
    std::fprintf(stderr, "step %d%s: loss %.4f  grad norm %.3f  %.1f ms\n", s + 1,
                 s < a.warmup ? " (warmup)" : "", st.loss, st.grad_norm, dt * 1e3);
  }
  const GpuMemory mem = gpu.memory();
  const double tokens_per_s = (double)N * a.steps / seconds;
  const double n_matmul = matmul_params(gpu.layout, cfg);
  const double flops_per_token =
      6.0 * n_matmul + 12.0 * cfg.n_layers * (double)T * (double)cfg.d_model;
  const double achieved_tflops = flops_per_token * tokens_per_s / 1e12;
  const double mfu = peak > 0 ? achieved_tflops / peak : NAN;

  std::printf("xwin_gpu_bench: GpuLlama training step (%s)\n", to_string(precision));
  std::printf("  %-26s %s\n", "device", device.c_str());
  std::printf("  %-26s %.1f TFLOP/s%s\n", "peak (dense bf16)", peak,
              a.peak_tflops > 0 ? " (--peak-tflops)" : (peak > 0 ? "" : " (unknown card)"));
  std::printf("  %-26s d_model %d, layers %d, heads %d/%d, ffn %d, vocab %d%s\n", "model",
              cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.d_ff, cfg.vocab_size,
              cfg.tie_embeddings ? ", tied" : "");
  std::printf("  %-26s %.3f B (matmul %.3f B)\n", "parameters", gpu.layout.total / 1e9,
              n_matmul / 1e9);
  std::printf("  %-26s %d x %d = %d tokens, %d steps after %d warmup\n", "micro-batch", B, T, N,
              a.steps, a.warmup);
  std::printf("  %-26s %.1f ms\n", "step time", 1e3 * seconds / a.steps);
  std::printf("  %-26s %.0f\n", "tokens/s", tokens_per_s);
  std::printf("  %-26s %.3f GFLOP (6N + 12 L T C)\n", "model FLOPs per token",
              flops_per_token / 1e9);
  std::printf("  %-26s %.1f TFLOP/s\n", "achieved", achieved_tflops);
  if (peak > 0)
    std::printf("  %-26s %.1f %%\n", "MFU", 100.0 * mfu);
  else
    std::printf("  %-26s n/a (unknown card: pass --peak-tflops)\n", "MFU");
  std::printf("  %-26s %.2f GiB engine, %.2f GiB device high-water (%.2f GiB before)\n", "memory",
              gib(mem.engine_bytes), gib(mem.device_used_peak), gib(mem.device_used_before));
  std::printf("  %-26s %.4f -> %.4f\n", "loss (first -> last)", first_loss, last_loss);

  nlohmann::json j = {{"device", device},
                      {"precision", to_string(precision)},
                      {"peak_tflops", peak},
                      {"model", cfg.to_json()},
                      {"params", gpu.layout.total},
                      {"matmul_params", n_matmul},
                      {"batch", B},
                      {"seq", T},
                      {"steps", a.steps},
                      {"warmup", a.warmup},
                      {"step_ms", 1e3 * seconds / a.steps},
                      {"tokens_per_s", tokens_per_s},
                      {"flops_per_token", flops_per_token},
                      {"flops_formula", "6*N_matmul + 12*n_layers*seq*d_model"},
                      {"achieved_tflops", achieved_tflops},
                      {"mfu", peak > 0 ? nlohmann::json(mfu) : nlohmann::json(nullptr)},
                      {"memory",
                       {{"engine_bytes", mem.engine_bytes},
                        {"device_used_before_bytes", mem.device_used_before},
                        {"device_used_peak_bytes", mem.device_used_peak},
                        {"device_total_bytes", prop.totalGlobalMem}}},
                      {"loss_first", first_loss},
                      {"loss_last", last_loss}};
  if (!a.json.empty()) {
    std::ofstream out(a.json);
    out << j.dump(2) << "\n";
    require(out.good(), a.json, ": cannot write the benchmark's JSON");
  }
  require(std::isfinite(last_loss), "the loss is ", last_loss, " (not finite)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    const std::string what = e.what();
    const bool oom = what.find("out of memory") != std::string::npos ||
                     what.find("MemoryAllocation") != std::string::npos;
    std::fprintf(stderr, "xwin_gpu_bench: %s%s\n", what.c_str(),
                 oom ? "\n(the batch does not fit: try a smaller --batch)" : "");
    return 1;
  }
}
