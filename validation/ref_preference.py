"""Reference for `xwin dump --objective rm|dpo`: loss and gradients in float64.

usage: ref_preference.py CKPT PAIRS.h5 T OUT.h5 --objective rm
       ref_preference.py CKPT DPO_PAIRS.h5 T OUT.h5 --objective dpo --beta B --loss sigmoid|ipo|hinge

Written from the spec, not from the C++ code. Every pair of PAIRS.h5 (schema xwin.pairs) gives
two rows, prompt + chosen and prompt + rejected; a row longer than T keeps its LAST T tokens;
rows are right-padded with token 0 to T. All rows form one batch through reference.forward.

  rm:  reward = value head at the last real token (index min(len, T) - 1);
       loss = mean over pairs of -log sigmoid(r_chosen - r_rejected - margin)
       (margin = /margin when present, else 0). Needs a checkpoint with a value head.
  dpo: logp = sum over the response tokens of the row (its last |response| tokens, position 0
       excluded: nothing predicts it) of log_softmax(logits[t - 1])[token t];
       h = (logp_chosen - /ref_logp_chosen) - (logp_rejected - /ref_logp_rejected);
       loss = mean over pairs of
         sigmoid: -log sigmoid(B h);  ipo: (h - 1 / (2 B))^2;  hinge: max(0, 1 - B h).

Writes /loss and /grads/<param> (zeros for parameters the loss does not reach), the layout of
`xwin dump --objective rm|dpo`, and OUT.json with the per-pair rewards / log-prob sums (also
printed) and, for rm, dL_dr_abs_sum = sum over rows of |dL/dreward|: the size of the terms that
cancel in the value-head bias gradient, which is identically zero for this loss (it depends on
rewards only through r_chosen - r_rejected), so autograd leaves only float64 rounding there.
"""

import argparse
import json

import h5py
import numpy as np
import torch

import reference as ref

DTYPE = ref.DTYPE


# ----------------------------------------------------------------------------- data


