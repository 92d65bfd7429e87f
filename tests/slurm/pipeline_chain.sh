#!/usr/bin/env bash
# The pipeline as a Slurm chain: slurm/pipeline.sh submits sft -> rm -> sample -> rs -> dpo ->
# eval (2 ranks each, afterok); they run one after another in that order and every stage
# finishes. The sft job is preempted mid-SFT (scancel --signal=USR1): it checkpoints, requeues
# and resumes. The outputs equal those of the same pipeline run without Slurm or preemption
# (mpiexec, 2 ranks, same threads): every HDF5 dataset bitwise, every loss and held-out score,
# the eval results. Reduced deck: few tasks, a tiny model, few steps.
# Runs inside harness.sh. Usage: pipeline_chain.sh XWIN SOURCE_DIR
set -euo pipefail
XWIN=$1 SRC=$2
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ "$("$XWIN" pipeline --help)" == *--stage* ]] ||
  { echo "xwin pipeline has no --stage yet"; exit 1; }
cat >deck.ini <<'EOF'
[pipeline]
run_dir = run_slurm
n_sft = 3000
n_pairs = 60
n_rl = 24
n_eval = 24
n_rm_eval = 24
n_bon = 8
num_samples = 4
eval_batch = 16
sft_steps = 200
rm_steps = 10
rs_steps = 10
dpo_steps = 10

[model]
d_model = 32
n_layers = 2
n_heads = 2
n_kv_heads = 2
d_ff = 64
max_seq_len = 192

[train]
batch_size = 8
micro_batch_size = 4
log_every = 10
EOF

# The run without Slurm, meanwhile.
mpiexec -n 2 "$XWIN" pipeline --config deck.ini --run_dir run_local >local.log 2>&1 &
local_run=$!
export XWIN_BIN=$XWIN XWIN_TASKS_PER_NODE=2 XWIN_TIME=10 XWIN_POLL=0.5
"$SRC/slurm/pipeline.sh" deck.ini
sft_job=$(awk '$1 == "sft" { print $2 }' run_slurm/slurm/jobs.tsv)
for _ in $(seq 1 2400); do
  n=$(grep -c '"loss"' run_slurm/sft/metrics.jsonl 2>/dev/null) || true
  [ "${n:-0}" -ge 10 ] && break
  sleep 0.05
done
scancel --signal=USR1 "$sft_job"
set +e
"$SRC/slurm/status.sh" --wait run_slurm/slurm >chain.txt
code=$?
set -e
cat chain.txt
[ $code = 0 ] || { echo "the chain failed (status.sh exit $code)"; exit 1; }
wait $local_run || { echo "the pipeline without Slurm failed:"; tail -n 30 local.log; exit 1; }

# Dependency order: each job started after the one before it ended.
prev_end=0
while IFS=$'\t' read -r job id log; do
  info=$(scontrol show job -o "$id")
  start=$(date -d "$(sed -E 's/.*StartTime=([^ ]+).*/\1/' <<<"$info")" +%s)
  end=$(date -d "$(sed -E 's/.*EndTime=([^ ]+).*/\1/' <<<"$info")" +%s)
  [ "$start" -ge "$prev_end" ] || { echo "$job (job $id) started before the previous job ended"; exit 1; }
  prev_end=$end
  grep -q "^xwin-slurm: job $id exit 0" "$log"
  restarts=0
  [ "$job" = sft ] && restarts=1
  grep -q "Restarts=$restarts " <<<"$info" || { echo "$job: want $restarts restarts: $info"; exit 1; }
done <run_slurm/slurm/jobs.tsv
grep -q "requeueing job $sft_job (restart 1)" "run_slurm/slurm/sft-$sft_job.out"
grep -q "resumed from run_slurm/sft/ckpt/step-" "run_slurm/slurm/sft-$sft_job.out"
grep -q "prepare.*skipped" "run_slurm/slurm/sft-$sft_job.out"  # the requeued job redid only sft
[ "$(cut -f1 run_slurm/slurm/jobs.tsv | tr '\n' ' ')" = "sft rm sample rs dpo eval " ]
for stage in prepare sft pairs rm sample rs dpo eval; do
  [ -f "run_slurm/stages/$stage.done" ] && [ -f "run_local/stages/$stage.done" ] ||
    { echo "stage $stage did not finish"; exit 1; }
done

/usr/bin/python3 - "$(awk '$1 == "sft" { print $2 }' run_slurm/slurm/jobs.tsv)" <<'PY'
import h5py, json, os, sys, numpy as np
def files(root, ext):
    out = set()
    for d, _, names in os.walk(root):
        out |= {os.path.relpath(os.path.join(d, n), root) for n in names if n.endswith(ext)}
    # Step checkpoints differ by design: the preempted run saved one when it got USR1.
    return {f for f in out if not f.startswith("slurm/") and "/ckpt/" not in f}
h5 = files("run_local", ".h5")
assert h5 and h5 == files("run_slurm", ".h5"), sorted(h5 ^ files("run_slurm", ".h5"))
n = 0
for f in sorted(h5):
    with h5py.File(f"run_local/{f}") as a, h5py.File(f"run_slurm/{f}") as b:
        names = []
        a.visititems(lambda k, o: names.append(k) if isinstance(o, h5py.Dataset) else None)
        for k in names:
            assert k in b and np.array_equal(a[k][...], b[k][...]), f"{f}:{k} differs"
        n += len(names)
metrics = files("run_local", "metrics.jsonl")
assert metrics == files("run_slurm", "metrics.jsonl"), metrics
def losses(path):
    return [(j["step"], j.get("loss"), j.get("eval")) for j in map(json.loads, open(path))]
for f in metrics:
    assert losses(f"run_local/{f}") == losses(f"run_slurm/{f}"), f"{f}: losses differ"
assert json.load(open("run_local/report/results.json")) == json.load(open("run_slurm/report/results.json"))
runs = json.load(open("run_slurm/sft/run.json"))["runs"]
assert [r["slurm"]["job_id"] for r in runs] == [sys.argv[1]] * 2, runs
assert runs[1]["slurm"]["restart_count"] == "1" and runs[1]["slurm"]["ntasks"] == "2", runs
print(f"pipeline_chain: sft preempted at step {runs[1]['start_step']} and requeued; "
      f"{len(h5)} HDF5 files ({n} datasets), {len(metrics)} loss curves and the eval results "
      "equal with and without Slurm")
PY
echo "pipeline_chain: ok"
