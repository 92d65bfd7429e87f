#!/usr/bin/env python3
"""Training-step benchmark: xwin (bench/xwin_bench) against the PyTorch reference
(bench/torch_step.py) on the same config and thread count, in the same run.

  run_bench.py [--configs tiny,small,medium] [--threads 1,2] [--xwin-bench PATH]
               [--steps 5] [--warmup 2] [--torch-variants passive,passive_ompblas,active_ompblas]
               [--xwin-variants default] [--repeat 1] [--phases]
               [--json-out FILE]

For each config and thread count it runs both as subprocesses (OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS set to the thread count) and prints a table: tokens/s of each, the ratio,
xwin's achieved GFLOP/s, the sgemm GFLOP/s measured inside the xwin run, and xwin's share of it.
PyTorch gets its best settings: every variant in --torch-variants (OpenMP wait policy, and
which OpenBLAS build torch loads) is run and the fastest kept; AdamW foreach vs for-loop is
chosen inside torch_step.py. At 2 threads the goals of the issue are reported MET / NOT MET.
Exit status: 0 whatever the numbers (this is a measurement); non-zero only if a run crashed.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIGS = {
    "tiny": dict(vocab=512, d_model=128, layers=4, heads=4, ffn=384, seq=128, batch=16),
    "small": dict(vocab=4096, d_model=256, layers=6, heads=8, ffn=768, seq=256, batch=8),
    "medium": dict(vocab=8192, d_model=512, layers=8, heads=8, ffn=1536, seq=512, batch=4),
}
# Goals at 2 threads: xwin / torch tokens/s, and (medium) xwin GFLOP/s / sgemm GFLOP/s.
RATIO_GOALS = {"tiny": 2.0, "small": 1.5, "medium": 1.2}
SGEMM_SHARE_GOAL = {"medium": 0.70}

OPENBLAS_OPENMP_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
# name -> environment for torch_step.py. torch (Debian) links libblas.so.3 / libopenblas.so.0,
# by default the pthread OpenBLAS; the *_ompblas variants load the OpenMP build xwin links.
TORCH_VARIANTS = {
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "default": {},
    "passive_ompblas": {"OMP_WAIT_POLICY": "PASSIVE", "LD_LIBRARY_PATH": OPENBLAS_OPENMP_DIR},
    "active_ompblas": {"OMP_WAIT_POLICY": "ACTIVE", "LD_LIBRARY_PATH": OPENBLAS_OPENMP_DIR},
}
XWIN_VARIANTS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
}


class RunFailed(Exception):
    pass


def run_json(cmd, env, label):
    print(f"  $ {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RunFailed(f"{label} exited with {p.returncode}\n{p.stderr[-4000:]}")
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RunFailed(f"{label} printed no JSON line\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def thread_env(n, extra=None):
    env = dict(os.environ)
    for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(k, None)
    env["OMP_NUM_THREADS"] = str(n)
    env["OPENBLAS_NUM_THREADS"] = str(n)
    env.update(extra or {})
    return env


def cfg_flags(cfg):
    out = []
    for k, v in cfg.items():
        out += [f"--{k}", str(v)]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="tiny,small,medium")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--xwin-bench", default=os.path.join(HERE, "..", "build", "bench",
                                                         "xwin_bench"))
    ap.add_argument("--python", default=sys.executable, help="python with torch")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median is reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--torch-variants", default="passive,passive_ompblas,active_ompblas",
                    help="comma list of " + ",".join(TORCH_VARIANTS) + "; the fastest is kept "
                         "(at 1 thread the ACTIVE ones are skipped: the wait policy is moot)")
    ap.add_argument("--xwin-variants", default="default",
                    help="comma list of " + ",".join(XWIN_VARIANTS) + "; the fastest is kept "
                         "(default: xwin as shipped, OMP_WAIT_POLICY unset)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every variant this many times, alternating xwin and torch, and "
                         "keep the best median (interference on a shared machine only slows)")
    ap.add_argument("--phases", action="store_true", help="xwin per-phase breakdown")
    ap.add_argument("--json-out", help="write all raw results here")
    a = ap.parse_args()

    configs = [c for c in a.configs.split(",") if c]
    threads = [int(t) for t in a.threads.split(",") if t]
    torch_variants = [v for v in a.torch_variants.split(",") if v]
    xwin_variants = [v for v in a.xwin_variants.split(",") if v]
    for c in configs:
        if c not in CONFIGS:
            ap.error(f"unknown config {c} (have {', '.join(CONFIGS)})")
    for v in torch_variants:
        if v not in TORCH_VARIANTS:
            ap.error(f"unknown torch variant {v} (have {', '.join(TORCH_VARIANTS)})")
    for v in xwin_variants:
        if v not in XWIN_VARIANTS:
            ap.error(f"unknown xwin variant {v} (have {', '.join(XWIN_VARIANTS)})")
    if not os.path.exists(a.xwin_bench):
        ap.error(f"{a.xwin_bench} not found; build it: cmake --build build --target xwin_bench")

    rows, failed = [], []
    common = ["--steps", str(a.steps), "--warmup", str(a.warmup)]
    for c in configs:
        for n in threads:
            print(f"[{c}, {n} thread(s)]", file=sys.stderr, flush=True)
            row = {"config": c, "threads": n, "xwin_all": {}, "torch_all": {}}
            # With one thread the wait policy is moot: run only the passive variants.
            tv = [v for v in torch_variants if n > 1 or "active" not in v.replace("passive", "")]
            xv = [v for v in xwin_variants if n > 1 or "active" not in v.replace("passive", "")]
            try:
                for rep in range(a.repeat):
                    for v in xv:
                        cmd = [a.xwin_bench, "--config", c, "--threads", str(n)] + cfg_flags(
                            CONFIGS[c]) + common + (["--phases"] if a.phases and rep == 0 else [])
                        r = run_json(cmd, thread_env(n, XWIN_VARIANTS[v]), f"xwin[{v}]")
                        r["variant"] = v
                        row["xwin_all"].setdefault(v, []).append(r["step_s"])
                        if "xwin" not in row or r["step_s"] < row["xwin"]["step_s"]:
                            if "phases" in row.get("xwin", {}) and "phases" not in r:
                                r["phases"] = row["xwin"]["phases"]
                            row["xwin"] = r
                    for v in tv:
                        cmd = [a.python, os.path.join(HERE, "torch_step.py"), "--config", c,
                               "--threads", str(n)] + cfg_flags(CONFIGS[c]) + common
                        r = run_json(cmd, thread_env(n, TORCH_VARIANTS[v]), f"torch[{v}]")
                        r["variant"] = v
                        row["torch_all"].setdefault(v, []).append(r["step_s"])
                        if "torch" not in row or r["step_s"] < row["torch"]["step_s"]:
                            row["torch"] = r
            except RunFailed as e:
                print(f"FAILED {c} threads={n}: {e}", file=sys.stderr, flush=True)
                failed.append((c, n))
                continue
            x, t = row["xwin"], row["torch"]
            row["ratio"] = x["tokens_per_s"] / t["tokens_per_s"]
            row["sgemm_share"] = x["gflops"] / x["sgemm_gflops"]
            rows.append(row)
            print(f"  xwin {x['tokens_per_s']:.0f} tok/s ({x['step_s']:.3f} s/step, {x['variant']}), torch "
                  f"{t['tokens_per_s']:.0f} tok/s ({t['step_s']:.3f} s/step, {t['variant']}, "
                  f"foreach={t['foreach']}), ratio {row['ratio']:.2f}", file=sys.stderr,
                  flush=True)

    hdr = (f"{'config':<8} {'thr':>3} {'xwin tok/s':>11} {'torch tok/s':>12} {'xwin/torch':>10} "
           f"{'xwin GF/s':>10} {'torch GF/s':>11} {'sgemm GF/s':>11} {'xwin %sgemm':>12}  settings (xwin; torch)")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        x, t = r["xwin"], r["torch"]
        print(f"{r['config']:<8} {r['threads']:>3} {x['tokens_per_s']:>11.0f} "
              f"{t['tokens_per_s']:>12.0f} {r['ratio']:>10.2f} {x['gflops']:>10.1f} "
              f"{t['gflops']:>11.1f} {x['sgemm_gflops']:>11.1f} {100 * r['sgemm_share']:>11.1f}%"
              f"  {x['variant']}; {t['variant']}, foreach={t['foreach']}")

    print("\nGoals at 2 threads:")
    any_goal = False
    for r in rows:
        if r["threads"] != 2:
            continue
        c = r["config"]
        if c in RATIO_GOALS:
            any_goal = True
            g = RATIO_GOALS[c]
            ok = r["ratio"] >= g
            print(f"  {c:<7} xwin/torch {r['ratio']:.2f} >= {g:.1f}x: "
                  f"{'MET' if ok else 'NOT MET'}")
        if c in SGEMM_SHARE_GOAL:
            g = SGEMM_SHARE_GOAL[c]
            ok = r["sgemm_share"] >= g
            print(f"  {c:<7} xwin GFLOP/s {100 * r['sgemm_share']:.1f}% of sgemm >= "
                  f"{100 * g:.0f}%: {'MET' if ok else 'NOT MET'}")
    if not any_goal:
        print("  (no 2-thread rows run)")

    if a.phases:
        print("\nxwin phases (median s; sgemm_* and attention_* are replays of the step's "
              "calls on the same shapes):")
        for r in rows:
            ph = r["xwin"].get("phases")
            if ph:
                print(f"  {r['config']:<7} {r['threads']}t step {r['xwin']['step_s']:.3f}: " +
                      ", ".join(f"{k} {v:.3f}" for k, v in ph.items() if not isinstance(v, dict)))
                if isinstance(ph.get("kernels"), dict):
                    print("          other kernels: " +
                          ", ".join(f"{k} {v:.3f}" for k, v in ph["kernels"].items()))

    print("\nAll variants (median s/step of each repeat):")
    for r in rows:
        print(f"  {r['config']:<7} {r['threads']}t " + "; ".join(
            f"{impl}[{v}] " + " ".join(f"{x:.3f}" for x in ts)
            for impl in ("xwin", "torch") for v, ts in r[impl + "_all"].items()))

    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(rows, f, indent=1)
    if failed:
        print(f"\n{len(failed)} run(s) crashed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
