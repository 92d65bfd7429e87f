// GpuLlama: model/llama.cpp's forward and backward, kernel for kernel, on the device. The
// passes are templates over the activation type A (float or bf16); parameters are read as A
// (the fp32 master copy, or its bf16 copy), and every weight gradient is fp32.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "gpu/llama_gpu.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/crossentropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"

namespace xwin {

using cuda::bf16;

namespace {

// Rows of the LM head's logits formed at a time: chunk x vocab fp32 logits at most.
constexpr int kCeChunk = 4096;

// a += b elementwise (the residual adds), in fp32 and rounded to A.
template <typename A>
__global__ void residual_add_kernel(A* a, const A* b, size_t n) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) a[i] = cuda::from_float<A>(cuda::to_float(a[i]) + cuda::to_float(b[i]));
}

template <typename A>
void residual_add(A* a, const A* b, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  residual_add_kernel<<<cuda::blocks_for(n, 256), 256, 0, stream>>>(a, b, n);
  CUDA_CHECK_LAUNCH();
}

__global__ void to_bf16_kernel(bf16* out, const float* in, size_t n) {
  const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16(in[i]);
}

}  // namespace

const char* to_string(GpuPrecision p) {
  return p == GpuPrecision::fp32 ? "fp32" : "bf16";
}

GpuPrecision parse_gpu_precision(const std::string& s) {
  if (s == "fp32") return GpuPrecision::fp32;
  if (s == "bf16") return GpuPrecision::bf16;
  fail("unknown GPU precision '", s, "'; use fp32 or bf16");
}

size_t GpuLlama::device_used() const {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return total_b - free_b;
}

void* GpuLlama::alloc(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
  allocations_.emplace_back(p);
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  engine_bytes_ += bytes;
  return p;
}

size_t GpuLlama::act_bytes() const {
  return precision == GpuPrecision::bf16 ? sizeof(bf16) : sizeof(float);
}

GpuLlama::GpuLlama(const ModelConfig& c, GpuPrecision p, int max_tokens, int max_T)
    : cfg(c), layout(c), precision(p), max_tokens_(max_tokens), max_T_(max_T) {
  cfg.validate("model config");
  require(!cfg.value_head, "the GPU engine has no value head yet; use the CPU engine for the ",
          "reward model");
  require(max_T > 0 && max_T <= cfg.max_seq_len && max_tokens >= max_T, "GpuLlama: max_T = ", max_T,
          " must lie in 1..model.max_seq_len = ", cfg.max_seq_len, " and max_tokens = ", max_tokens,
          " must hold at least one sequence");
  used_before_ = device_used();
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  try {
    engine_bytes_ = gemm_.workspace_bytes();
    const size_t N = max_tokens, C = cfg.d_model, P = layout.total, a = act_bytes();
    HD_ = cfg.head_dim(), NH_ = cfg.n_heads, NKV_ = cfg.n_kv_heads, F_ = cfg.d_ff;
    QD_ = NH_ * HD_, KD_ = NKV_ * HD_;
    const size_t QD = QD_, KD = KD_, F = F_;
    params_ = alloc_n<float>(P), grads_ = alloc_n<float>(P);
    m_ = alloc_n<float>(P), v_ = alloc_n<float>(P);
    if (precision == GpuPrecision::bf16) params_bf16_ = alloc_n<bf16>(P);
    layers_.resize(cfg.n_layers);
    for (LayerActs& l : layers_) {
      l.resid_in = alloc(N * C * a), l.ln1 = alloc(N * C * a), l.rstd1 = alloc_n<float>(N);
      l.q = alloc(N * QD * a), l.k = alloc(N * KD * a), l.v = alloc(N * KD * a);
      l.att = alloc(N * QD * a), l.lse = alloc_n<float>(N * NH_);
      l.resid_mid = alloc(N * C * a), l.ln2 = alloc(N * C * a), l.rstd2 = alloc_n<float>(N);
      l.gate = alloc(N * F * a), l.up = alloc(N * F * a), l.act = alloc(N * F * a);
    }
    resid_final_ = alloc(N * C * a), final_norm_ = alloc(N * C * a);
    rstd_final_ = alloc_n<float>(N), dfinal_norm_ = alloc(N * C * a);
    dresid_ = alloc(N * C * a), dln_ = alloc(N * C * a);
    dq_ = alloc(N * QD * a), datt_ = alloc(N * QD * a), dk_ = alloc(N * KD * a);
    dv_ = alloc(N * KD * a);
    dgate_ = alloc(N * F * a), dup_ = alloc(N * F * a), dact_ = alloc(N * F * a);
    tokens_ = alloc_n<int32_t>(N), targets_ = alloc_n<int32_t>(N), weights_ = alloc_n<float>(N);
    loss_sum_ = alloc_n<float>(1);
    chunk_ = std::min(max_tokens, kCeChunk);
    ce_workspace_ = alloc(cuda::lm_head_ce_workspace(max_tokens, cfg.d_model, cfg.vocab_size,
                                                     chunk_, precision == GpuPrecision::bf16));
    norm_work_ = alloc_n<double>(cuda::kSumSquaresParts), norm_out_ = alloc_n<double>(1);
    // RoPE tables from the CPU's rope_tables, so both engines rotate by the same floats.
    const size_t half = (size_t)max_T * (HD_ / 2);
    rope_cos_ = alloc_n<float>(half), rope_sin_ = alloc_n<float>(half);
    std::vector<float> cos(half), sin(half);
    cpu::rope_tables(cos.data(), sin.data(), max_T, HD_, cfg.rope_theta);
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the memsets, before the synchronous copies
    cuda::rope_upload_tables(rope_cos_, rope_sin_, cos.data(), sin.data(), max_T, HD_);
    for (const TensorInfo& t : layout.tensors) {
      bf16* copy = params_bf16_ ? params_bf16_ + t.offset : nullptr;
      (t.decay ? decay_ : no_decay_)
          .push_back(
              {params_ + t.offset, grads_ + t.offset, m_ + t.offset, v_ + t.offset, copy, t.numel});
    }
    used_peak_ = device_used();
  } catch (...) {
    allocations_.clear();
    cudaStreamDestroy(stream_);
    throw;
  }
}

