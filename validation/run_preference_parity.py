"""Parity of xwin's reward-model and DPO gradients against the float64 PyTorch reference.

usage: run_preference_parity.py --xwin PATH --workdir DIR --objective rm|dpo [--tol 1e-5]
                                [--configs A,B]

For each config (A: GQA, untied LM head; B: tied embeddings) and each weight variant ("init":
xwin's own init; "perturbed": run_parity.perturb, i.e. O(1) norms, biases (the value head's
bias included), embeddings and attention scores), `xwin init` makes a checkpoint (with a value
head for rm), a random pairs file is written with h5py, and
  rm:  `xwin dump --objective rm` vs ref_preference.py --objective rm
  dpo: `xwin dump --objective dpo --beta B --loss L` vs ref_preference.py, L in sigmoid, ipo,
       hinge (each with its own beta)
are compared tensor by tensor (loss and every parameter gradient) with compare.py.

The pairs (fixed seed) have prompts of 0 .. T tokens and responses of 1 .. T+3 tokens, so
some rows are shorter than T (padding; reward / response not at the row end), one is exactly
T, several are longer than T (the row keeps its last T tokens: prompt cut, or, for a response
>= T, the response cut and position 0 not predicted), and one prompt is empty. rm pairs
carry a /margin. dpo pairs carry /ref_logp_chosen and /ref_logp_rejected chosen from the
reference policy's own log-prob sums so that B * h is spread over [-3, 3] away from the hinge
kink at 1 (|B h - 1| >= 0.25): every loss sees pairs on both sides of 0 and both active and
inactive hinge pairs, and no pair sits where the hinge derivative is undefined.

Relative error per tensor = max|xwin - ref| / max|ref|; fails above --tol. One exception, for
rm: the value-head bias gradient is identically zero (the loss sees rewards only through
r_chosen - r_rejected, so the bias cancels) and its reference value is float64 rounding alone
(~1e-17), so it must instead satisfy max(|xwin|, |ref|) <= tol * sum_rows |dL/dreward| (see
STRUCTURAL_ZERO). Exits 1 on any failure.
"""

import argparse
import json
import os
import shutil
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
import reference as ref  # noqa: E402
import ref_preference as refp  # noqa: E402
from run_parity import CommandFailed, flag_value, run  # noqa: E402
import run_parity  # noqa: E402

# Gradients that are identically zero by the structure of the loss, compared on the scale of
# the terms that cancel in them rather than on their own (rounding-only) size: rm's loss sees
# the rewards only through r_chosen - r_rejected, so the value-head bias gradient is
# sum_pairs (dL/dr_c + dL/dr_r) = 0; the reference's autograd leaves ~1e-17 of float64 rounding
# there, against which a relative error is meaningless. Check: |xwin| and |ref| <= tol * S,
# S = sum over rows of |dL/dreward| (ref_preference.py's OUT.json).
STRUCTURAL_ZERO = {"rm": ("grads/value_head.bias", "dL_dr_abs_sum")}


CONFIGS = {
    "A": dict(model=dict(vocab_size=97, d_model=48, n_layers=2, n_heads=4, n_kv_heads=2,
                         d_ff=128, max_seq_len=64, norm_eps=1e-5, rope_theta=10000.0,
                         tie_embeddings=False), T=23, pairs=6, seed=21),
    "B": dict(model=dict(vocab_size=128, d_model=64, n_layers=2, n_heads=4, n_kv_heads=4,
                         d_ff=160, max_seq_len=64, norm_eps=1e-6, rope_theta=500000.0,
                         tie_embeddings=True), T=32, pairs=5, seed=22),
}

VARIANTS = [("init", False), ("perturbed", True)]

DPO_LOSSES = [("sigmoid", 0.1), ("ipo", 0.3), ("hinge", 0.2)]

# beta * h per pair for the dpo files (cycled): both signs, hinge active (< 1) and inactive (> 1),
# none within 0.25 of the hinge kink.
DPO_BETA_H = [-2.5, 0.6, 1.8, -0.4, 3.0, 0.2, 1.3, -1.2]


