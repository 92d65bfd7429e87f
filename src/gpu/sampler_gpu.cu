// GpuSampler: the host loop is Generator::run's (generate/generator.cpp), step for step, so that
// both engines give a row the same positions, the same draws' keys and the same stopping rule;
// the forward and the draws run on one stream, and each step ends with the drawn tokens copied
// back (the host decides which rows finish and what the next step holds).
#include <algorithm>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "gpu/sampler_gpu.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/attention_cache.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/swiglu.h"

namespace xwin {
namespace {

using cuda::bf16;

// Tokens per prefill pass at most (longer prompts go one per pass): bounds the activations at
// about (3 d_model + 2 q dim + 2 kv dim + 3 d_ff) values a token, ~0.5 GiB in bf16 for a 1B model.
constexpr size_t kPrefillTokens = 8192;

// A device array; resize() drops the contents.
template <typename T>
class DevBuf {
 public:
  DevBuf() = default;
  ~DevBuf() { cudaFree(p_); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void resize(size_t n) {
    if (n == n_) return;
    cudaFree(p_);
    p_ = nullptr, n_ = 0;
    if (n) CUDA_CHECK(cudaMalloc(&p_, sizeof(T) * n));
    n_ = n;
  }
  T* get() const { return p_; }
  size_t bytes() const { return sizeof(T) * n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Rounds the fp32 parameters to bf16 (round to nearest even) while uploading them.
__global__ void to_bf16_kernel(bf16* out, const float* in, size_t n) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16(in[i]);
}

void upload_params(DevBuf<float>& d, const std::vector<float>& h) {
  d.resize(h.size());
  CUDA_CHECK(cudaMemcpy(d.get(), h.data(), sizeof(float) * h.size(), cudaMemcpyHostToDevice));
}

void upload_params(DevBuf<bf16>& d, const std::vector<float>& h) {
  d.resize(h.size());
  const size_t chunk = std::min(h.size(), size_t(1) << 24);
  DevBuf<float> stage;
  stage.resize(chunk);
  for (size_t i = 0; i < h.size(); i += chunk) {  // the default stream orders copy and kernel
    const size_t n = std::min(chunk, h.size() - i);
    CUDA_CHECK(cudaMemcpy(stage.get(), h.data() + i, sizeof(float) * n, cudaMemcpyHostToDevice));
    to_bf16_kernel<<<cuda::blocks_for(n, 256), 256>>>(d.get() + i, stage.get(), n);
    CUDA_CHECK_LAUNCH();
  }
  CUDA_CHECK(cudaDeviceSynchronize());
}

// forward_cached on the device in one precision: weights, KV cache and activations.
class Engine {
 public:
  virtual ~Engine() = default;
  // Sizes the cache for `slots` sequences of at least Tmax positions (kept if it already is).
  virtual void make_cache(int slots, int Tmax) = 0;
  // Activations for forward passes of up to `tokens` tokens.
  virtual void reserve(int tokens) = 0;
  // Llama::forward_cached with device inputs tokens [R * n], slot [R], pos [R] and the logits
  // [R, vocab] (fp32) of each row's last token.
  virtual void forward(const int32_t* tokens, int R, int n, const int* slot, const int* pos,
                       float* logits) = 0;
  // KvCache::copy_prefix.
  virtual void copy_prefix(int from, int to, int n) = 0;
  virtual size_t bytes() const = 0;
};

template <typename T>
class DeviceModel final : public Engine {
 public:
  DeviceModel(const Llama& model, cuda::GemmHandle& gemm, cudaStream_t stream)
      : cfg_(model.cfg), gemm_(gemm), s_(stream) {
    upload_params(w_, model.params);
    const ParamLayout& L = model.layout;
    auto at = [&](const std::string& name) -> const T* { return w_.get() + L.at(name).offset; };
    for (int l = 0; l < cfg_.n_layers; l++)
      layers_.push_back({at(layer_name(l, "input_layernorm.weight")),
                         at(layer_name(l, "self_attn.q_proj.weight")),
                         at(layer_name(l, "self_attn.k_proj.weight")),
                         at(layer_name(l, "self_attn.v_proj.weight")),
                         at(layer_name(l, "self_attn.o_proj.weight")),
                         at(layer_name(l, "post_attention_layernorm.weight")),
                         at(layer_name(l, "mlp.gate_proj.weight")),
                         at(layer_name(l, "mlp.up_proj.weight")),
                         at(layer_name(l, "mlp.down_proj.weight"))});
    embed_ = at("model.embed_tokens.weight");
    norm_ = at("model.norm.weight");
    lm_ = at(cfg_.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  }

  void make_cache(int slots, int Tmax) override {
    if (slots == slots_ && Tmax <= Tc_) return;
    const int KD = cfg_.n_kv_heads * cfg_.head_dim(), HD = cfg_.head_dim();
    kv_.resize(0);
    kv_.resize((size_t)2 * cfg_.n_layers * slots * Tmax * KD);
    slots_ = slots, Tc_ = Tmax;
    // The CPU's tables (cpu::rope_tables), so both engines rotate by the same rounded angles.
    std::vector<float> c((size_t)Tmax * HD / 2), s((size_t)Tmax * HD / 2);
    cpu::rope_tables(c.data(), s.data(), Tmax, HD, cfg_.rope_theta);
    cos_.resize(c.size()), sin_.resize(s.size());
    cuda::rope_upload_tables(cos_.get(), sin_.get(), c.data(), s.data(), Tmax, HD);
  }

  void reserve(int tokens) override {
    if (tokens <= cap_) return;
    const size_t N = tokens, C = cfg_.d_model, F = cfg_.d_ff;
    const size_t QD = (size_t)cfg_.n_heads * cfg_.head_dim();
    const size_t KD = (size_t)cfg_.n_kv_heads * cfg_.head_dim();
    for (DevBuf<T>* b : {&x_, &mid_, &ln_, &last_, &normed_}) b->resize(N * C);
    for (DevBuf<T>* b : {&q_, &att_}) b->resize(N * QD);
    for (DevBuf<T>* b : {&k_, &v_}) b->resize(N * KD);
    for (DevBuf<T>* b : {&gate_, &up_, &act_}) b->resize(N * F);
    rstd_.resize(N);
    cap_ = tokens;
  }

  void forward(const int32_t* tokens, int R, int n, const int* slot, const int* pos,
               float* logits) override {
    const int N = R * n, C = cfg_.d_model, F = cfg_.d_ff, HD = cfg_.head_dim();
    const int NH = cfg_.n_heads, NKV = cfg_.n_kv_heads, QD = NH * HD, KD = NKV * HD;
    require(N <= cap_, "internal: GpuSampler forward of ", N, " tokens, sized for ", cap_);
    const float eps = cfg_.norm_eps;
    const size_t per = (size_t)slots_ * Tc_ * KD;  // one layer's keys (or values)
    cuda::embedding_forward(x_.get(), tokens, embed_, N, C, s_);
    for (int l = 0; l < cfg_.n_layers; l++) {
      const Layer& w = layers_[l];
      T* kc = kv_.get() + 2 * l * per;
      T* vc = kc + per;
      cuda::rmsnorm_forward(ln_.get(), rstd_.get(), x_.get(), w.ln1, N, C, eps, s_);
      cuda::matmul_forward(gemm_, q_.get(), ln_.get(), w.q, N, C, QD, s_);
      cuda::matmul_forward(gemm_, k_.get(), ln_.get(), w.k, N, C, KD, s_);
      cuda::matmul_forward(gemm_, v_.get(), ln_.get(), w.v, N, C, KD, s_);
      cuda::rope_forward_at(q_.get(), cos_.get(), sin_.get(), pos, R, n, NH, HD, s_);
      cuda::rope_forward_at(k_.get(), cos_.get(), sin_.get(), pos, R, n, NKV, HD, s_);
      cuda::kv_cache_append(kc, vc, k_.get(), v_.get(), slot, pos, R, n, KD, Tc_, s_);
      cuda::attention_cached(att_.get(), q_.get(), kc, vc, slot, pos, R, n, NH, NKV, HD, Tc_, s_);
      // mid = x + att o^T and x = mid + act down^T: the residual is the GEMM's C (beta = 1).
      copy(mid_.get(), x_.get(), (size_t)N * C);
      cuda::gemm(gemm_, false, true, N, C, QD, 1.0f, att_.get(), QD, w.o, QD, 1.0f, mid_.get(), C,
                 nullptr, s_);
      cuda::rmsnorm_forward(ln_.get(), rstd_.get(), mid_.get(), w.ln2, N, C, eps, s_);
      cuda::matmul_forward(gemm_, gate_.get(), ln_.get(), w.gate, N, C, F, s_);
      cuda::matmul_forward(gemm_, up_.get(), ln_.get(), w.up, N, C, F, s_);
      cuda::swiglu_forward(act_.get(), gate_.get(), up_.get(), (size_t)N * F, s_);
      copy(x_.get(), mid_.get(), (size_t)N * C);
      cuda::gemm(gemm_, false, true, N, C, F, 1.0f, act_.get(), F, w.down, F, 1.0f, x_.get(), C,
                 nullptr, s_);
    }
    // Only each row's last new token needs logits.
    CUDA_CHECK(cudaMemcpy2DAsync(last_.get(), sizeof(T) * C, x_.get() + (size_t)(n - 1) * C,
                                 sizeof(T) * n * C, sizeof(T) * C, R, cudaMemcpyDeviceToDevice,
                                 s_));
    cuda::rmsnorm_forward(normed_.get(), rstd_.get(), last_.get(), norm_, R, C, eps, s_);
    cuda::gemm(gemm_, false, true, R, cfg_.vocab_size, C, 1.0f, normed_.get(), C, lm_, C, 0.0f,
               logits, cfg_.vocab_size, nullptr, s_);
  }

  void copy_prefix(int from, int to, int n) override {
    const size_t KD = (size_t)cfg_.n_kv_heads * cfg_.head_dim();
    const size_t per = (size_t)slots_ * Tc_ * KD, slot = (size_t)Tc_ * KD;
    for (size_t i = 0; i < 2 * (size_t)cfg_.n_layers; i++)  // each layer's k, then its v
      copy(kv_.get() + i * per + to * slot, kv_.get() + i * per + from * slot, n * KD);
  }

  size_t bytes() const override {
    size_t b = w_.bytes() + kv_.bytes() + cos_.bytes() + sin_.bytes() + rstd_.bytes();
    for (const DevBuf<T>* x :
         {&x_, &mid_, &ln_, &last_, &normed_, &q_, &att_, &k_, &v_, &gate_, &up_, &act_})
      b += x->bytes();
    return b;
  }

 private:
  struct Layer {
    const T *ln1, *q, *k, *v, *o, *ln2, *gate, *up, *down;
  };
  const ModelConfig cfg_;
  cuda::GemmHandle& gemm_;
  cudaStream_t s_;
  DevBuf<T> w_;
  std::vector<Layer> layers_;
  const T *embed_ = nullptr, *norm_ = nullptr, *lm_ = nullptr;
  DevBuf<T> kv_;  // per layer: k then v, each [slots, Tc, KD]
  DevBuf<float> cos_, sin_;
  int slots_ = 0, Tc_ = 0, cap_ = 0;
  DevBuf<T> x_, mid_, ln_, last_, normed_, q_, att_, k_, v_, gate_, up_, act_;
  DevBuf<float> rstd_;

  void copy(T* dst, const T* src, size_t n) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(T) * n, cudaMemcpyDeviceToDevice, s_));
  }
};

}  // namespace

struct GpuSampler::Impl {
  ModelConfig cfg;
  int batch;
  SamplingParams params;
  cudaStream_t stream = nullptr;
  std::unique_ptr<cuda::GemmHandle> gemm;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<cuda::TokenSampler> sampler;
  // Per step: inputs (tokens, slots, positions, uniforms), the logits, the draws.
  DevBuf<int32_t> tokens, draw_token;
  DevBuf<int> slot, pos;
  DevBuf<double> uniform;
  DevBuf<float> logits, draw_logp;
  std::vector<int32_t> host_token;
  std::vector<float> host_logp;
  int cap = 0;
  int64_t generated = 0;

