"""Self-check of the float64 reference against alternative formulations.

- RMSNorm, rotate-half RoPE (vs explicit 2x2 rotations on pairs (i, i+HD/2) and vs complex
  multiplication), causal GQA attention (vs a per-position loop with explicit softmax);
- the whole forward vs a naive per-token implementation written with loops and slices;
- masked CE vs torch cross_entropy with ignore_index; batch building on a hand example;
- gradients (CE + value head) vs finite differences (torch.autograd.gradcheck), tied and untied;
- training pieces: micro-batch accumulation == full-batch gradient, clipping vs
  clip_grad_norm_, the lr schedule, and torch AdamW vs the AdamW update written out.
Exits 1 on any failure.
"""

import math
import sys

import numpy as np
import torch

import reference as ref
import ref_train

torch.set_num_threads(1)
FAILURES = []


def check(name, a, b, tol=1e-12):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    err = float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))
    ok = a.shape == b.shape and err <= tol
    print(f"  {'ok  ' if ok else 'FAIL'} {name:<58} rel err {err:.2e} (tol {tol:g})")
    if not ok:
        FAILURES.append(name)


def config(**kw):
    cfg = dict(vocab_size=11, d_model=8, n_layers=2, n_heads=2, n_kv_heads=1, d_ff=12,
               max_seq_len=16, norm_eps=1e-5, rope_theta=10000.0, tie_embeddings=False,
               value_head=True)
    cfg.update(kw)
    return cfg


# ----------------------------------------------------------------------------- alternatives


