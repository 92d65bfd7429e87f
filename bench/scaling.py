#!/usr/bin/env python3
"""Scaling benchmark: `xwin sft` on the medium config (vocab 8192, d_model 512, 8 layers,
8 heads, ffn 1536, seq 512, batch 4) on 1 rank and on 2 ranks as data parallelism and as tensor
parallelism (and pipeline parallelism, for the record), one thread per rank. Per step it reads
metrics.jsonl: wall time and the seconds rank 0 spent in communication (collectives and
point-to-point waits, so pipeline bubbles count as communication); compute is the rest.
A layout may carry a variant: `2-1-1:nooverlap` sums the data-parallel gradients in one blocking
call after the backward pass (--train.overlap_reduce false) instead of per-layer buckets started
during it, so the pair 2-1-1 / 2-1-1:nooverlap measures what the overlap hides; `2-1-1:zero1`
runs ZeRO-1 (--train.zero1 true: moments split, weights all-gathered after the update).

  scaling.py --xwin build/xwin [--work DIR] [--csv FILE] [--steps 4] [--threads 1]
             [--layouts 1-1-1,2-1-1,2-1-1:nooverlap,2-1-1:zero1,1-2-1,1-1-2]

Writes one CSV row per layout (the mean over the steps after the first) and prints a table.
Exit status 0 unless a run fails.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

MEDIUM = dict(vocab_size=8192, d_model=512, n_layers=8, n_heads=8, n_kv_heads=8, d_ff=1536,
              max_seq_len=512)
SEQ, BATCH, MICRO = 512, 4, 2


VARIANTS = {"": [], "nooverlap": ["--train.overlap_reduce", "false"],
            "zero1": ["--train.zero1", "true"]}


def run(a, spec, env):
    lay, _, variant = spec.partition(":")
    if variant not in VARIANTS:
        sys.exit(f"unknown layout variant {variant!r} in {spec!r} (known: nooverlap, zero1)")
    dp, tp, pp = (int(x) for x in lay.split("-"))
    out = os.path.join(a.work, f"run-{dp}-{tp}-{pp}" + (f"-{variant}" if variant else ""))
    cmd = [a.xwin, "sft", "--data", os.path.join(a.work, "data.h5"), "--out", out,
           "--resume", "none", "--train.steps", str(a.steps), "--train.batch_size", str(BATCH),
           "--train.micro_batch_size", str(MICRO), "--train.seq_len", str(SEQ),
           "--parallel.dp", str(dp), "--parallel.tp", str(tp), "--parallel.pp", str(pp)]
    cmd += VARIANTS[variant]
    for k, v in MEDIUM.items():
        cmd += [f"--model.{k}", str(v)]
    n = dp * tp * pp
    if n > 1:
        cmd = ["mpiexec", "-n", str(n), "--bind-to", "none"] + cmd
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    steps = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    steps = [s for s in steps if "loss" in s][1:]  # the first step warms caches and allocates
    sec = sum(s["seconds"] for s in steps) / len(steps)
    comm = sum(s["comm_seconds"] for s in steps) / len(steps)
    tokens = steps[0]["tokens"]
    return dict(layout=spec, ranks=n, dp=dp, tp=tp, pp=pp, threads=a.threads,
                step_s=round(sec, 4), tokens_per_s=round(tokens / sec, 1),
                compute_s=round(sec - comm, 4), comm_s=round(comm, 4),
                comm_share=round(comm / sec, 4))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--xwin", required=True)
    p.add_argument("--work", default="scaling_work")
    p.add_argument("--csv", default="scaling.csv")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--layouts", default="1-1-1,2-1-1,2-1-1:nooverlap,2-1-1:zero1,1-2-1,1-1-2")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    # Records of 2 * 254 + 3 = 511 tokens (BOS, string, SEP, reversed, EOS): every sequence of
    # the batch is (nearly) the full seq_len, so a step is the medium config's real work.
    subprocess.run([a.xwin, "data", "synth", "--out", os.path.join(a.work, "data.h5"),
                    "--records", "256", "--min_len", str(SEQ // 2 - 2), "--max_len",
                    str(SEQ // 2 - 2)], check=True, env=env, stdout=subprocess.DEVNULL)
    rows = []
    for lay in a.layouts.split(","):
        rows.append(run(a, lay, env))
        r = rows[-1]
        print(f"{r['layout']:>15} ({r['ranks']} rank{'s' if r['ranks'] > 1 else ''}): "
              f"{r['tokens_per_s']:8.1f} tok/s  step {r['step_s']:.3f}s  compute "
              f"{r['compute_s']:.3f}s  comm {r['comm_s']:.3f}s ({100 * r['comm_share']:.1f}%)",
              flush=True)
    with open(a.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {a.csv}")


if __name__ == "__main__":
    sys.exit(main())