  Impl(const Llama& model, int batch_, const SamplingParams& p, Precision precision)
      : cfg(model.cfg), batch(batch_), params(p) {
    params.validate();
    require(batch > 0, "generation batch size must be positive");
    require(model.layout.shard.tp == 1 && model.layout.shard.pp == 1,
            "GPU sampling needs the whole model on each rank, but this run has parallel.tp = ",
            model.layout.shard.tp, " and parallel.pp = ", model.layout.shard.pp,
            "; sample with parallel.tp = 1 and parallel.pp = 1");
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    gemm = std::make_unique<cuda::GemmHandle>();
    if (precision == Precision::bf16)
      engine = std::make_unique<DeviceModel<bf16>>(model, *gemm, stream);
    else
      engine = std::make_unique<DeviceModel<float>>(model, *gemm, stream);
    sampler = std::make_unique<cuda::TokenSampler>(batch, cfg.vocab_size);
    for (DevBuf<int>* b : {&slot, &pos}) b->resize(batch);
    draw_token.resize(batch), uniform.resize(batch), draw_logp.resize(batch);
    logits.resize((size_t)batch * cfg.vocab_size);
    host_token.resize(batch), host_logp.resize(batch);
  }
  ~Impl() {
    sampler.reset(), engine.reset(), gemm.reset();
    cudaStreamDestroy(stream);
  }