def rope_pairs(x, pos, theta):
    """Explicit rotation of each pair (x_i, x_{i+HD/2}) by angle pos * theta^(-2i/HD)."""
    HD = x.shape[-1]
    out = x.clone()
    for i in range(HD // 2):
        a = pos * theta ** (-2.0 * i / HD)
        c, s = math.cos(a), math.sin(a)
        x1, x2 = x[..., i], x[..., i + HD // 2]
        out[..., i] = x1 * c - x2 * s
        out[..., i + HD // 2] = x1 * s + x2 * c
    return out


def rope_complex(x, theta):
    """x [B, H, T, HD]: (x_i + j x_{i+HD/2}) * exp(j t theta^(-2i/HD)), Meta-style."""
    T, HD = x.shape[-2], x.shape[-1]
    freqs = 1.0 / theta ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD)
    z = torch.polar(torch.ones(T, HD // 2, dtype=torch.float64),
                    torch.outer(torch.arange(T, dtype=torch.float64), freqs))
    xc = torch.complex(x[..., : HD // 2], x[..., HD // 2 :]) * z
    return torch.cat([xc.real, xc.imag], dim=-1)


def naive_forward(cfg, P, tokens):
    """Per-token loops; heads are column slices of the [C] projections."""
    B, T = tokens.shape
    C, NH, NKV = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    HD, eps, theta = C // NH, cfg["norm_eps"], float(cfg["rope_theta"])

    def norm(x, w):
        return x / torch.sqrt((x * x).sum() / C + eps) * w

    def rot(x, pos):  # x [n*HD] -> rope applied per head slice
        return torch.cat([rope_pairs(x[j : j + HD], pos, theta) for j in range(0, len(x), HD)])

    head = P["model.embed_tokens.weight"] if cfg["tie_embeddings"] else P["lm_head.weight"]
    logits, hiddens = [], []
    for b in range(B):
        hs = [P["model.embed_tokens.weight"][int(tokens[b, t])] for t in range(T)]
        for i in range(cfg["n_layers"]):
            W = lambda n: P[f"model.layers.{i}.{n}"]  # noqa: E731
            xs = [norm(h, W("input_layernorm.weight")) for h in hs]
            qs = [rot(W("self_attn.q_proj.weight") @ x, t) for t, x in enumerate(xs)]
            ks = [rot(W("self_attn.k_proj.weight") @ x, t) for t, x in enumerate(xs)]
            vs = [W("self_attn.v_proj.weight") @ x for x in xs]
            new = []
            for t in range(T):
                outs = []
                for h in range(NH):
                    g = h // (NH // NKV)
                    q = qs[t][h * HD : (h + 1) * HD]
                    sc = torch.stack([q @ ks[u][g * HD : (g + 1) * HD] for u in range(t + 1)])
                    e = torch.exp(sc / math.sqrt(HD) - sc.max() / math.sqrt(HD))
                    pr = e / e.sum()
                    outs.append(sum(pr[u] * vs[u][g * HD : (g + 1) * HD] for u in range(t + 1)))
                h1 = hs[t] + W("self_attn.o_proj.weight") @ torch.cat(outs)
                x = norm(h1, W("post_attention_layernorm.weight"))
                gt = W("mlp.gate_proj.weight") @ x
                act = gt / (1 + torch.exp(-gt)) * (W("mlp.up_proj.weight") @ x)
                new.append(h1 + W("mlp.down_proj.weight") @ act)
            hs = new
        fin = [norm(h, P["model.norm.weight"]) for h in hs]
        hiddens.append(torch.stack(fin))
        logits.append(torch.stack([head @ h for h in fin]))
    return torch.stack(logits), torch.stack(hiddens)


# ----------------------------------------------------------------------------- checks


def check_ops():
    print("ops:")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64)
    w = torch.randn(8, generator=g, dtype=torch.float64)
    check("rms_norm vs x / sqrt(sum(x^2)/C + eps) * w", ref.rms_norm(x, w, 1e-5),
          x / torch.sqrt((x * x).sum(-1, keepdim=True) / 8 + 1e-5) * w)
    for theta in (10000.0, 500000.0):
        cos, sin = ref.rope_cos_sin(7, 8, theta)
        r = ref.apply_rope(x, cos, sin)
        pairs = torch.stack([rope_pairs(x[:, :, t], t, theta) for t in range(7)], dim=2)
        check(f"rope rotate-half vs 2x2 pair rotation (theta {theta:g})", r, pairs)
        check(f"rope rotate-half vs complex multiplication (theta {theta:g})", r,
              rope_complex(x, theta))
    for NH, NKV in ((4, 4), (4, 2), (8, 1)):
        q = torch.randn(2, NH, 6, 4, generator=g, dtype=torch.float64)
        k = torch.randn(2, NKV, 6, 4, generator=g, dtype=torch.float64)
        v = torch.randn(2, NKV, 6, 4, generator=g, dtype=torch.float64)
        out = torch.zeros_like(q)
        for b in range(2):
            for h in range(NH):
                kv = h // (NH // NKV)
                for t in range(6):
                    s = torch.stack([q[b, h, t] @ k[b, kv, u] / 2.0 for u in range(t + 1)])
                    p = torch.exp(s - s.max())
                    out[b, h, t] = (p / p.sum()) @ v[b, kv, : t + 1]
        check(f"attention vs per-position loop (NH {NH}, NKV {NKV})",
              ref.attention(q, k, v), out)


def check_forward():
    print("forward vs naive per-token implementation:")
    for kw in ({}, {"tie_embeddings": True, "n_heads": 4, "n_kv_heads": 2},
               {"rope_theta": 500000.0, "norm_eps": 1e-6, "n_heads": 4, "n_kv_heads": 1}):
        cfg = config(**kw)
        P = ref.random_params(cfg, seed=3, std=0.5)
        tokens = torch.randint(0, cfg["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            logits, hidden = ref.forward(cfg, P, tokens)
            nl, nh = naive_forward(cfg, P, tokens)
            check(f"logits {kw}", logits, nl)
            check(f"value  {kw}", ref.value(P, hidden), ref.value(P, nh))


def check_loss_and_batch():
    print("loss and batch:")
    recs = [(np.array([5, 6, 7]), np.array([0, 1, 1])),
            (np.array([1, 2, 3, 4, 9, 8]), np.array([0, 0, 1, 1, 1, 0]))]
    tok, tgt, w = ref.build_batch(recs, 5)
    check("batch tokens", tok, [[5, 6, 7, 0, 0], [1, 2, 3, 4, 9]], 0)
    check("batch targets", tgt[:, :-1], [[6, 7, 0, 0], [2, 3, 4, 9]], 0)
    check("batch weights", w, [[1, 1, 0, 0, 0], [0, 1, 1, 1, 0]], 0)
    logits = torch.randn(2, 5, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ignore = tgt.masked_fill(w == 0, -100)
    check("masked CE vs cross_entropy(ignore_index)", ref.masked_ce(logits, tgt, w),
          torch.nn.functional.cross_entropy(logits.reshape(-1, 11), ignore.reshape(-1)))


def check_gradients():
    print("gradients vs finite differences (gradcheck, CE + value):")
    for kw in ({}, {"tie_embeddings": True}):
        cfg = config(**kw)
        P = ref.random_params(cfg, seed=5, std=0.5)
        names = list(P)
        g = torch.Generator().manual_seed(6)
        tokens = torch.randint(0, cfg["vocab_size"], (2, 5), generator=g)
        targets = torch.randint(0, cfg["vocab_size"], (2, 5), generator=g)
        weights = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 0]], dtype=torch.float64)
        r = torch.randn(2, 5, generator=g, dtype=torch.float64)

        def f(*ts):
            Q = dict(zip(names, ts))
            logits, hidden = ref.forward(cfg, Q, tokens)
            return ref.masked_ce(logits, targets, weights) + (ref.value(Q, hidden) * r).sum()

        ok = torch.autograd.gradcheck(f, tuple(P[n] for n in names), eps=1e-6, atol=1e-8,
                                      rtol=1e-6, raise_exception=False)
        print(f"  {'ok  ' if ok else 'FAIL'} gradcheck of all {sum(p.numel() for p in P.values())} "
              f"parameters {kw}")
        if not ok:
            FAILURES.append(f"gradcheck {kw}")


def check_training_pieces():
    print("training pieces:")
    cfg = config()
    g = torch.Generator().manual_seed(7)
    recs = [(torch.randint(0, 11, (n,), generator=g).numpy(), (np.arange(n) >= 2).astype(np.int64))
            for n in (4, 9, 6, 3)]
    P = ref.random_params(cfg, seed=8, std=0.5)
    tokens, targets, w = ref.build_batch(recs, 7)
    full = ref.masked_ce(ref.forward(cfg, P, tokens)[0], targets, w)
    full_g = torch.autograd.grad(full, list(P.values()), allow_unused=True)
    for p in P.values():
        p.grad = torch.zeros_like(p)
    loss = ref_train.accumulate_grads(cfg, P, recs, 7, 1)
    check("micro-batch (MB=1) loss == full-batch loss", loss, full.item())
    check("micro-batch (MB=1) grads == full-batch grads",
          torch.cat([p.grad.flatten() for p in P.values()]),
          torch.cat([(gg if gg is not None else torch.zeros_like(p)).flatten()
                     for gg, p in zip(full_g, P.values())]))
    grads = [p.grad.clone() for p in P.values()]
    norm = ref_train.clip_grads(list(P.values()), 0.01)
    clipped = [p.grad.clone() for p in P.values()]
    for p, gg in zip(P.values(), grads):
        p.grad = gg.clone()
    tnorm = torch.nn.utils.clip_grad_norm_(list(P.values()), 0.01)
    check("grad norm vs clip_grad_norm_", norm, float(tnorm))
    check("clipped grads vs clip_grad_norm_", torch.cat([c.flatten() for c in clipped]),
          torch.cat([p.grad.flatten() for p in P.values()]))
    lrs = [ref.lr_at(s, 1e-3, 1e-4, 3, 10) for s in range(10)]
    check("lr warmup 1/3, 2/3, 3/3 of LR", lrs[:3], [1e-3 / 3, 2e-3 / 3, 1e-3])
    check("lr cosine start = LR, midpoint = (LR+MINLR)/2", [ref.lr_at(3, 1e-3, 1e-4, 3, 11),
          ref.lr_at(7, 1e-3, 1e-4, 3, 11)], [1e-3, 5.5e-4])
    # AdamW: torch vs the written-out update, decay on ndim >= 2 only.
    p2 = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    p1 = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    opt = torch.optim.AdamW([{"params": [p2], "weight_decay": 0.1},
                             {"params": [p1], "weight_decay": 0.0}], lr=1e-3,
                            betas=(0.9, 0.95), eps=1e-8)
    mine = [(p2.detach().clone(), 0.1), (p1.detach().clone(), 0.0)]
    m = [torch.zeros_like(x) for x, _ in mine]
    v = [torch.zeros_like(x) for x, _ in mine]
    for t in range(1, 4):
        lr = 1e-3 * t
        gs = [torch.randn(x.shape, dtype=torch.float64, generator=g) for x, _ in mine]
        p2.grad, p1.grad = gs[0].clone(), gs[1].clone()
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.step()
        for i, (x, wd) in enumerate(mine):
            m[i] = 0.9 * m[i] + 0.1 * gs[i]
            v[i] = 0.95 * v[i] + 0.05 * gs[i] ** 2
            x.mul_(1 - lr * wd)
            x.sub_(lr * (m[i] / (1 - 0.9**t)) / ((v[i] / (1 - 0.95**t)).sqrt() + 1e-8))
    check("torch AdamW vs written-out update (matrix, decayed)", p2.detach(), mine[0][0])
    check("torch AdamW vs written-out update (vector, no decay)", p1.detach(), mine[1][0])


def main():
    check_ops()
    check_forward()
    check_loss_and_batch()
    check_gradients()
    check_training_pieces()
    if FAILURES:
        print(f"selfcheck: FAILED {len(FAILURES)}: {FAILURES}")
        return 1
    print("selfcheck: reference passes all checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
