#!/usr/bin/env python3
"""Rows and reports of the Slurm studies (slurm/scaling.sbatch, slurm/ablation.sbatch).

  report.py row ROWFILE METRICS KEY=VALUE...
      One CSV row (with its header) for an array task: the KEY=VALUE columns, then what the
      run's metrics.jsonl says: timed steps (the first fifth, at least one, is warm-up),
      tokens/s, seconds per step, the share of it in communication, the final training loss
      and the last held-out evaluation (eval_* columns).
  report.py merge STUDY
      Merges STUDY/rows/*.csv (ordered by task) into STUDY/results.csv, a markdown table
      STUDY/results.md and a bar chart STUDY/results.png (gnuplot). Scaling studies get
      speedup and efficiency against the row with the fewest ranks.

Standard library only; gnuplot draws the PNG (without it the table is still written).
"""
import csv
import json
import os
import shutil
import subprocess
import sys


def row(rowfile, metrics, pairs):
    fields = dict(p.split("=", 1) for p in pairs)
    lines = [json.loads(line) for line in open(metrics) if line.strip()]
    steps = [j for j in lines if "loss" in j]
    evals = [j["eval"] for j in lines if "eval" in j]
    if not steps:
        sys.exit(f"report.py: {metrics} has no training steps")
    timed = steps[max(1, len(steps) // 5):] or steps
    seconds = sum(j["seconds"] for j in timed)
    fields.update({
        "steps": len(steps),
        "timed_steps": len(timed),
        "tokens_per_s": round(sum(j["tokens"] for j in timed) / seconds, 1),
        "s_per_step": round(seconds / len(timed), 5),
        "comm_share": round(sum(j.get("comm_seconds", 0) for j in timed) / seconds, 4),
        "final_loss": round(steps[-1]["loss"], 6),
    })
    for k, v in (evals[-1] if evals else {}).items():
        if isinstance(v, (int, float)):
            fields[f"eval_{k}"] = round(v, 6)
    tmp = rowfile + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        w.writerow(fields)
    os.replace(tmp, rowfile)


def number(s):
    try:
        return float(s)
    except ValueError:
        return None


def merge(study):
    rowdir = os.path.join(study, "rows")
    files = [os.path.join(rowdir, f) for f in os.listdir(rowdir) if f.endswith(".csv")]
    if not files:
        sys.exit(f"report.py: no rows in {rowdir} (did the array tasks run?)")
    rows = [r for f in files for r in csv.DictReader(open(f))]
    rows.sort(key=lambda r: int(r.get("task", 0)))
    header = list(rows[0])
    kind = rows[0].get("study", "")
    if kind == "scaling":
        base = min(rows, key=lambda r: int(r["ranks"]))
        tps0, ranks0 = float(base["tokens_per_s"]), int(base["ranks"])
        for r in rows:
            speedup = float(r["tokens_per_s"]) / tps0
            r["speedup"] = f"{speedup:.3f}"
            r["efficiency"] = f"{speedup * ranks0 / int(r['ranks']):.3f}"
        header += ["speedup", "efficiency"]
        label = lambda r: f"{r['dp']}x{r['tp']}x{r['pp']} ({r['ranks']})"
        y, y_title = "tokens_per_s", "tokens/s"
        title = f"{rows[0].get('mode', '')} scaling: {rows[0].get('phase', 'sft')} (dp x tp x pp)"
    else:
        label = lambda r: r.get("value", r.get("task"))
        evals = [h for h in header if h.startswith("eval_")]
        y = os.environ.get("XWIN_REPORT_Y") or (evals[0] if evals else "final_loss")
        y_title = y
        title = f"ablation: {rows[0].get('phase', '')} {rows[0].get('option', '')}"
    with open(os.path.join(study, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    shown = [h for h in header if h not in ("study", "nodelist")]
    with open(os.path.join(study, "results.md"), "w") as f:
        f.write(f"### {title}\n\n| {' | '.join(shown)} |\n|{'---|' * len(shown)}\n")
        for r in rows:
            f.write(f"| {' | '.join(str(r.get(h, '')) for h in shown)} |\n")
    plot(study, rows, label, y, y_title, title, kind == "scaling")
    print(open(os.path.join(study, "results.md")).read(), end="")


def plot(study, rows, label, y, y_title, title, scaling):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report.py: gnuplot not found; wrote the table but no PNG", file=sys.stderr)
        return
    data = os.path.join(study, "results.dat")
    with open(data, "w") as f:
        for r in rows:
            f.write(f'"{label(r)}" {number(r.get(y, "")) or 0} {r.get("efficiency", 0)}\n')
    terminals = subprocess.run([gnuplot, "-e", "set terminal"], capture_output=True, text=True)
    term = "pngcairo" if "pngcairo" in terminals.stdout + terminals.stderr else "png"
    script = f"""
set terminal {term} size 800,500
set output '{os.path.join(study, "results.png")}'
set title '{title}'
set style fill solid 0.6
set boxwidth 0.6
set ylabel '{y_title}'
set yrange [0:*]
set grid ytics
"""
    if scaling:
        script += f"""set y2label 'parallel efficiency'
set y2range [0:1.2]
set y2tics
plot '{data}' using 0:2:xtic(1) with boxes title '{y_title}', \\
     '' using 0:3 axes x1y2 with linespoints pt 7 title 'efficiency'
"""
    else:
        script += f"plot '{data}' using 0:2:xtic(1) with boxes title '{y_title}'\n"
    subprocess.run([gnuplot], input=script, text=True, check=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "row":
        row(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) == 3 and sys.argv[1] == "merge":
        merge(sys.argv[2])
    else:
        sys.exit(__doc__)