  void reserve(int tokens_per_pass) {
    if (tokens_per_pass <= cap) return;
    engine->reserve(tokens_per_pass);
    tokens.resize(tokens_per_pass);
    cap = tokens_per_pass;
  }

  template <typename X>
  void upload(X* dst, const X* src, size_t n) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(X) * n, cudaMemcpyHostToDevice, stream));
  }

  // forward_cached from host inputs: R rows of n tokens; logits land in `logits`.
  void forward(const int32_t* toks, int R, int n, const int* slots, const int* at) {
    for (int i = 0; i < R * n; i++)
      require(toks[i] >= 0 && toks[i] < cfg.vocab_size, "token id ", toks[i],
              " is outside the vocabulary [0, ", cfg.vocab_size, ")");
    upload(tokens.get(), toks, (size_t)R * n);
    upload(slot.get(), slots, R);
    upload(pos.get(), at, R);
    engine->forward(tokens.get(), R, n, slot.get(), pos.get(), logits.get());
  }

  // Draws rows 0..R-1 of the logits with uniforms u; waits for the device.
  void draw(int R, const std::vector<double>& u, std::vector<Draw>& out) {
    upload(uniform.get(), u.data(), R);
    sampler->sample(draw_token.get(), draw_logp.get(), logits.get(), uniform.get(), R,
                    params.temperature, params.top_k, params.top_p, stream);
    CUDA_CHECK(cudaMemcpyAsync(host_token.data(), draw_token.get(), sizeof(int32_t) * R,
                               cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaMemcpyAsync(host_logp.data(), draw_logp.get(), sizeof(float) * R,
                               cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int i = 0; i < R; i++) out[i] = {host_token[i], host_logp[i]};
  }
};

GpuSampler::GpuSampler(const Llama& model, int batch, const SamplingParams& params,
                       Precision precision)
    : impl_(std::make_unique<Impl>(model, batch, params, precision)) {}

GpuSampler::~GpuSampler() = default;

int64_t GpuSampler::generated_tokens() const {
  return impl_->generated;
}

size_t GpuSampler::device_bytes() const {
  const Impl& m = *impl_;
  size_t b = m.engine->bytes() + m.sampler->device_bytes() + m.gemm->workspace_bytes();
  b += m.tokens.bytes() + m.draw_token.bytes() + m.slot.bytes() + m.pos.bytes();
  b += m.uniform.bytes() + m.logits.bytes() + m.draw_logp.bytes();
  return b;
}

namespace {

// Generator's row and stopping rule (generator.cpp: accept).
struct Row {
  bool active = false;
  size_t req = 0;
  int pos = 0;  // tokens in the cache
  int32_t last = 0;
  GenOutput out;
};

bool accept(Row& row, const Draw& d, const SamplingParams& p, int Tmax, int64_t& generated) {
  row.out.tokens.push_back(d.token);
  row.out.logp.push_back(d.logp);
  row.last = d.token;
  generated++;
  row.out.eos = d.token == p.eos_id;
  return row.out.eos || (int)row.out.tokens.size() >= p.max_new_tokens || row.pos >= Tmax;
}

}  // namespace

void GpuSampler::run(const std::vector<GenRequest>& reqs,
                     const std::function<void(size_t, GenOutput&&)>& done) {
  Impl& m = *impl_;
  if (reqs.empty()) return;
  size_t longest = 0;
  for (const auto& r : reqs) {
    require(!r.prompt.empty(), "generation needs a non-empty prompt (at least BOS)");
    longest = std::max(longest, r.prompt.size());
  }
  const int Tmax = std::min<int>(m.cfg.max_seq_len, (int)longest + m.params.max_new_tokens);
  require((int)longest < Tmax, "a prompt of ", longest, " tokens leaves no room to generate ",
          "within model.max_seq_len = ", m.cfg.max_seq_len);
  m.engine->make_cache(m.batch, Tmax);
  m.reserve((int)std::max({(size_t)m.batch, longest, std::min(kPrefillTokens, m.batch * longest)}));
  const int V = m.cfg.vocab_size;
  std::vector<Row> rows(m.batch);
  std::vector<Draw> draws(m.batch);
  std::vector<double> u(m.batch);
  // The uniforms of the CPU generator's draws: keyed by the row's sample id and cache position.
  const auto draw_rows = [&](const int* slots, int R) {
    for (int i = 0; i < R; i++) {
      const Row& row = rows[slots[i]];
      u[i] = m.params.temperature > 0
                 ? rng_uniform(m.params.seed, reqs[row.req].sample_id, (uint64_t)row.pos)
                 : 0.5;
    }
    m.draw(R, u, draws);
  };
  std::vector<int> slots, pos, fill;
  std::vector<int32_t> toks;
  size_t next = 0;
  const auto finish = [&](int s) {
    rows[s].active = false;
    done(rows[s].req, std::move(rows[s].out));
  };
  while (true) {
    // Fill free slots as Generator::run does: prompts of equal length together, identical
    // prompts prefilled once, then their first tokens drawn.
    while (next < reqs.size()) {
      fill.clear();
      for (int s = 0; s < m.batch && next < reqs.size(); s++)
        if (!rows[s].active) {
          rows[s] = Row{};
          rows[s].active = true, rows[s].req = next++;
          rows[s].pos = (int)reqs[rows[s].req].prompt.size();
          fill.push_back(s);
        }
      if (fill.empty()) break;
      std::stable_sort(fill.begin(), fill.end(),
                       [&](int a, int b) { return rows[a].pos < rows[b].pos; });
      for (size_t i = 0; i < fill.size();) {
        const int n = rows[fill[i]].pos;
        const size_t cap = std::max(1, m.cap / n);
        size_t j = i;
        while (j < fill.size() && j - i < cap && rows[fill[j]].pos == n) j++;
        const int R = (int)(j - i);
        std::vector<int> first(R), uniq_slots;
        toks.clear();
        for (int k = 0; k < R; k++) {
          const auto& prompt = reqs[rows[fill[i + k]].req].prompt;
          first[k] = (int)uniq_slots.size();
          for (int q = 0; q < (int)uniq_slots.size(); q++)
            if (reqs[rows[uniq_slots[q]].req].prompt == prompt) {
              first[k] = q;
              break;
            }
          if (first[k] == (int)uniq_slots.size()) {
            uniq_slots.push_back(fill[i + k]);
            toks.insert(toks.end(), prompt.begin(), prompt.end());
          }
        }
        const int U = (int)uniq_slots.size();
        pos.assign(U, 0);
        m.forward(toks.data(), U, n, uniq_slots.data(), pos.data());
        for (int k = R - 1; k >= 0; k--) {  // spread logits row first[k] <= k to row k
          float* lg = m.logits.get();
          if (first[k] != k)
            CUDA_CHECK(cudaMemcpyAsync(lg + (size_t)k * V, lg + (size_t)first[k] * V,
                                       sizeof(float) * V, cudaMemcpyDeviceToDevice, m.stream));
          if (uniq_slots[first[k]] != fill[i + k])
            m.engine->copy_prefix(uniq_slots[first[k]], fill[i + k], n);
        }
        draw_rows(&fill[i], R);
        for (int k = 0; k < R; k++)
          if (accept(rows[fill[i + k]], draws[k], m.params, Tmax, m.generated)) finish(fill[i + k]);
        i = j;
      }
    }
    slots.clear(), pos.clear(), toks.clear();
    for (int s = 0; s < m.batch; s++)
      if (rows[s].active)
        slots.push_back(s), pos.push_back(rows[s].pos), toks.push_back(rows[s].last);
    if (slots.empty()) return;
    const int R = (int)slots.size();
    m.forward(toks.data(), R, 1, slots.data(), pos.data());
    for (int s : slots) rows[s].pos++;
    draw_rows(slots.data(), R);
    for (int i = 0; i < R; i++)
      if (accept(rows[slots[i]], draws[i], m.params, Tmax, m.generated)) finish(slots[i]);
  }
}

}  // namespace xwin
