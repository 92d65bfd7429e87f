"""Parity of xwin against the float64 PyTorch reference, on random weights.

usage: run_parity.py --xwin PATH --workdir DIR --mode grads|train [--tol 1e-5] [--configs A,B,C]

For each config: `xwin init` (random weights), random token JSONL (fixed seed; varied
lengths, some shorter and some longer than T; loss_mask 0 on a random prompt prefix, 1
after), `xwin data tokens` (checked against the JSONL), then
  grads: `xwin dump` vs ref_dump.py: logits, loss, every gradient, value (value head only);
  train: `xwin sft` 10 steps (B=4, MB=2, 7 records so order and wrap-around matter) vs
         ref_train.py: the per-step loss / grad_norm / lr series and every final weight.
Each config runs on xwin's own init ("init": std-0.02 matrices, unit norms, zero bias) and on
"perturbed" weights (the init checkpoint rewritten with O(1) norms, biases and attention
scores, so a bug hidden by near-uniform attention or unit norm weights shows).

Training runs use AdamW eps = 1e-4 when final weights are compared. With eps = 1e-8 the final
weights are ill-conditioned in fp32: an element whose gradient stays ~1e-7 gets an Adam update
g / (sqrt(v) + eps) that depends at O(1) on fp32 rounding of g; torch's own fp32 AdamW misses
the fp64 run by up to 6e-5 (rel) on such single elements of config C. eps = 1e-4 bounds that
sensitivity while still far below typical |g|. The eps = 1e-8 run is kept for the loss /
grad_norm / lr series, which are well-conditioned.

Relative error per tensor = max|xwin - ref| / max|ref|; fails above --tol. Exits 1 on any
failure, printing the failing command and its stderr when xwin itself fails.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
import reference as ref  # noqa: E402

CONFIGS = {
    "A": dict(model=dict(vocab_size=97, d_model=48, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_ff=128, max_seq_len=64, norm_eps=1e-5, rope_theta=10000.0,
                         tie_embeddings=False, value_head=False), T=23, B=3, seed=11),
    "B": dict(model=dict(vocab_size=128, d_model=64, n_layers=2, n_heads=4, n_kv_heads=4,
                         d_ff=160, max_seq_len=64, norm_eps=1e-5, rope_theta=10000.0,
                         tie_embeddings=True, value_head=False), T=32, B=2, seed=12),
    "C": dict(model=dict(vocab_size=200, d_model=64, n_layers=3, n_heads=8, n_kv_heads=1,
                         d_ff=96, max_seq_len=64, norm_eps=1e-6, rope_theta=500000.0,
                         tie_embeddings=False, value_head=True), T=37, B=2, seed=13),
}

TRAIN = {"train.shuffle": "false", "train.steps": 10, "train.batch_size": 4,
         "train.micro_batch_size": 2, "train.lr": 1e-3, "train.min_lr": 1e-4,
         "train.warmup_steps": 3, "train.weight_decay": 0.1, "train.beta1": 0.9,
         "train.beta2": 0.95, "train.grad_clip": 1.0}  # train.eps: per variant
TRAIN_RECORDS = 7  # > batch_size and not a multiple of it: data order and wrap-around matter

# (name, perturbed weights, AdamW eps or None, compare final weights)
VARIANTS = {
    "grads": [("init", False, None, True), ("perturbed", True, None, True)],
    "train": [("init", False, 1e-4, True), ("perturbed", True, 1e-4, True),
              ("init-eps1e-8", False, 1e-8, False)],
}


class CommandFailed(Exception):
    pass


def flag_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def run(cmd, log):
    """Runs cmd; raises CommandFailed with the command and its stderr on failure."""
    cmd = [str(c) for c in cmd]
    log.write("$ " + " ".join(cmd) + "\n")
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CommandFailed(f"command: {' '.join(cmd)}\n{e}")
    log.write(p.stdout + p.stderr + f"(rc {p.returncode}, {time.time() - t0:.1f}s)\n")
    if p.returncode != 0:
        raise CommandFailed(f"command failed (rc {p.returncode}): {' '.join(cmd)}\n"
                            f"--- stderr ---\n{p.stderr[-4000:]}\n--- stdout (tail) ---\n"
                            f"{p.stdout[-2000:]}")
    return p


def make_records(n, V, T, seed):
    """n random records; lengths from T/3 to T+8 (at least one short and one long)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(3, T // 3), T + 9, size=n)
    lengths[0], lengths[-1] = max(3, T // 2), T + 5
    records = []
    for L in lengths:
        tokens = rng.integers(0, V, size=L)
        prompt = int(rng.integers(1, min(L, T) - 1))  # leaves counted positions below T
        mask = (np.arange(L) >= prompt).astype(np.int64)
        records.append((tokens, mask))
    return records


def write_jsonl(path, records):
    with open(path, "w") as f:
        for t, m in records:
            f.write(json.dumps({"tokens": t.tolist(), "loss_mask": m.tolist()}) + "\n")


def perturb(ckpt, seed):
    """Rewrites the shard's parameters in place: embeddings std 1, matrices std 0.15,
    norm weights 1 + 0.2 N(0,1), biases 0.1 N(0,1) (same dtype and shapes)."""
    rng = np.random.default_rng(seed)
    with h5py.File(ref.shard_path(ckpt), "r+") as f:
        for name in sorted(f["params"]):
            ds = f["params"][name]
            if name.endswith("norm.weight"):
                new = 1.0 + 0.2 * rng.standard_normal(ds.shape)
            elif name.endswith(".bias"):
                new = 0.1 * rng.standard_normal(ds.shape)
            elif name == "model.embed_tokens.weight":
                new = rng.standard_normal(ds.shape)
            else:
                new = 0.15 * rng.standard_normal(ds.shape)
            ds[...] = new.astype(ds.dtype)
            if "crc32" in ds.attrs:  # keep xwin's per-dataset checksum valid (zlib CRC-32)
                ds.attrs["crc32"] = np.int64(zlib.crc32(np.ascontiguousarray(ds[...], "<f4").tobytes()))


def prepare(xwin, name, cfg, work, n_records, perturbed, log):
    """xwin init (+ perturbation) + data; returns (case dir, ckpt dir, data .h5)."""
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ckpt, jsonl, data = (os.path.join(d, x) for x in ("ckpt", "data.jsonl", "data.h5"))
    init = [xwin, "init"]
    for k, v in cfg["model"].items():
        init += [f"--model.{k}", flag_value(v)]
    run(init + ["--seed", cfg["seed"], "--out", ckpt], log)
    if perturbed:
        perturb(ckpt, cfg["seed"] + 200)
    records = make_records(n_records, cfg["model"]["vocab_size"], cfg["T"], cfg["seed"] + 100)
    write_jsonl(jsonl, records)
    run([xwin, "data", "tokens", "--in", jsonl, "--out", data], log)
    got = ref.load_tokens(data)
    same = len(got) == len(records) and all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(got, records))
    if not same:
        raise CommandFailed(f"`xwin data tokens` output {data} does not hold the records of {jsonl}")
    return d, ckpt, data


def parity_grads(xwin, name, cfg, variant, work, tol, log):
    d, ckpt, data = prepare(xwin, name, cfg, work, cfg["B"], variant[1], log)
    out, refout = os.path.join(d, "xwin_dump.h5"), os.path.join(d, "ref_dump.h5")
    T = cfg["T"]
    run([xwin, "dump", "--ckpt", ckpt, "--data", data, "--seq_len", T, "--out", out], log)
    run([sys.executable, os.path.join(HERE, "ref_dump.py"), ckpt, data, T, refout], log)
    print(f"[{name}] grads: xwin dump vs ref_dump (B={cfg['B']}, T={T}): logits, loss, "
          f"all gradients{', value' if cfg['model']['value_head'] else ''}")
    return compare.compare(compare.h5_datasets(out), compare.h5_datasets(refout), tol)


def parity_train(xwin, name, cfg, variant, work, tol, log):
    _, perturbed, eps, check_weights = variant
    d, ckpt, data = prepare(xwin, name, cfg, work, TRAIN_RECORDS, perturbed, log)
    xout, rout = os.path.join(d, "xwin_sft"), os.path.join(d, "ref_sft")
    shutil.rmtree(xout, ignore_errors=True)
    flags = []
    for k, v in dict(TRAIN, **{"train.seq_len": cfg["T"], "train.eps": eps}).items():
        flags += [f"--{k}", flag_value(v)]
    run([xwin, "sft", "--init", ckpt, "--data", data, "--out", xout] + flags, log)
    run([sys.executable, os.path.join(HERE, "ref_train.py"), ckpt, data, rout] + flags, log)
    print(f"[{name}] train: xwin sft vs ref_train ({TRAIN['train.steps']} steps, "
          f"B={TRAIN['train.batch_size']}, MB={TRAIN['train.micro_batch_size']}, "
          f"{TRAIN_RECORDS} records, T={cfg['T']}, eps={eps:g}): loss/grad_norm/lr per step")
    cand, refd, failures = compare.metrics_tensors(os.path.join(xout, "metrics.jsonl"),
                                                   os.path.join(rout, "metrics.jsonl"))
    f1, w1 = compare.compare(cand, refd, tol)
    if not check_weights:
        return failures + f1, w1
    print(f"[{name}] train: final weights {xout}/final vs ref_sft/final.h5")
    final = compare.resolve_h5(os.path.join(xout, "final"))
    xw = {k: v for k, v in compare.h5_datasets(final).items() if k.startswith("params/")}
    f2, w2 = compare.compare(xw, compare.h5_datasets(os.path.join(rout, "final.h5")), tol)
    return failures + f1 + f2, max(w1, w2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xwin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--mode", choices=["grads", "train"], required=True)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    a = ap.parse_args()
    if not os.access(a.xwin, os.X_OK):
        print(f"run_parity: xwin binary {a.xwin} not found or not executable; build it first")
        return 1
    import torch

    torch.set_num_threads(1)
    os.makedirs(a.workdir, exist_ok=True)
    fn = parity_grads if a.mode == "grads" else parity_train
    summary, failed = [], False
    cases = [(c, v) for c in a.configs.split(",") for v in VARIANTS[a.mode]]
    with open(os.path.join(a.workdir, "commands.log"), "w") as log:
        for config, variant in cases:
            name = f"{config}-{variant[0]}"
            try:
                failures, worst = fn(a.xwin, name, CONFIGS[config], variant, a.workdir, a.tol, log)
                status = "PASS" if not failures else "FAIL"
                detail = f"worst rel err {worst:.3e}" + "".join("\n      " + f for f in failures)
            except CommandFailed as e:
                failures, status, detail = [str(e)], "ERROR", str(e)
            except Exception as e:  # reference could not read xwin's output, etc.
                failures, status, detail = [repr(e)], "ERROR", f"{type(e).__name__}: {e}"
            failed |= bool(failures)
            summary.append(f"  config {name:<16} ({a.mode}): {status}  {detail}")
            print(summary[-1], flush=True)
    print(f"\nrun_parity --mode {a.mode} (tol {a.tol:g}; commands in {a.workdir}/commands.log):")
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
