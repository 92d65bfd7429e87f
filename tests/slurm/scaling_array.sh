#!/usr/bin/env bash
# Studies as job arrays: a 4-task slurm/scaling.sbatch (dp x tp x pp = 1x1x1, 2x1x1, 1x2x1,
# 1x1x2) and a 2-task slurm/ablation.sbatch (SFT learning rate), each task writing one CSV row;
# a job depending on each array runs `slurm/report.py merge`, which makes the CSV, the markdown
# table and the PNG plot. Each task's run.json names its array job and task.
# Runs inside harness.sh. Usage: scaling_array.sh XWIN SOURCE_DIR
set -euo pipefail
XWIN=$1 SRC=$2
export OMP_NUM_THREADS=1 XWIN_SCALING_STEPS=10 XWIN_SCALING_BATCH=8 XWIN_SCALING_MICRO=2
MODEL=(--model.vocab_size 24 --model.d_model 64 --model.n_layers 2 --model.n_heads 4
       --model.n_kv_heads 2 --model.d_ff 128 --model.max_seq_len 32)
ENV="ALL,XWIN_BIN=$XWIN,XWIN_SLURM_DIR=$SRC/slurm"
scaling=$(sbatch --parsable --array=0-3 -n 2 --output="$PWD/scaling-%A_%a.out" --export="$ENV" \
  "$SRC/slurm/scaling.sbatch" "$PWD/scaling" "${MODEL[@]}")
"$XWIN" data synth --out data.h5 --records 512 >/dev/null
ablation=$(sbatch --parsable --array=0-1 -n 2 --output="$PWD/ablation-%A_%a.out" --export="$ENV" \
  "$SRC/slurm/ablation.sbatch" "$PWD/ablation" sft --train.lr 1e-3,3e-3 --data "$PWD/data.h5" \
  "${MODEL[@]}" --train.steps 10 --train.batch_size 8 --train.micro_batch_size 4)
reports=()
for study in scaling:$scaling ablation:$ablation; do
  reports+=("$(sbatch --parsable -n 1 --dependency="afterok:${study#*:}" --kill-on-invalid-dep=yes \
    --output="$PWD/report-${study%%:*}.out" --wrap "python3 $SRC/slurm/report.py merge $PWD/${study%%:*}")")
done
for _ in $(seq 1 3000); do [ -z "$(squeue -h)" ] && break; sleep 0.1; done
[ -z "$(squeue -h)" ] || { echo "jobs still queued:"; squeue; exit 1; }
for id in "${reports[@]}"; do
  scontrol show job -o "$id" | grep -q "JobState=COMPLETED" ||
    { echo "report job $id did not complete:"; cat report-*.out scaling-*.out ablation-*.out; exit 1; }
done
cat scaling/results.md ablation/results.md

/usr/bin/python3 - "$scaling" "$ablation" <<'PY'
import csv, json, sys
scaling, ablation = sys.argv[1:]
rows = list(csv.DictReader(open("scaling/results.csv")))
assert [(r["dp"], r["tp"], r["pp"]) for r in rows] == [("1", "1", "1"), ("2", "1", "1"), ("1", "2", "1"), ("1", "1", "2")], rows
assert [r["ranks"] for r in rows] == ["1", "2", "2", "2"], rows
for i, r in enumerate(rows):
    assert r["job"] == f"{scaling}_{i}" and float(r["tokens_per_s"]) > 0 and r["steps"] == "10", r
    assert 0 < float(r["efficiency"]) and r["mode"] == "strong", r
    slurm = json.load(open(f"scaling/task-{i}/run.json"))["runs"][-1]["slurm"]
    assert slurm["array_job_id"] == scaling and slurm["array_task_id"] == str(i), slurm
# Strong scaling keeps the global batch, so every layout sees the same data: same first loss.
loss1 = [json.loads(open(f"scaling/task-{i}/metrics.jsonl").readline())["loss"] for i in range(4)]
assert max(loss1) - min(loss1) < 1e-4, loss1
rows = list(csv.DictReader(open("ablation/results.csv")))
assert [(r["option"], r["value"]) for r in rows] == [("--train.lr", "1e-3"), ("--train.lr", "3e-3")], rows
for study in ("scaling", "ablation"):
    assert open(f"{study}/results.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"{study}: no PNG"
    md = open(f"{study}/results.md").read().splitlines()
    assert md[0].startswith("### ") and md[2].startswith("| ") and len(md) == 4 + len(list(csv.DictReader(open(f"{study}/results.csv")))), md
print("scaling_array: 4 scaling rows, 2 ablation rows, tables and PNGs")
PY
echo "scaling_array: ok"
