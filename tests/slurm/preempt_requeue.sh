#!/usr/bin/env bash
# Preemption under Slurm: a 2-rank `xwin sft` job (slurm/xwin.sbatch) is sent USR1 mid-run,
# checkpoints, exits 75, requeues itself, resumes from the checkpoint and finishes with the same
# losses and bitwise the same final weights and AdamW moments as an uninterrupted 2-rank run.
# Two paths: `scancel --signal=USR1` (the ranks get it) and `scancel -b --signal=USR1` (the batch
# shell gets it, as with #SBATCH --signal=B:USR1@120, and forwards it through srun).
# Runs inside harness.sh. Usage: preempt_requeue.sh XWIN SOURCE_DIR
set -euo pipefail
XWIN=$1 SRC=$2
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$XWIN" data synth --out data.h5 --records 512 >/dev/null
STEPS=40
SFT=(sft --data data.h5 --model.vocab_size 24 --model.d_model 96 --model.n_layers 3
     --model.n_heads 4 --model.n_kv_heads 2 --model.d_ff 256 --model.max_seq_len 32
     --train.steps "$STEPS" --train.batch_size 16 --train.micro_batch_size 4 --train.lr 2e-3
     --train.warmup_steps 5 --train.log_every 10 --save_every 10)

# Submit both preempted runs first; the uninterrupted one runs outside Slurm meanwhile.
submit() {
  sbatch --parsable -n 2 --job-name="$1" --output="$PWD/$1-%j.out" \
    --export="ALL,XWIN_BIN=$XWIN,XWIN_SLURM_DIR=$SRC/slurm" "$SRC/slurm/xwin.sbatch" \
    "${SFT[@]}" --out "$1"
}
steps_done() {
  local n
  n=$(grep -c '"loss"' "$1/metrics.jsonl" 2>/dev/null) || true
  echo "${n:-0}"
}
signal_at() {  # DIR STEP SCANCEL_ARGS...: once DIR has STEP steps, send the signal
  local dir=$1 step=$2
  shift 2
  for _ in $(seq 1 2400); do
    [ "$(steps_done "$dir")" -ge "$step" ] && { scancel "$@"; return 0; }
    sleep 0.05
  done
  echo "timed out waiting for step $step in $dir"
  return 1
}
wait_gone() {
  for _ in $(seq 1 1200); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 0.1; done
  echo "job $1 still queued:"; squeue; return 1
}

step_job=$(submit usr1_step)
batch_job=$(submit usr1_batch)
mpiexec -n 2 "$XWIN" "${SFT[@]}" --out full >full.log &
full=$!
signal_at usr1_step $((3 + RANDOM % 6)) --signal=USR1 "$step_job"
signal_at usr1_batch $((3 + RANDOM % 6)) --batch --signal=USR1 "$batch_job"
wait $full
wait_gone "$step_job"
wait_gone "$batch_job"

for run in usr1_step:$step_job usr1_batch:$batch_job; do
  dir=${run%%:*} id=${run#*:}
  log=$dir-$id.out
  info=$(scontrol show job -o "$id")
  grep -q "JobState=COMPLETED" <<<"$info" && grep -q "Restarts=1 " <<<"$info" ||
    { echo "$dir: job $id did not complete after one requeue: $info"; cat "$log"; exit 1; }
  for line in "preempted: checkpoint of step" "requeueing job $id (restart 1)" "resumed from" \
    "job $id exit 0"; do
    grep -q "$line" "$log" || { echo "$dir: '$line' missing from $log"; cat "$log"; exit 1; }
  done
done

/usr/bin/python3 - "$step_job" "$batch_job" <<'PY'
import h5py, json, os, sys, numpy as np
def losses(d):
    return {j["step"]: j["loss"] for j in map(json.loads, open(f"{d}/metrics.jsonl")) if "loss" in j}
full = losses("full")
for d, job in (("usr1_step", sys.argv[1]), ("usr1_batch", sys.argv[2])):
    runs = json.load(open(f"{d}/run.json"))["runs"]
    assert len(runs) == 2, (d, runs)
    assert all(r["slurm"]["job_id"] == job and r["layout"]["ranks"] == 2 for r in runs), runs
    assert runs[1]["slurm"]["restart_count"] == "1" and 0 < runs[1]["start_step"] < 40, runs
    got = losses(d)
    assert got == full, f"{d}: losses differ from the uninterrupted run"
    files = sorted(os.listdir("full/final"))
    assert files == sorted(os.listdir(f"{d}/final")), files
    n = 0
    for name in (f for f in files if f.endswith(".h5")):
        with h5py.File(f"full/final/{name}") as a, h5py.File(f"{d}/final/{name}") as b:
            names = []
            a.visititems(lambda k, o: names.append(k) if isinstance(o, h5py.Dataset) else None)
            assert any(k.startswith("optim/m/") for k in names), names
            for k in names:
                assert np.array_equal(a[k][...], b[k][...]), f"{d}: {name}:{k} differs"
            n += len(names)
    print(f"{d}: preempted at step {runs[1]['start_step']}, requeued, resumed; losses and "
          f"{n} datasets (params, m, v) bitwise equal to the uninterrupted run")
PY
echo "preempt_requeue: ok"
