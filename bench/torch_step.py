#!/usr/bin/env python3
"""PyTorch reference for bench/xwin_bench: one full fp32 training step of a plain Llama
(RMSNorm, rotate-half RoPE, causal GQA attention with matmul + mask + softmax, SwiGLU MLP,
untied LM head), CrossEntropyLoss, clip_grad_norm_(1.0), torch.optim.AdamW. Prints one JSON line
with the same fields and the same FLOP formula as xwin_bench.

  torch_step.py --vocab 8192 --d_model 512 --layers 8 --heads 8 --ffn 1536 --seq 512 --batch 4
                [--kv_heads H] [--steps 5] [--warmup 2] [--threads N] [--foreach auto|0|1]

Thread settings that live in the environment (OMP_NUM_THREADS, OMP_WAIT_POLICY,
OPENBLAS_NUM_THREADS, which libblas is loaded) are chosen by bench/run_bench.py, which starts
this script; they are echoed in the output.
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


def step_flops(vocab, d_model, layers, heads, kv_heads, ffn, seq, batch):
    """Same formula as step_flops() in bench/xwin_bench.cpp: 6 * tokens * matmul parameters
    (q, k, v, o, gate, up, down per layer + LM head; not the embedding) + attention (QK^T and PV,
    2*T*T*hd each per sequence/head/layer, halved for causality, x3 for training)."""
    C, Fd, hd = d_model, ffn, d_model / heads
    QD, KD = heads * hd, kv_heads * hd
    per_layer = C * QD + 2 * C * KD + QD * C + 3 * C * Fd
    matmul_params = layers * per_layer + vocab * C
    tokens = batch * seq
    attn_fwd = batch * layers * heads * 2.0 * (2.0 * seq * seq * hd) / 2.0
    return 6.0 * tokens * matmul_params + 3.0 * attn_fwd


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


class Attention(nn.Module):
    def __init__(self, d_model, heads, kv_heads):
        super().__init__()
        self.h, self.kv, self.hd = heads, kv_heads, d_model // heads
        self.q_proj = nn.Linear(d_model, heads * self.hd, bias=False)
        self.k_proj = nn.Linear(d_model, kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d_model, kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(heads * self.hd, d_model, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.kv != self.h:
            rep = self.h // self.kv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd)) + mask
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

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, vocab, d_model, layers, heads, kv_heads, ffn, seq, theta=10000.0):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(Block(d_model, heads, kv_heads, ffn) for _ in range(layers))
        self.norm = RMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        hd = d_model // heads
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.outer(torch.arange(seq, dtype=torch.float64), inv)
        ang = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        mask = torch.full((seq, seq), float("-inf")).triu(1)
        self.register_buffer("mask", mask, persistent=False)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tokens):
        T = tokens.shape[1]
        x = self.embed_tokens(tokens)
        cos, sin, mask = self.cos[:T], self.sin[:T], self.mask[:T, :T]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.norm(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="custom")
    for k, d in [("vocab", 512), ("d_model", 128), ("layers", 4), ("heads", 4), ("kv_heads", 0),
                 ("ffn", 384), ("seq", 128), ("batch", 16), ("steps", 5), ("warmup", 2),
                 ("threads", 1)]:
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--foreach", default="auto", choices=["auto", "0", "1"],
                    help="AdamW foreach implementation (auto: time both, keep the faster)")
    a = ap.parse_args()
    kv = a.kv_heads or a.heads

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.set_flush_denormal(True)
    torch.manual_seed(0)

    model = Llama(a.vocab, a.d_model, a.layers, a.heads, kv, a.ffn, a.seq)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]

    g = torch.Generator().manual_seed(42)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g)
    inp = tokens[:, :-1].contiguous()
    tgt = tokens[:, 1:].clone()
    # Like xwin (a record truncated to seq): position seq-1 has no target.
    tgt[:, -1] = -100
    tgt = tgt.reshape(-1)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)

    def make_opt(foreach):
        return torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, foreach=foreach)

    def step(opt):
        opt.zero_grad(set_to_none=True)
        logits = model(inp)
        loss = loss_fn(logits.view(-1, a.vocab), tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    def run(foreach, warmup, steps):
        opt = make_opt(foreach)
        for _ in range(warmup):
            step(opt)
        times, loss = [], 0.0
        for _ in range(steps):
            t0 = time.perf_counter()
            loss = step(opt)
            times.append(time.perf_counter() - t0)
        return times, loss

    foreach_choice = {}
    if a.foreach == "auto":
        # Only the optimizer differs: time opt.step() alone on real gradients, both ways.
        opt_t = {}
        for fe in (False, True):
            opt = make_opt(fe)
            step(opt)  # gradients and optimizer state
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                opt.step()
                ts.append(time.perf_counter() - t0)
            opt_t[fe] = statistics.median(ts)
        foreach = opt_t[True] < opt_t[False]
        foreach_choice = {"opt_step_s_foreach": opt_t[True], "opt_step_s_loop": opt_t[False]}
    else:
        foreach = a.foreach == "1"

    times, loss = run(foreach, a.warmup, a.steps)
    step_s = statistics.median(times)
    tokens_per_step = a.batch * a.seq
    flops = step_flops(a.vocab, a.d_model, a.layers, a.heads, kv, a.ffn, a.seq, a.batch)
    out = {
        "impl": "torch",
        "config": a.config,
        "threads": a.threads,
        "step_s": step_s,
        "step_times": times,
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tokens_per_step / step_s,
        "flops_per_step": flops,
        "gflops": flops / step_s * 1e-9,
        "loss": loss,
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "foreach": foreach,
        **foreach_choice,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                               "OPENBLAS_NUM_THREADS", "LD_LIBRARY_PATH")},
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
