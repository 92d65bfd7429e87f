"""Independent float64 PyTorch reference for xwin's Llama-family model.

Written from the math (HF Llama conventions), not from the C++ code:
  h = embed[tokens]
  per layer:  h += o_proj(attn(rope(q), rope(k), v))   on RMSNorm(h) * w_in
              h += down(silu(gate(x)) * up(x))          on x = RMSNorm(h) * w_post
  logits = RMSNorm(h) * w_final @ W^T  (W = lm_head, or embed_tokens when tied)
  value  = RMSNorm(h) * w_final @ value_head.weight^T + value_head.bias

RMSNorm(x) = x * rsqrt(mean(x^2) + eps).  RoPE is HF "rotate half": the pairs are
(i, i + HD/2), inv_freq_i = theta^(-2i/HD).  Attention is causal with scale 1/sqrt(HD);
with GQA query head h reads kv head h // (NH // NKV).
"""

import json
import math
import os

import h5py
import numpy as np
import torch

DTYPE = torch.float64


# ----------------------------------------------------------------------------- checkpoints


def read_index(ckpt_dir):
    with open(os.path.join(ckpt_dir, "index.json")) as f:
        return json.load(f)


def shard_path(ckpt_dir):
    """Path of the single (pp0, tp0) shard of a one-rank checkpoint."""
    index = read_index(ckpt_dir)
    shards = index["shards"]
    if len(shards) != 1:
        raise ValueError(f"{ckpt_dir}: reference expects one shard, index lists {shards}")
    s = shards[0]  # {"file", "pp", "tp"} in current checkpoints, a plain name in early ones
    return os.path.join(ckpt_dir, s["file"] if isinstance(s, dict) else s)


