"""Compare a candidate (xwin) output against the reference.

usage: compare.py CANDIDATE REFERENCE [--tol 1e-5]            (HDF5 files)
       compare.py --metrics CANDIDATE.jsonl REFERENCE.jsonl    (metrics.jsonl)

HDF5 mode: every dataset in REFERENCE must exist in CANDIDATE with the same shape;
per tensor rel err = max|a - b| / max(max|b|, 1e-30) (b = reference). A checkpoint
directory may stand for an HDF5 file (its single shard is used). Datasets only in the
candidate are ignored. Metrics mode compares the per-step series loss, grad_norm and lr
the same way (each series is one tensor). Exits 1 if any rel err > tol or anything is
missing or mis-shaped.
"""

import argparse
import json
import os
import sys

import h5py
import numpy as np


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
    if not np.all(np.isfinite(a)):
        return float("inf"), float("inf")
    return diff, diff / scale


def where(a, b, tol):
    """Describes a failure: how many elements exceed tol * max|b|, and the worst one."""
    a = np.asarray(a, dtype=np.float64).reshape(np.shape(b))
    b = np.asarray(b, dtype=np.float64)
    d = np.array(np.abs(a - b), dtype=np.float64)
    d[~np.isfinite(d)] = np.inf
    n_bad = int(np.sum(d > tol * max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)))
    i = np.unravel_index(int(np.argmax(d)), b.shape) if b.size else ()
    return (f"{n_bad} of {b.size} elements off; worst at {tuple(int(x) for x in i)}: "
            f"candidate {a[i]:.9g}, reference {b[i]:.9g}")


def resolve_h5(path):
    if os.path.isdir(path):
        with open(os.path.join(path, "index.json")) as f:
            shards = json.load(f)["shards"]
        if len(shards) != 1:
            raise SystemExit(f"compare: {path} has {len(shards)} shards; expected one")
        s = shards[0]
        return os.path.join(path, s["file"] if isinstance(s, dict) else s)
    return path


def h5_datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def load_metrics(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows


def metrics_tensors(cand_path, ref_path):
    """Returns ({name: array}, {name: array}, problems) for the metric series."""
    a, b = load_metrics(cand_path), load_metrics(ref_path)
    problems = []
    if [r["step"] for r in a] != [r["step"] for r in b]:
        problems.append(f"steps differ: candidate {[r['step'] for r in a]}, "
                        f"reference {[r['step'] for r in b]}")
        return {}, {}, problems
    keys = ["loss", "grad_norm", "lr"]
    cand = {k: np.array([r.get(k, np.nan) for r in a]) for k in keys if all(k in r for r in a)}
    refd = {k: np.array([r[k] for r in b]) for k in keys}
    return cand, refd, problems


def compare(cand, refd, tol, label=""):
    """Prints a table; returns (list of failures, worst rel err)."""
    failures, worst = [], 0.0
    width = max([len(n) for n in refd] + [20])
    print(f"{'tensor':<{width}}  {'shape':<16} {'max abs diff':>13} {'rel err':>11}  {label}")
    for name in sorted(refd):
        b = np.asarray(refd[name])
        if name not in cand:
            print(f"{name:<{width}}  {str(b.shape):<16} {'MISSING':>13}")
            failures.append(f"{name}: missing in candidate")
            continue
        a = np.asarray(cand[name])
        if a.shape != b.shape:
            print(f"{name:<{width}}  {str(b.shape):<16} {'SHAPE':>13}  candidate {a.shape}")
            failures.append(f"{name}: shape {a.shape}, reference {b.shape}")
            continue
        diff, rel = rel_err(a, b)
        worst = max(worst, rel)
        bad = not rel <= tol
        print(f"{name:<{width}}  {str(b.shape):<16} {diff:13.4e} {rel:11.3e}  {'FAIL' if bad else 'ok'}")
        if bad:
            failures.append(f"{name}: rel err {rel:.3e} > tol {tol:g} ({where(a, b, tol)})")
    return failures, worst


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidate")
    ap.add_argument("reference")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--metrics", action="store_true", help="compare metrics.jsonl files")
    a = ap.parse_args(argv)
    if a.metrics:
        cand, refd, failures = metrics_tensors(a.candidate, a.reference)
    else:
        cand = h5_datasets(resolve_h5(a.candidate))
        refd, failures = h5_datasets(resolve_h5(a.reference)), []
    print(f"compare: candidate {a.candidate}\n         reference {a.reference}  (tol {a.tol:g})")
    failures += compare(cand, refd, a.tol)[0]
    if failures:
        print(f"compare: FAILED ({len(failures)}):")
        for f in failures:
            print("  " + f)
        return 1
    print(f"compare: all {len(refd)} tensors within tol {a.tol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