def make_pairs(n, V, T, seed):
    """n random (prompt, chosen, rejected) triples of int32 token arrays with the length cases
    of the module docstring."""
    rng = np.random.default_rng(seed)
    triples = []
    for i in range(n):
        P = int(rng.integers(0, T + 1))
        Lc, Lr = (int(x) for x in rng.integers(1, T + 4, size=2))
        triples.append([P, Lc, Lr])
    # Forced cases: an empty prompt (its response starts at position 0), a row of exactly T,
    # a response longer than T, short rows (padding), a long prompt cut from the front.
    triples[0] = [0, T // 3, T // 2]
    triples[1] = [T // 2, T - T // 2, T + 3]
    triples[2] = [3, 2, 5]
    if n > 3:
        triples[3] = [T - 2, 6, 1]
    rows = []
    for P, Lc, Lr in triples:
        rows.append(tuple(rng.integers(0, V, size=L).astype(np.int32) for L in (P, Lc, Lr)))
    return rows


def write_pairs(path, pairs, extra):
    """A pairs dataset (schema xwin.pairs, version 1) plus float32 1-D datasets `extra`."""
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "xwin.pairs"  # h5py: variable-length UTF-8 string
        f.attrs["version"] = np.int64(1)
        for k, group in enumerate(("prompt", "chosen", "rejected")):
            recs = [p[k] for p in pairs]
            offsets = np.concatenate([[0], np.cumsum([len(r) for r in recs])]).astype(np.int64)
            tokens = np.concatenate(recs).astype(np.int32) if offsets[-1] else np.zeros(0, np.int32)
            f.create_dataset(group + "/tokens", data=tokens)
            f.create_dataset(group + "/offsets", data=offsets)
        for name, v in extra.items():
            f.create_dataset(name, data=np.asarray(v, dtype=np.float32))


def check_pairs(path, pairs):
    d = refp.load_pairs(path)
    for k, group in enumerate(("prompt", "chosen", "rejected")):
        got = d[group]
        if len(got) != len(pairs) or not all(np.array_equal(a, p[k]) for a, p in zip(got, pairs)):
            raise CommandFailed(f"{path}: /{group} does not hold the generated records")
    return d


def describe(pairs, T):
    rows = [len(p[0]) + len(p[k]) for p in pairs for k in (1, 2)]
    return (f"{len(pairs)} pairs, T={T}, row lengths {rows} "
            f"({sum(r > T for r in rows)} > T, {sum(r < T for r in rows)} < T)")


def prepare(xwin, name, cfg, objective, perturbed, work, log):
    d = os.path.join(work, f"{objective}-{name}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    ckpt = os.path.join(d, "ckpt")
    model = dict(cfg["model"], value_head=(objective == "rm"))
    init = [xwin, "init"]
    for k, v in model.items():
        init += [f"--model.{k}", flag_value(v)]
    run(init + ["--seed", cfg["seed"], "--out", ckpt], log)
    if perturbed:
        run_parity.perturb(ckpt, cfg["seed"] + 200)
    pairs = make_pairs(cfg["pairs"], model["vocab_size"], cfg["T"], cfg["seed"] + 100)
    return d, ckpt, pairs


def dump_and_compare(xwin, d, ckpt, data, T, objective, tag, xflags, rflags, tol, log):
    out, refout = os.path.join(d, f"xwin_{tag}.h5"), os.path.join(d, f"ref_{tag}.h5")
    run([xwin, "dump", "--ckpt", ckpt, "--data", data, "--seq_len", T, "--out", out] + xflags, log)
    p = run([sys.executable, os.path.join(HERE, "ref_preference.py"), ckpt, data, T, refout]
            + rflags, log)
    print("".join("    " + line + "\n" for line in p.stdout.splitlines()), end="")
    cand, refd = compare.h5_datasets(out), compare.h5_datasets(refout)
    failures = []
    zero = STRUCTURAL_ZERO.get(objective)
    if zero and zero[0] in refd:
        name, key = zero
        with open(refout + ".json") as f:
            scale = float(json.load(f)[key])
        b = np.asarray(refd.pop(name), dtype=np.float64)
        a = np.asarray(cand.pop(name, np.full(b.shape, np.nan)), dtype=np.float64)
        worst = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
        ok = a.shape == b.shape and np.all(np.isfinite(a)) and worst <= tol * scale
        print(f"{name}: identically zero for this loss; max(|xwin|, |ref|) = {worst:.3e} "
              f"vs tol * {key} = {tol * scale:.3e} (|xwin| {float(np.max(np.abs(a))):.3e}, "
              f"|ref| {float(np.max(np.abs(b))):.3e})  {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"{name}: max(|xwin|, |ref|) = {worst:.3e} > tol * {key} = "
                            f"{tol * scale:.3e} (it must vanish)")
    f2, w2 = compare.compare(cand, refd, tol)
    return failures + f2, w2


def parity_rm(xwin, name, cfg, perturbed, work, tol, log):
    d, ckpt, pairs = prepare(xwin, name, cfg, "rm", perturbed, work, log)
    rng = np.random.default_rng(cfg["seed"] + 300)
    margin = rng.uniform(-0.5, 1.0, size=len(pairs))
    data = os.path.join(d, "pairs.h5")
    write_pairs(data, pairs, {"margin": margin})
    check_pairs(data, pairs)
    print(f"[rm {name}] xwin dump --objective rm vs ref_preference: {describe(pairs, cfg['T'])}, "
          f"margins {np.round(margin, 3).tolist()}")
    return dump_and_compare(xwin, d, ckpt, data, cfg["T"], "rm", "rm", ["--objective", "rm"],
                            ["--objective", "rm"], tol, log)


def parity_dpo(xwin, name, cfg, perturbed, work, tol, log):
    d, ckpt, pairs = prepare(xwin, name, cfg, "dpo", perturbed, work, log)
    T = cfg["T"]
    # The policy's own log-prob sums (reference, float64) place h where DPO_BETA_H says.
    rcfg, params = ref.load_checkpoint(ckpt, requires_grad=False)
    plain = os.path.join(d, "pairs_plain.h5")
    write_pairs(plain, pairs, {})
    dd = check_pairs(plain, pairs)
    rows = refp.pair_rows(dd)
    tokens, lengths = refp.build_rows(rows, T)
    s = refp.logp_sums(rcfg, params, tokens, lengths, [m for _, m in rows]).numpy()
    pc, pr = s[0::2], s[1::2]
    rng = np.random.default_rng(cfg["seed"] + 300)
    failures, worst = [], 0.0
    for kind, beta in DPO_LOSSES:
        bh = np.array([DPO_BETA_H[i % len(DPO_BETA_H)] for i in range(len(pairs))])
        a = rng.normal(0.0, 2.0, size=len(pairs))
        # h = (pc - ref_c) - (pr - ref_r) = bh / beta with ref_c = pc + a, ref_r = pr + a + h.
        ref_c = (pc + a).astype(np.float32)
        ref_r = (pr + a + bh / beta).astype(np.float32)
        got = beta * ((pc - ref_c.astype(np.float64)) - (pr - ref_r.astype(np.float64)))
        if kind == "hinge" and (np.min(np.abs(got - 1.0)) < 0.2 or not (
                np.any(got < 1.0) and np.any(got > 1.0))):
            raise CommandFailed(f"dpo hinge data: beta*h = {got} is too near the kink")
        data = os.path.join(d, f"pairs_{kind}.h5")
        write_pairs(data, pairs, {"ref_logp_chosen": ref_c, "ref_logp_rejected": ref_r})
        check_pairs(data, pairs)
        print(f"[dpo {name}] xwin dump --objective dpo --loss {kind} --beta {beta:g} vs "
              f"ref_preference: {describe(pairs, T)}; beta*h {np.round(got, 3).tolist()}")
        flags = ["--objective", "dpo", "--beta", flag_value(beta), "--loss", kind]
        f1, w1 = dump_and_compare(xwin, d, ckpt, data, T, "dpo", kind, flags, flags, tol, log)
        failures += [f"{kind}: {f}" for f in f1]
        worst = max(worst, w1)
    return failures, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xwin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--objective", choices=["rm", "dpo"], required=True)
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    a = ap.parse_args()
    if not os.access(a.xwin, os.X_OK):
        print(f"run_preference_parity: xwin binary {a.xwin} not found or not executable; "
              "build it first")
        return 1
    import torch

    torch.set_num_threads(1)
    os.makedirs(a.workdir, exist_ok=True)
    fn = parity_rm if a.objective == "rm" else parity_dpo
    summary, failed = [], False
    with open(os.path.join(a.workdir, "commands.log"), "w") as log:
        for config in a.configs.split(","):
            for variant, perturbed in VARIANTS:
                name = f"{config}-{variant}"
                try:
                    failures, worst = fn(a.xwin, name, CONFIGS[config], perturbed, a.workdir,
                                         a.tol, log)
                    status = "PASS" if not failures else "FAIL"
                    detail = f"worst rel err {worst:.3e}" + "".join("\n      " + f for f in failures)
                except CommandFailed as e:
                    failures, status, detail = [str(e)], "ERROR", str(e)
                except Exception as e:  # reference could not read xwin's output, etc.
                    failures, status, detail = [repr(e)], "ERROR", f"{type(e).__name__}: {e}"
                failed |= bool(failures)
                summary.append(f"  config {name:<14} ({a.objective}): {status}  {detail}")
                print(summary[-1], flush=True)
    print(f"\nrun_preference_parity --objective {a.objective} (tol {a.tol:g}; commands in "
          f"{a.workdir}/commands.log):")
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
