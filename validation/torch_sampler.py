#!/usr/bin/env python3
"""PyTorch KV-cache sampler, the reference for bench/sampling/xwin_sample_bench: a plain fp32
Llama (RMSNorm, rotate-half RoPE, GQA attention, SwiGLU MLP, untied LM head; weights N(0, 0.02)
and unit norms, as xwin's Llama::init_random) with per-layer key/value caches. The batch of
random prompts is prefilled in one forward pass, then every row decodes one token per step
against the caches; each step draws with temperature + top-p the way Hugging Face's
TopPLogitsWarper does (sort, softmax, cumsum, scatter the mask back, multinomial) and takes
log p(token) under the untempered model, as xwin's sampler does. No EOS: every row generates
exactly --new_tokens tokens. Prints one JSON line with the fields xwin_sample_bench prints.

  torch_sampler.py --vocab 4096 --d_model 256 --layers 6 --heads 8 --ffn 768 --batch 64
                   --prompt_len 64 --new_tokens 128 [--kv_heads H] [--threads N]
                   [--top_p 0.9] [--temperature 1.0] [--reps 3] [--warmup 1]
                   [--cache static|cat] [--config NAME]

--cache static preallocates [B, kv_heads, prompt_len + new_tokens, head_dim] per layer and
writes each step's keys/values in place; --cache cat grows the caches with torch.cat every step
(Hugging Face's DynamicCache of the time). Thread settings in the environment (OMP_WAIT_POLICY,
which libblas is loaded) are chosen by bench/sampling/run_sample_bench.py and echoed.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class KvCache:
    """Per-layer keys and values [B, kv_heads, T, hd] of the tokens seen so far."""

    def __init__(self, layers, B, kv, Tmax, hd, mode):
        self.mode, self.len = mode, 0
        if mode == "static":
            self.k = [torch.zeros(B, kv, Tmax, hd) for _ in range(layers)]
            self.v = [torch.zeros(B, kv, Tmax, hd) for _ in range(layers)]
        else:
            self.k = [None] * layers
            self.v = [None] * layers

    def append(self, layer, k, v):
        """Adds k, v [B, kv, n, hd] at positions len.. and returns the layer's keys and values
        up to and including them."""
        n = k.shape[2]
        if self.mode == "static":
            t0 = self.len
            self.k[layer][:, :, t0:t0 + n] = k
            self.v[layer][:, :, t0:t0 + n] = v
            return self.k[layer][:, :, :t0 + n], self.v[layer][:, :, :t0 + n]
        if self.k[layer] is None:
            self.k[layer], self.v[layer] = k, v
        else:
            self.k[layer] = torch.cat((self.k[layer], k), dim=2)
            self.v[layer] = torch.cat((self.v[layer], v), dim=2)
        return self.k[layer], self.v[layer]


class Attention(nn.Module):
    def __init__(self, d_model, heads, kv_heads):
        super().__init__()
        self.h, self.kv, self.hd = heads, kv_heads, d_model // heads
        self.q_proj = nn.Linear(d_model, heads * self.hd, bias=False)
        self.k_proj = nn.Linear(d_model, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d_model, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(heads * self.hd, d_model, bias=False)

    def forward(self, x, cos, sin, mask, cache, layer):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = cache.append(layer, k, v)
        if self.kv != self.h:
            rep = self.h // self.kv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        if mask is not None:
            s = s + mask
        p = torch.softmax(s, dim=-1)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, self.h * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, d_model, ffn):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, ffn, bias=False)
        self.up_proj = nn.Linear(d_model, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, d_model, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, d_model, heads, kv_heads, ffn):
        super().__init__()
        self.input_layernorm = RMSNorm(d_model)
        self.self_attn = Attention(d_model, heads, kv_heads)
        self.post_attention_layernorm = RMSNorm(d_model)
        self.mlp = MLP(d_model, ffn)

    def forward(self, x, cos, sin, mask, cache, layer):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, vocab, d_model, layers, heads, kv_heads, ffn, max_seq, theta=10000.0):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(Block(d_model, heads, kv_heads, ffn) for _ in range(layers))
        self.norm = RMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        hd = d_model // heads
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.outer(torch.arange(max_seq, dtype=torch.float64), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens, pos0, cache):
        """Logits [B, vocab] of the last of tokens [B, n], which sit at positions pos0.. of
        every row; their keys/values are appended to cache."""
        n = tokens.shape[1]
        x = self.embed_tokens(tokens)
        cos, sin = self.cos[pos0:pos0 + n], self.sin[pos0:pos0 + n]
        mask = None
        if n > 1:  # prefill from an empty cache: causal mask
            mask = torch.full((n, n), float("-inf")).triu(1)
        for l, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, cache, l)
        cache.len += n
        return self.lm_head(self.norm(x[:, -1]))


def top_p_sample(logits, temperature, top_p, generator):
    """Hugging Face's temperature + TopPLogitsWarper + multinomial on logits [B, V]; returns the
    tokens [B] and their log p under the untempered model."""
    scores = logits / temperature
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    sorted_indices_to_remove = cumulative_probs <= (1 - top_p)
    sorted_indices_to_remove[..., -1:] = 0  # min_tokens_to_keep = 1
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices,
                                                         sorted_indices_to_remove)
    scores = scores.masked_fill(indices_to_remove, -float("inf"))
    probs = F.softmax(scores, dim=-1)
    tok = torch.multinomial(probs, num_samples=1, generator=generator)
    logp = torch.log_softmax(logits, dim=-1).gather(1, tok)
    return tok, logp


def generate(model, prompts, a, kv, hd, generator):
    """Prefill + decode with timers around the forward passes and the sampling."""
    B, P = prompts.shape
    t = {"prefill_forward_s": 0.0, "decode_forward_s": 0.0, "sampling_s": 0.0}
    t_all, c_all = time.perf_counter(), time.process_time()
    cache = KvCache(a.layers, B, kv, P + a.new_tokens, hd, a.cache)
    t0 = time.perf_counter()
    logits = model(prompts, 0, cache)
    t1 = time.perf_counter()
    tok, logp = top_p_sample(logits, a.temperature, a.top_p, generator)
    t2 = time.perf_counter()
    t["prefill_forward_s"] += t1 - t0
    t["sampling_s"] += t2 - t1
    out, lps = [tok], [logp]
    for step in range(1, a.new_tokens):
        t0 = time.perf_counter()
        logits = model(tok, P + step - 1, cache)
        t1 = time.perf_counter()
        tok, logp = top_p_sample(logits, a.temperature, a.top_p, generator)
        t2 = time.perf_counter()
        t["decode_forward_s"] += t1 - t0
        t["sampling_s"] += t2 - t1
        out.append(tok), lps.append(logp)
    tokens = torch.cat(out, dim=1)
    t["total_s"] = time.perf_counter() - t_all
    t["cpu_s"] = time.process_time() - c_all
    t["other_s"] = t["total_s"] - t["prefill_forward_s"] - t["decode_forward_s"] - t["sampling_s"]
    return tokens, t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="custom")
    for k, d in [("vocab", 4096), ("d_model", 256), ("layers", 6), ("heads", 8), ("kv_heads", 0),
                 ("ffn", 768), ("batch", 64), ("prompt_len", 64), ("new_tokens", 128),
                 ("threads", 1), ("reps", 3), ("warmup", 1)]:
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--top_p", type=float, default=0.9)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--cache", default="static", choices=["static", "cat"])
    a = ap.parse_args()
    kv = a.kv_heads or a.heads
    hd = a.d_model // a.heads

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.set_flush_denormal(True)
    torch.manual_seed(0)

    model = Llama(a.vocab, a.d_model, a.layers, a.heads, kv, a.ffn, a.prompt_len + a.new_tokens)
    model.eval()
    g = torch.Generator().manual_seed(42)
    prompts = torch.randint(0, a.vocab, (a.batch, a.prompt_len), generator=g)
    sample_gen = torch.Generator().manual_seed(7)

    runs = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            generate(model, prompts, a, kv, hd, sample_gen)
        for _ in range(a.reps):
            tokens, t = generate(model, prompts, a, kv, hd, sample_gen)
            assert tokens.shape == (a.batch, a.new_tokens)
            runs.append(t)
        # How many tokens top-p keeps on these (flat, random-weight) distributions: the first
        # sampled step of every row, outside any timing.
        cache = KvCache(a.layers, a.batch, kv, a.prompt_len, hd, a.cache)
        probs = torch.softmax(model(prompts, 0, cache) / a.temperature, dim=-1)
        sp = probs.sort(dim=-1, descending=True).values.cumsum(dim=-1)
        keep = ((sp < a.top_p).sum(dim=-1) + 1).clamp(max=a.vocab).double().mean().item()

    runs.sort(key=lambda r: r["total_s"])
    med = runs[len(runs) // 2]
    total_s = statistics.median(r["total_s"] for r in runs)
    n_tok = a.batch * a.new_tokens
    steps = a.new_tokens - 1
    out = {
        "impl": "torch",
        "config": a.config,
        "threads": a.threads,
        "batch": a.batch,
        "prompt_len": a.prompt_len,
        "new_tokens": a.new_tokens,
        "top_p": a.top_p,
        "temperature": a.temperature,
        "generated_tokens": n_tok,
        "total_s": total_s,
        "run_times": [r["total_s"] for r in runs],
        "tokens_per_s": n_tok / total_s,
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "tokens_per_cpu_s": n_tok / statistics.median(r["cpu_s"] for r in runs),
        "split": {
            **{k: med[k] for k in ("prefill_forward_s", "decode_forward_s", "sampling_s",
                                   "other_s", "total_s")},
            "decode_steps": steps,
            "decode_step_ms": 1e3 * (med["decode_forward_s"] + med["sampling_s"]) / max(1, steps),
            "sampling_share": med["sampling_s"] / med["total_s"],
            "tokens_per_s": n_tok / med["total_s"],
        },
        "top_p_kept_mean": keep,
        "cache": a.cache,
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                               "OPENBLAS_NUM_THREADS", "LD_LIBRARY_PATH")},
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
