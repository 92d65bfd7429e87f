"""Reference for `xwin sft`: the same training run in float64.

usage: ref_train.py CKPT DATA.h5 OUTDIR [--train.* flags as xwin sft]
Writes OUTDIR/metrics.jsonl ({"step", "loss", "grad_norm", "lr"} per step, step 1-based)
and OUTDIR/final.h5 with the final parameters under /params/<name>.

Semantics: step s (0-based) takes records (s*B + j) % n, j < B (no shuffle); micro-batches
accumulate sum(nll) / (counted positions of the whole global batch), i.e. exactly the
full-batch mean gradient; global-norm clipping (pre-clip norm is logged); torch AdamW with
weight decay on parameters with ndim >= 2 only; warmup + cosine learning rate.
"""

import argparse
import json
import math
import os

import torch

import reference as ref

FLAGS = [  # (flag, type, default)
    ("train.shuffle", str, "false"),
    ("train.steps", int, 10),
    ("train.batch_size", int, 4),
    ("train.micro_batch_size", int, 2),
    ("train.seq_len", int, 32),
    ("train.lr", float, 1e-3),
    ("train.min_lr", float, 1e-4),
    ("train.warmup_steps", int, 3),
    ("train.weight_decay", float, 0.1),
    ("train.beta1", float, 0.9),
    ("train.beta2", float, 0.95),
    ("train.eps", float, 1e-8),
    ("train.grad_clip", float, 1.0),
]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("data")
    ap.add_argument("outdir")
    for flag, typ, default in FLAGS:
        ap.add_argument("--" + flag, dest=flag.replace(".", "_"), type=typ, default=default)
    ap.add_argument("--data.shuffle", dest="train_shuffle", type=str, help="alias of --train.shuffle")
    a = ap.parse_args(argv)
    if a.train_shuffle.lower() not in ("false", "0", "no"):
        ap.error("the reference only reproduces --train.shuffle false")
    if a.train_batch_size % a.train_micro_batch_size:
        ap.error("batch_size must be a multiple of micro_batch_size")
    return a


def accumulate_grads(cfg, params, records, T, micro):
    """Backward over micro-batches; returns the global-batch mean loss (float)."""
    _, _, weights = ref.build_batch(records, T)
    count = weights.sum()
    total = 0.0
    for i in range(0, len(records), micro):
        tokens, targets, w = ref.build_batch(records[i : i + micro], T)
        logits, _ = ref.forward(cfg, params, tokens)
        nll = -torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        part = (nll * w).sum() / count
        part.backward()
        total += part.item()
    return total


def clip_grads(params, max_norm):
    """Global L2 norm clipping (clip_grad_norm_ semantics); returns the pre-clip norm."""
    norm = math.sqrt(sum(float((p.grad**2).sum()) for p in params))
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for p in params:
            p.grad.mul_(scale)
    return norm


def train(a):
    cfg, params = ref.load_checkpoint(a.ckpt)
    records = ref.load_tokens(a.data)
    plist = list(params.values())
    groups = [
        {"params": [p for p in plist if p.ndim >= 2], "weight_decay": a.train_weight_decay},
        {"params": [p for p in plist if p.ndim < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(
        groups, lr=a.train_lr, betas=(a.train_beta1, a.train_beta2), eps=a.train_eps,
        foreach=False,
    )
    os.makedirs(a.outdir, exist_ok=True)
    metrics = []
    for s in range(a.train_steps):
        batch = ref.step_records(records, s, a.train_batch_size)
        opt.zero_grad(set_to_none=False)
        for p in plist:  # parameters the loss does not reach (value head) get zero grads
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        loss = accumulate_grads(cfg, params, batch, a.train_seq_len, a.train_micro_batch_size)
        norm = clip_grads(plist, a.train_grad_clip)
        lr = ref.lr_at(s, a.train_lr, a.train_min_lr, a.train_warmup_steps, a.train_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        metrics.append({"step": s + 1, "loss": loss, "grad_norm": norm, "lr": lr})
        print(f"ref_train: step {s + 1} loss {loss:.10f} grad_norm {norm:.6g} lr {lr:.6g}")
    with open(os.path.join(a.outdir, "metrics.jsonl"), "w") as f:
        for m in metrics:
            f.write(json.dumps(m) + "\n")
    ref.write_params(os.path.join(a.outdir, "final.h5"), params, cfg)


def main():
    torch.set_num_threads(1)
    train(parse_args())


if __name__ == "__main__":
    main()