def _attr_str(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return _attr_str(value.item() if value.size == 1 else value.tobytes())
    return str(value)


def load_checkpoint(ckpt_dir, requires_grad=True):
    """Returns (config dict, {name: float64 leaf tensor})."""
    with h5py.File(shard_path(ckpt_dir), "r") as f:
        cfg = json.loads(_attr_str(f.attrs["model_config"]))
        params = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                params[name] = torch.tensor(np.asarray(obj[()], dtype=np.float64))

        f["params"].visititems(visit)
    for p in params.values():
        p.requires_grad_(requires_grad)
    check_params(cfg, params)
    return cfg, params


def expected_shapes(cfg):
    V, C, F = cfg["vocab_size"], cfg["d_model"], cfg["d_ff"]
    NH, NKV = cfg["n_heads"], cfg["n_kv_heads"]
    HD = C // NH
    shapes = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
    for i in range(cfg["n_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "self_attn.q_proj.weight"] = (NH * HD, C)
        shapes[p + "self_attn.k_proj.weight"] = (NKV * HD, C)
        shapes[p + "self_attn.v_proj.weight"] = (NKV * HD, C)
        shapes[p + "self_attn.o_proj.weight"] = (C, NH * HD)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "mlp.gate_proj.weight"] = (F, C)
        shapes[p + "mlp.up_proj.weight"] = (F, C)
        shapes[p + "mlp.down_proj.weight"] = (C, F)
    if not cfg["tie_embeddings"]:
        shapes["lm_head.weight"] = (V, C)
    if cfg.get("value_head", False):
        shapes["value_head.weight"] = (1, C)
        shapes["value_head.bias"] = (1,)
    return shapes


def check_params(cfg, params):
    shapes = expected_shapes(cfg)
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    if missing or extra:
        raise ValueError(f"checkpoint params: missing {missing}, unexpected {extra}")
    for name, shape in shapes.items():
        if tuple(params[name].shape) != shape:
            raise ValueError(f"{name}: shape {tuple(params[name].shape)}, expected {shape}")


def random_params(cfg, seed, std=0.02):
    """Random parameters (for self-checks); norms near 1 so they matter."""
    g = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in expected_shapes(cfg).items():
        if name.endswith("norm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=DTYPE)
        else:
            t = std * torch.randn(shape, generator=g, dtype=DTYPE)
        params[name] = t.requires_grad_(True)
    return params


def write_params(path, params, cfg=None):
    with h5py.File(path, "w") as f:
        if cfg is not None:
            f.attrs["model_config"] = json.dumps(cfg)
        for name, p in params.items():
            f.create_dataset("params/" + name, data=p.detach().numpy().astype(np.float64))


# ----------------------------------------------------------------------------- data


def load_tokens(path):
    """Returns a list of (tokens int64 array, loss_mask int64 array) records."""
    with h5py.File(path, "r") as f:
        tokens = np.asarray(f["tokens"][()], dtype=np.int64)
        offsets = np.asarray(f["offsets"][()], dtype=np.int64)
        mask = np.asarray(f["loss_mask"][()], dtype=np.int64)
    if offsets[0] != 0 or offsets[-1] != len(tokens) or len(mask) != len(tokens):
        raise ValueError(f"{path}: inconsistent tokens/offsets/loss_mask")
    return [(tokens[a:b], mask[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]


def build_batch(records, T):
    """Rows truncated to T and right-padded with token 0 / mask 0.

    Returns tokens [B, T] (long), targets [B, T] (long) and weights [B, T] (float64):
    position t < T-1 predicts row[t+1] and counts iff mask[t+1] == 1; t = T-1 never counts.
    """
    B = len(records)
    tok = np.zeros((B, T), dtype=np.int64)
    msk = np.zeros((B, T), dtype=np.int64)
    for r, (t, m) in enumerate(records):
        n = min(len(t), T)
        tok[r, :n] = t[:n]
        msk[r, :n] = m[:n]
    tokens = torch.tensor(tok)
    targets = torch.zeros_like(tokens)
    weights = torch.zeros((B, T), dtype=DTYPE)
    targets[:, :-1] = tokens[:, 1:]
    weights[:, :-1] = torch.tensor(msk[:, 1:] == 1, dtype=DTYPE)
    return tokens, targets, weights


# ----------------------------------------------------------------------------- model


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def rope_cos_sin(T, HD, theta):
    inv_freq = 1.0 / theta ** (torch.arange(0, HD, 2, dtype=DTYPE) / HD)  # [HD/2]
    angle = torch.arange(T, dtype=DTYPE)[:, None] * inv_freq[None, :]  # [T, HD/2]
    angle = torch.cat([angle, angle], dim=-1)  # [T, HD]
    return angle.cos(), angle.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    """x [B, H, T, HD]; cos, sin [T, HD]."""
    return x * cos + rotate_half(x) * sin


def attention(q, k, v):
    """Causal attention. q [B, NH, T, HD]; k, v [B, NKV, T, HD] (GQA)."""
    NH, NKV, T, HD = q.shape[1], k.shape[1], q.shape[2], q.shape[3]
    group = NH // NKV
    k = k.repeat_interleave(group, dim=1)  # head h -> kv head h // group
    v = v.repeat_interleave(group, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def forward(cfg, params, tokens, attn_fn=attention, rope_fn=apply_rope):
    """Returns (logits [B, T, V], final normed hidden [B, T, C])."""
    B, T = tokens.shape
    C, NH, NKV = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    HD, eps = C // NH, cfg["norm_eps"]
    cos, sin = rope_cos_sin(T, HD, float(cfg["rope_theta"]))
    h = params["model.embed_tokens.weight"][tokens]
    for i in range(cfg["n_layers"]):
        p = lambda n: params[f"model.layers.{i}.{n}"]  # noqa: E731
        x = rms_norm(h, p("input_layernorm.weight"), eps)
        q = (x @ p("self_attn.q_proj.weight").T).view(B, T, NH, HD).transpose(1, 2)
        k = (x @ p("self_attn.k_proj.weight").T).view(B, T, NKV, HD).transpose(1, 2)
        v = (x @ p("self_attn.v_proj.weight").T).view(B, T, NKV, HD).transpose(1, 2)
        y = attn_fn(rope_fn(q, cos, sin), rope_fn(k, cos, sin), v)
        y = y.transpose(1, 2).reshape(B, T, NH * HD)
        h = h + y @ p("self_attn.o_proj.weight").T
        x = rms_norm(h, p("post_attention_layernorm.weight"), eps)
        gate = x @ p("mlp.gate_proj.weight").T
        up = x @ p("mlp.up_proj.weight").T
        h = h + (torch.nn.functional.silu(gate) * up) @ p("mlp.down_proj.weight").T
    hidden = rms_norm(h, params["model.norm.weight"], eps)
    head = params["model.embed_tokens.weight" if cfg["tie_embeddings"] else "lm_head.weight"]
    return hidden @ head.T, hidden


def value(params, hidden):
    """Scalar value per position: [B, T]."""
    return (hidden @ params["value_head.weight"].T + params["value_head.bias"]).squeeze(-1)


def masked_ce(logits, targets, weights):
    """Mean of -log_softmax(logits)[target] over positions with weight 1 (whole batch)."""
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    count = weights.sum()
    if count == 0:
        raise ValueError("batch has no counted positions")
    return (nll * weights).sum() / count


# ----------------------------------------------------------------------------- training


def lr_at(s, lr, min_lr, warmup, steps):
    """Learning rate of 0-based step s: linear warmup, then cosine to min_lr."""
    if s < warmup:
        return lr * (s + 1) / warmup
    progress = (s - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def step_records(records, s, batch_size):
    """Records of 0-based step s without shuffling: (s*B + j) % n."""
    n = len(records)
    return [records[(s * batch_size + j) % n] for j in range(batch_size)]
