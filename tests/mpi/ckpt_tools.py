"""Reads xwin checkpoints and run directories without xwin (h5py + numpy): a sharded checkpoint
is assembled into whole tensors from each dataset's logical_shape and slice_start."""
import json
import os

import h5py
import numpy as np


def load(ckpt_dir, groups=("params", "optim/m", "optim/v")):
    """{"params/NAME": array, ...} of whole (logical) tensors, whatever the layout."""
    index = json.load(open(os.path.join(ckpt_dir, "index.json")))
    out = {}
    for shard in index["shards"]:
        with h5py.File(os.path.join(ckpt_dir, shard["file"]), "r") as f:
            for group in groups:
                if group not in f:
                    continue
                for name, ds in f[group].items():
                    key = f"{group}/{name}"
                    logical = tuple(ds.attrs["logical_shape"])
                    start = tuple(ds.attrs["slice_start"])
                    if key not in out:
                        out[key] = np.full(logical, np.nan, dtype=np.float32)
                    box = tuple(slice(s, s + n) for s, n in zip(start, ds.shape))
                    out[key][box] = ds[...]
    for key, a in out.items():
        assert not np.isnan(a).any(), f"{ckpt_dir}: {key} is not fully covered by the shards"
    return out


def losses(run_dir):
    """{step: loss} from a run directory's metrics.jsonl."""
    out = {}
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        j = json.loads(line)
        if "loss" in j:
            out[j["step"]] = j["loss"]
    return out


def rel(a, b):
    """||a - b|| / ||b|| (Frobenius, in double)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def compare_runs(got_dir, want_dir, steps, tol, weights=True, wtol=None):
    """Messages for every loss (steps) beyond tol and every final tensor beyond wtol (tol when
    None) of want_dir."""
    wtol = tol if wtol is None else wtol
    bad = []
    got, want = losses(got_dir), losses(want_dir)
    worst = 0.0
    for s in steps:
        if s not in got:
            bad.append(f"{got_dir}: no loss for step {s}")
            continue
        r = abs(got[s] - want[s]) / abs(want[s])
        worst = max(worst, r)
        if r > tol:
            bad.append(f"{got_dir}: step {s} loss {got[s]!r} vs {want[s]!r} (rel {r:.2e})")
    wworst = 0.0
    if weights:
        a = load(os.path.join(got_dir, "final"))
        b = load(os.path.join(want_dir, "final"))
        if sorted(a) != sorted(b):
            bad.append(f"{got_dir}: tensors differ: {sorted(set(a) ^ set(b))}")
        for key in sorted(set(a) & set(b)):
            r = rel(a[key], b[key])
            wworst = max(wworst, r)
            if r > wtol:
                bad.append(f"{got_dir}: final {key} differs (rel {r:.2e} > {wtol})")
    print(f"{got_dir}: worst loss rel {worst:.2e}, worst tensor rel {wworst:.2e}")
    return bad


def compare_arrays(label, got, want, exact, close, tol):
    """Messages for the arrays of got (a dict) that differ from want: keys in exact must be
    equal, keys in close within tol as max |a - b| / max(|b|, 1). Prints each close key's
    worst difference."""
    bad = []
    for k in exact:
        if got[k].shape != want[k].shape or not np.array_equal(got[k], want[k]):
            bad.append(f"{label}: /{k} differs")
    for k in close:
        a, b = np.asarray(got[k], np.float64), np.asarray(want[k], np.float64)
        if a.shape != b.shape:
            bad.append(f"{label}: /{k} shape {a.shape} vs {b.shape}")
            continue
        r = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0))) if a.size else 0.0
        print(f"{label}: /{k} max rel diff {r:.2e} over {a.size} values")
        if r > tol:
            bad.append(f"{label}: /{k} differs (rel {r:.2e} > {tol})")
    return bad