GpuLlama::~GpuLlama() {
  cudaStreamSynchronize(stream_);
  allocations_.clear();
  cudaStreamDestroy(stream_);
}

void GpuLlama::synchronize() const {
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

GpuMemory GpuLlama::memory() {
  synchronize();
  GpuMemory m;
  m.engine_bytes = engine_bytes_;
  m.device_used_before = used_before_;
  m.device_used = device_used();
  used_peak_ = std::max(used_peak_, m.device_used);
  m.device_used_peak = used_peak_;
  return m;
}

void GpuLlama::refresh_bf16() {
  if (!params_bf16_) return;
  to_bf16_kernel<<<cuda::blocks_for(layout.total, 256), 256, 0, stream_>>>(params_bf16_, params_,
                                                                           layout.total);
  CUDA_CHECK_LAUNCH();
}

void GpuLlama::upload(const Llama& model, bool with_grads) {
  require(model.cfg == cfg && model.layout.total == layout.total,
          "GpuLlama::upload: the CPU model's config differs from the GPU model's (",
          model.cfg.to_json().dump(), " vs ", cfg.to_json().dump(), ")");
  const size_t bytes = sizeof(float) * layout.total;
  CUDA_CHECK(cudaMemcpyAsync(params_, model.params.data(), bytes, cudaMemcpyHostToDevice, stream_));
  if (with_grads)
    CUDA_CHECK(cudaMemcpyAsync(grads_, model.grads.data(), bytes, cudaMemcpyHostToDevice, stream_));
  refresh_bf16();
  synchronize();
}

void GpuLlama::download(Llama& model) const {
  require(model.cfg == cfg && model.layout.total == layout.total,
          "GpuLlama::download: the CPU model's config differs from the GPU model's");
  const size_t bytes = sizeof(float) * layout.total;
  CUDA_CHECK(cudaMemcpyAsync(model.params.data(), params_, bytes, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaMemcpyAsync(model.grads.data(), grads_, bytes, cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

void GpuLlama::download_moments(std::vector<float>& m, std::vector<float>& v) const {
  m.resize(layout.total), v.resize(layout.total);
  const size_t bytes = sizeof(float) * layout.total;
  CUDA_CHECK(cudaMemcpyAsync(m.data(), m_, bytes, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaMemcpyAsync(v.data(), v_, bytes, cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

template <>
float* GpuLlama::param<float>(const std::string& name) const {
  return params_ + layout.at(name).offset;
}
template <>
bf16* GpuLlama::param<bf16>(const std::string& name) const {
  return params_bf16_ + layout.at(name).offset;
}

float* GpuLlama::grad(const std::string& name) const {
  return grads_ + layout.at(name).offset;
}

const char* GpuLlama::lm_name() const {
  return cfg.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

void GpuLlama::zero_grad() {
  CUDA_CHECK(cudaMemsetAsync(grads_, 0, sizeof(float) * layout.total, stream_));
}

void GpuLlama::forward(const int32_t* tokens, int B, int T) {
  require(B > 0 && T > 0 && T <= max_T_ && (size_t)B * T <= (size_t)max_tokens_,
          "GpuLlama::forward: batch ", B, " x ", T, " exceeds the sizes the engine was built for (",
          max_tokens_, " tokens, T <= ", max_T_, ")");
  const int N = B * T;
  for (int n = 0; n < N; n++)
    require(tokens[n] >= 0 && tokens[n] < cfg.vocab_size, "token id ", tokens[n], " at position ",
            n, " is outside the vocabulary [0, ", cfg.vocab_size,
            "); the data was tokenized for a different model");
  B_ = B, T_ = T;
  CUDA_CHECK(
      cudaMemcpyAsync(tokens_, tokens, sizeof(int32_t) * N, cudaMemcpyHostToDevice, stream_));
  if (precision == GpuPrecision::bf16)
    forward_impl<bf16>();
  else
    forward_impl<float>();
}

template <typename A>
void GpuLlama::forward_impl() {
  const int B = B_, T = T_, N = B * T, C = cfg.d_model, F = F_, HD = HD_;
  const int NH = NH_, NKV = NKV_, QD = QD_, KD = KD_;
  const size_t NC = (size_t)N * C;
  cudaStream_t s = stream_;
  cuda::GemmHandle& g = gemm_;
  cuda::embedding_forward(static_cast<A*>(layers_[0].resid_in), tokens_,
                          param<A>("model.embed_tokens.weight"), N, C, s);
  for (int l = 0; l < cfg.n_layers; l++) {
    const LayerActs& a = layers_[l];
    A *resid_in = static_cast<A*>(a.resid_in), *ln1 = static_cast<A*>(a.ln1);
    A *q = static_cast<A*>(a.q), *k = static_cast<A*>(a.k), *v = static_cast<A*>(a.v);
    A *att = static_cast<A*>(a.att), *mid = static_cast<A*>(a.resid_mid);
    A *ln2 = static_cast<A*>(a.ln2), *gate = static_cast<A*>(a.gate);
    A *up = static_cast<A*>(a.up), *act = static_cast<A*>(a.act);
    A* out = static_cast<A*>(l + 1 < cfg.n_layers ? layers_[l + 1].resid_in : resid_final_);
    cuda::rmsnorm_forward(ln1, a.rstd1, resid_in, param<A>(layer_name(l, "input_layernorm.weight")),
                          N, C, cfg.norm_eps, s);
    cuda::matmul_forward(g, q, ln1, param<A>(layer_name(l, "self_attn.q_proj.weight")), N, C, QD,
                         s);
    cuda::matmul_forward(g, k, ln1, param<A>(layer_name(l, "self_attn.k_proj.weight")), N, C, KD,
                         s);
    cuda::matmul_forward(g, v, ln1, param<A>(layer_name(l, "self_attn.v_proj.weight")), N, C, KD,
                         s);
    cuda::rope_forward(q, rope_cos_, rope_sin_, B, T, NH, HD, s);
    cuda::rope_forward(k, rope_cos_, rope_sin_, B, T, NKV, HD, s);
    cuda::attention_forward(att, a.lse, q, k, v, B, T, NH, NKV, HD, s);
    cuda::matmul_forward(g, mid, att, param<A>(layer_name(l, "self_attn.o_proj.weight")), N, QD, C,
                         s);
    residual_add(mid, resid_in, NC, s);
    cuda::rmsnorm_forward(ln2, a.rstd2, mid,
                          param<A>(layer_name(l, "post_attention_layernorm.weight")), N, C,
                          cfg.norm_eps, s);
    cuda::matmul_forward(g, gate, ln2, param<A>(layer_name(l, "mlp.gate_proj.weight")), N, C, F, s);
    cuda::matmul_forward(g, up, ln2, param<A>(layer_name(l, "mlp.up_proj.weight")), N, C, F, s);
    cuda::swiglu_forward(act, gate, up, (size_t)N * F, s);
    cuda::matmul_forward(g, out, act, param<A>(layer_name(l, "mlp.down_proj.weight")), N, F, C, s);
    residual_add(out, mid, NC, s);
  }
  cuda::rmsnorm_forward(static_cast<A*>(final_norm_), rstd_final_, static_cast<A*>(resid_final_),
                        param<A>("model.norm.weight"), N, C, cfg.norm_eps, s);
}

double GpuLlama::lm_loss(const int32_t* targets, const float* weights, bool with_grad) {
  require(B_ > 0, "GpuLlama::lm_loss before any forward");
  const int N = B_ * T_;
  for (int n = 0; n < N; n++)
    require(weights[n] == 0.f || (targets[n] >= 0 && targets[n] < cfg.vocab_size), "target id ",
            targets[n], " at position ", n, " is outside the vocabulary [0, ", cfg.vocab_size, ")");
  CUDA_CHECK(
      cudaMemcpyAsync(targets_, targets, sizeof(int32_t) * N, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(
      cudaMemcpyAsync(weights_, weights, sizeof(float) * N, cudaMemcpyHostToDevice, stream_));
  return precision == GpuPrecision::bf16 ? lm_loss_impl<bf16>(with_grad)
                                         : lm_loss_impl<float>(with_grad);
}

template <typename A>
double GpuLlama::lm_loss_impl(bool with_grad) {
  cuda::LmHeadCE<A> a;
  a.x = static_cast<const A*>(final_norm_);
  a.W = param<A>(lm_name());
  a.targets = targets_;
  a.weights = weights_;
  a.N = B_ * T_, a.C = cfg.d_model, a.V = cfg.vocab_size;
  a.workspace = ce_workspace_;
  a.chunk = chunk_;
  a.dx = with_grad ? static_cast<A*>(dfinal_norm_) : nullptr;
  a.dW = with_grad ? grad(lm_name()) : nullptr;
  a.logp = nullptr;
  return cuda::lm_head_ce(a, gemm_, stream_);
}

void GpuLlama::backward() {
  backward_pass(false);
}

void GpuLlama::backward_pass(bool start_buckets) {
  require(B_ > 0, "GpuLlama::backward before any forward");
  if (precision == GpuPrecision::bf16)
    backward_impl<bf16>(start_buckets);
  else
    backward_impl<float>(start_buckets);
}

template <typename A>
void GpuLlama::backward_impl(bool start_buckets) {
  const int B = B_, T = T_, N = B * T, C = cfg.d_model, F = F_, HD = HD_;
  const int NH = NH_, NKV = NKV_, QD = QD_, KD = KD_;
  const size_t NC = (size_t)N * C, a_size = sizeof(A);
  cudaStream_t s = stream_;
  cuda::GemmHandle& g = gemm_;
  A *dresid = static_cast<A*>(dresid_), *dln = static_cast<A*>(dln_);
  A *dq = static_cast<A*>(dq_), *dk = static_cast<A*>(dk_), *dv = static_cast<A*>(dv_);
  A *datt = static_cast<A*>(datt_), *dgate = static_cast<A*>(dgate_);
  A *dup = static_cast<A*>(dup_), *dact = static_cast<A*>(dact_);
  // Tensors first .. last (contiguous in the layout) are final: start their data-parallel sum.
  auto ready = [&](const std::string& first, const std::string& last) {
    if (!start_buckets) return;
    const TensorInfo &a = layout.at(first), &b = layout.at(last);
    dp_->start_allreduce_sum(grads_ + a.offset, b.offset + b.numel - a.offset);
  };
  CUDA_CHECK(cudaMemsetAsync(dresid, 0, NC * a_size, s));
  cuda::rmsnorm_backward(dresid, grad("model.norm.weight"), static_cast<A*>(dfinal_norm_),
                         static_cast<A*>(resid_final_), param<A>("model.norm.weight"), rstd_final_,
                         N, C, s);
  ready("model.norm.weight", layout.tensors.back().name);
  for (int l = cfg.n_layers - 1; l >= 0; l--) {
    const LayerActs& a = layers_[l];
    A *resid_in = static_cast<A*>(a.resid_in), *ln1 = static_cast<A*>(a.ln1);
    A *q = static_cast<A*>(a.q), *k = static_cast<A*>(a.k), *v = static_cast<A*>(a.v);
    A *att = static_cast<A*>(a.att), *mid = static_cast<A*>(a.resid_mid);
    A *ln2 = static_cast<A*>(a.ln2), *gate = static_cast<A*>(a.gate);
    A *up = static_cast<A*>(a.up), *act = static_cast<A*>(a.act);
    auto W = [&](const char* suffix) { return param<A>(layer_name(l, suffix)); };
    auto G = [&](const char* suffix) { return grad(layer_name(l, suffix)); };
    // MLP block: resid_out = resid_mid + down(swiglu(gate(ln2), up(ln2))).
    CUDA_CHECK(cudaMemsetAsync(dact, 0, (size_t)N * F * a_size, s));
    cuda::matmul_backward(g, dact, G("mlp.down_proj.weight"), dresid, act,
                          W("mlp.down_proj.weight"), N, F, C, s);
    cuda::swiglu_backward(dgate, dup, dact, gate, up, (size_t)N * F, s);
    CUDA_CHECK(cudaMemsetAsync(dln, 0, NC * a_size, s));
    cuda::matmul_backward(g, dln, G("mlp.gate_proj.weight"), dgate, ln2, W("mlp.gate_proj.weight"),
                          N, C, F, s);
    cuda::matmul_backward(g, dln, G("mlp.up_proj.weight"), dup, ln2, W("mlp.up_proj.weight"), N, C,
                          F, s);
    cuda::rmsnorm_backward(dresid, G("post_attention_layernorm.weight"), dln, mid,
                           W("post_attention_layernorm.weight"), a.rstd2, N, C, s);
    // Attention block: resid_mid = resid_in + o(attn(rope(q(ln1)), rope(k(ln1)), v(ln1))).
    CUDA_CHECK(cudaMemsetAsync(datt, 0, (size_t)N * QD * a_size, s));
    cuda::matmul_backward(g, datt, G("self_attn.o_proj.weight"), dresid, att,
                          W("self_attn.o_proj.weight"), N, QD, C, s);
    cuda::attention_backward(dq, dk, dv, datt, att, a.lse, q, k, v, B, T, NH, NKV, HD, s);
    cuda::rope_backward(dq, rope_cos_, rope_sin_, B, T, NH, HD, s);
    cuda::rope_backward(dk, rope_cos_, rope_sin_, B, T, NKV, HD, s);
    CUDA_CHECK(cudaMemsetAsync(dln, 0, NC * a_size, s));
    cuda::matmul_backward(g, dln, G("self_attn.q_proj.weight"), dq, ln1,
                          W("self_attn.q_proj.weight"), N, C, QD, s);
    cuda::matmul_backward(g, dln, G("self_attn.k_proj.weight"), dk, ln1,
                          W("self_attn.k_proj.weight"), N, C, KD, s);
    cuda::matmul_backward(g, dln, G("self_attn.v_proj.weight"), dv, ln1,
                          W("self_attn.v_proj.weight"), N, C, KD, s);
    cuda::rmsnorm_backward(dresid, G("input_layernorm.weight"), dln, resid_in,
                           W("input_layernorm.weight"), a.rstd1, N, C, s);
    ready(layer_name(l, "input_layernorm.weight"), layer_name(l, "mlp.down_proj.weight"));
  }
  cuda::embedding_backward(grad("model.embed_tokens.weight"), dresid, tokens_, N, C, s);
  ready("model.embed_tokens.weight", "model.embed_tokens.weight");
}

GpuStepStats GpuLlama::update(const TrainConfig& tc, int64_t step) {
  GpuStepStats st;
  double sum = 0;
  cuda::sum_squares(norm_out_, grads_, layout.total, norm_work_, stream_);
  CUDA_CHECK(cudaMemcpyAsync(&sum, norm_out_, sizeof sum, cudaMemcpyDeviceToHost, stream_));
  synchronize();
  st.grad_norm = std::sqrt(sum);
  if (tc.grad_clip > 0 && st.grad_norm > tc.grad_clip)
    cuda::scale_inplace(grads_, (float)(tc.grad_clip / (st.grad_norm + 1e-6)), layout.total,
                        stream_);
  st.lr = lr_at(tc, step);
  cuda::AdamWHyper h{(float)st.lr, (float)tc.beta1, (float)tc.beta2, (float)tc.eps,
                     (float)tc.weight_decay};
  cuda::adamw_update(decay_, h, step + 1, stream_);
  h.weight_decay = 0.f;
  cuda::adamw_update(no_decay_, h, step + 1, stream_);
  return st;
}

int64_t GpuMicroBatch::loss_units() const {
  int64_t count = 0;
  for (size_t n = 0; n < (size_t)B * T; n++) count += mask[n] != 0.f;
  return count;
}

void GpuLlama::set_data_parallel(Collectives* dp) {
  const std::string backend = dp ? dp->backend() : "";
  require(!dp || dp->size() == 1 || backend == "nccl",
          "GpuLlama: the gradients live on the device, so the data-parallel group needs the NCCL ",
          "collectives (make_nccl_collectives), not '", backend, "'");
  dp_ = dp;
}

GpuStepStats GpuLlama::train_step(const std::vector<GpuMicroBatch>& micro, int64_t global_units,
                                  const TrainConfig& tc, int64_t step) {
  require(!micro.empty(), "GpuLlama::train_step: no micro-batches");
  const double scale = global_units > 0 ? 1.0 / (double)global_units : 0.0;
  const bool dp = data_parallel(), overlap = dp && tc.overlap_grad_reduce;
  zero_grad();
  double loss = 0;
  std::vector<float> w;
  for (size_t i = 0; i < micro.size(); i++) {
    const GpuMicroBatch& mb = micro[i];
    w.assign((size_t)mb.B * mb.T, 0.f);
    for (size_t n = 0; n < w.size(); n++) w[n] = mb.mask[n] != 0.f ? (float)scale : 0.f;
    forward(mb.tokens, mb.B, mb.T);
    loss += lm_loss(mb.targets, w.data(), true);
    backward_pass(overlap && i + 1 == micro.size());
  }
  if (dp) {
    if (!overlap) dp_->start_allreduce_sum(grads_, layout.total);
    // The loss rides behind the gradients on the collectives' stream; wait() then orders the
    // compute stream (the norm, clipping and AdamW) after every sum.
    float sum = (float)loss;
    CUDA_CHECK(cudaMemcpyAsync(loss_sum_, &sum, sizeof sum, cudaMemcpyHostToDevice, stream_));
    dp_->start_allreduce_sum(loss_sum_, 1);
    dp_->wait();
    CUDA_CHECK(cudaMemcpyAsync(&sum, loss_sum_, sizeof sum, cudaMemcpyDeviceToHost, stream_));
    synchronize();
    loss = sum;
  }
  // The same global loss on every rank: all of them stop here together.
  require(std::isfinite(loss), "loss is ", loss, " at step ", step + 1,
          "; lower train.lr or check the data");
  GpuStepStats st = update(tc, step);
  st.loss = loss;
  return st;
}

GpuStepStats GpuLlama::train_step(const int32_t* tokens, const int32_t* targets, const float* mask,
                                  int B, int T, const TrainConfig& tc, int64_t step) {
  require(!data_parallel(), "GpuLlama::train_step: with a data-parallel group, pass the ",
          "micro-batches and the loss units of the whole global batch");
  const GpuMicroBatch mb{tokens, targets, mask, B, T};
  return train_step({mb}, mb.loss_units(), tc, step);
}

void GpuLlama::logits(float* out) {
  require(B_ > 0, "GpuLlama::logits before any forward");
  const int N = B_ * T_, C = cfg.d_model, V = cfg.vocab_size;
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, sizeof(float) * (size_t)N * V));
  std::unique_ptr<void, CudaFree> hold(d);
  if (precision == GpuPrecision::bf16)
    cuda::gemm(gemm_, false, true, N, V, C, 1.0f, static_cast<const bf16*>(final_norm_), C,
               param<bf16>(lm_name()), C, 0.0f, d, V, nullptr, stream_);
  else
    cuda::matmul_forward(gemm_, d, static_cast<const float*>(final_norm_), param<float>(lm_name()),
                         N, C, V, stream_);
  CUDA_CHECK(
      cudaMemcpyAsync(out, d, sizeof(float) * (size_t)N * V, cudaMemcpyDeviceToHost, stream_));
  synchronize();
}

}  // namespace xwin