def _ragged(f, group):
    tokens = np.asarray(f[group + "/tokens"][()], dtype=np.int64)
    offsets = np.asarray(f[group + "/offsets"][()], dtype=np.int64)
    if offsets[0] != 0 or offsets[-1] != len(tokens) or np.any(np.diff(offsets) < 0):
        raise ValueError(f"{f.filename}: {group}/offsets inconsistent with {group}/tokens")
    return [tokens[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def load_pairs(path):
    """Returns dict: prompt, chosen, rejected (lists of int64 arrays), margin, ref_logp_chosen,
    ref_logp_rejected (float64 arrays or None when absent)."""
    with h5py.File(path, "r") as f:
        schema = ref._attr_str(f.attrs["schema"]) if "schema" in f.attrs else ""
        if schema != "xwin.pairs":
            raise ValueError(f"{path}: schema '{schema}', expected 'xwin.pairs'")
        d = {g: _ragged(f, "/" + g) for g in ("prompt", "chosen", "rejected")}
        n = len(d["prompt"])
        if len(d["chosen"]) != n or len(d["rejected"]) != n:
            raise ValueError(f"{path}: prompt/chosen/rejected record counts differ")
        for key in ("margin", "ref_logp_chosen", "ref_logp_rejected"):
            if key in f:
                # Stored as float32: the float64 value of the stored number is exact.
                v = np.asarray(f[key][()], dtype=np.float64)
                if v.shape != (n,):
                    raise ValueError(f"{path}: /{key} has shape {v.shape}, expected ({n},)")
                d[key] = v
            else:
                d[key] = None
    return d


def pair_rows(d):
    """Rows in batch order: pair i -> row 2i (prompt + chosen), row 2i+1 (prompt + rejected).
    Returns a list of (sequence, response length)."""
    rows = []
    for p, c, r in zip(d["prompt"], d["chosen"], d["rejected"]):
        rows.append((np.concatenate([p, c]), len(c)))
        rows.append((np.concatenate([p, r]), len(r)))
    return rows


def build_rows(rows, T):
    """tokens [B, T] (last min(len, T) tokens of each row, right-padded with 0) and the kept
    length n of each row."""
    tok = np.zeros((len(rows), T), dtype=np.int64)
    lengths = []
    for i, (seq, _) in enumerate(rows):
        n = min(len(seq), T)
        if n < 1:
            raise ValueError(f"row {i} is empty")
        tok[i, :n] = seq[len(seq) - n:]
        lengths.append(n)
    return torch.tensor(tok), lengths


# ----------------------------------------------------------------------------- objectives


def rewards(cfg, params, tokens, lengths):
    """Value head at the last real token of every row: [B]."""
    _, hidden = ref.forward(cfg, params, tokens)
    v = ref.value(params, hidden)  # [B, T]
    idx = torch.tensor([n - 1 for n in lengths])
    return v[torch.arange(len(lengths)), idx]


def logp_sums(cfg, params, tokens, lengths, resp_lens):
    """Sum of log p(token t | tokens < t) over each row's response positions: [B].

    The response is the last resp_len tokens of the kept row; position 0 is never counted."""
    logits, _ = ref.forward(cfg, params, tokens)
    logp = torch.log_softmax(logits, dim=-1)  # [B, T, V]
    sums = []
    for i, (n, m) in enumerate(zip(lengths, resp_lens)):
        start = max(1, n - m)
        pos = torch.arange(start, n)  # predicted positions
        if len(pos) == 0:
            sums.append(torch.zeros((), dtype=DTYPE))
            continue
        lp = logp[i, pos - 1, tokens[i, pos]]
        sums.append(lp.sum())
    return torch.stack(sums)


def rm_loss(cfg, params, d, T):
    if not cfg.get("value_head", False):
        raise ValueError("objective rm needs a checkpoint with a value head")
    rows = pair_rows(d)
    tokens, lengths = build_rows(rows, T)
    r = rewards(cfg, params, tokens, lengths)
    rc, rr = r[0::2], r[1::2]
    n = len(d["prompt"])
    margin = torch.tensor(d["margin"] if d["margin"] is not None else np.zeros(n), dtype=DTYPE)
    z = rc - rr - margin
    loss = -torch.nn.functional.logsigmoid(z).mean()
    # dL/dr per row, exactly: dL/dr_chosen = -sigmoid(-z) / n = -dL/dr_rejected.
    dz = (-torch.sigmoid(-z) / n).detach()
    info = {"r_chosen": rc.detach().numpy(), "r_rejected": rr.detach().numpy(),
            "margin": margin.numpy(), "z": z.detach().numpy(),
            "dL_dr_abs_sum": float(2.0 * dz.abs().sum())}
    return loss, info


def dpo_h(cfg, params, d, T):
    """h per pair (a tensor in the graph) and the log-prob sums."""
    if d["ref_logp_chosen"] is None or d["ref_logp_rejected"] is None:
        raise ValueError("objective dpo needs /ref_logp_chosen and /ref_logp_rejected")
    rows = pair_rows(d)
    tokens, lengths = build_rows(rows, T)
    s = logp_sums(cfg, params, tokens, lengths, [m for _, m in rows])
    pc, pr = s[0::2], s[1::2]
    refc = torch.tensor(d["ref_logp_chosen"], dtype=DTYPE)
    refr = torch.tensor(d["ref_logp_rejected"], dtype=DTYPE)
    return (pc - refc) - (pr - refr), pc, pr


def dpo_loss(cfg, params, d, T, beta, kind):
    h, pc, pr = dpo_h(cfg, params, d, T)
    if kind == "sigmoid":
        per = -torch.nn.functional.logsigmoid(beta * h)
    elif kind == "ipo":
        per = (h - 1.0 / (2.0 * beta)) ** 2
    elif kind == "hinge":
        per = torch.clamp(1.0 - beta * h, min=0.0)
    else:
        raise ValueError(f"unknown DPO loss '{kind}'")
    info = {"logp_chosen": pc.detach().numpy(), "logp_rejected": pr.detach().numpy(),
            "beta_h": (beta * h).detach().numpy()}
    return per.mean(), info


# ----------------------------------------------------------------------------- main


def dump(ckpt, data, T, out, objective, beta=0.1, kind="sigmoid"):
    cfg, params = ref.load_checkpoint(ckpt)
    d = load_pairs(data)
    if objective == "rm":
        loss, info = rm_loss(cfg, params, d, T)
    elif objective == "dpo":
        loss, info = dpo_loss(cfg, params, d, T, beta, kind)
    else:
        raise ValueError(f"unknown objective '{objective}'")
    loss.backward()
    with h5py.File(out, "w") as f:
        f.create_dataset("loss", data=np.float64(loss.item()))
        for name, p in params.items():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            f.create_dataset("grads/" + name, data=g.numpy())
    return loss.item(), info


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("data")
    ap.add_argument("seq_len", type=int)
    ap.add_argument("out")
    ap.add_argument("--objective", choices=["rm", "dpo"], required=True)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--loss", choices=["sigmoid", "ipo", "hinge"], default="sigmoid")
    a = ap.parse_args()
    torch.set_num_threads(1)
    loss, info = dump(a.ckpt, a.data, a.seq_len, a.out, a.objective, a.beta, a.loss)
    np.set_printoptions(precision=6, linewidth=160)
    for k, v in info.items():
        print(f"ref_preference: {k} = {v}")
    with open(a.out + ".json", "w") as f:
        json.dump({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in info.items()},
                  f, indent=1)
    what = a.objective if a.objective == "rm" else f"dpo/{a.loss} beta={a.beta:g}"
    print(f"ref_preference: {what} loss {loss:.12g} -> {a.out}")


if __name__ == "__main__":
    main()
