#!/usr/bin/env bash
# Exact resume and preemption (DESIGN.md invariant 2), on NP ranks:
#  1. 30 SFT steps uninterrupted;
#  2. the same run killed with SIGKILL after step 17, then resumed with --resume auto;
#  3. the same run sent SIGUSR1 mid-run: it checkpoints and exits 75, then resumes;
# 2 and 3 must give bitwise the same losses (steps 18-30) and final weights and AdamW moments.
# A run that finishes before its signal lands is repeated (interrupt, below).
# Usage: resume_exact.sh XWIN WORKDIR NP
set -euo pipefail
XWIN=$1 WORK=$2 NP=$3
source "$(dirname "${BASH_SOURCE[0]}")/signal_lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
launch=()
[ "$NP" -gt 1 ] && launch=(mpiexec -n "$NP")
"$XWIN" data synth --out data.h5 --records 512 >/dev/null
MODEL=(--model.vocab_size 24 --model.d_model 96 --model.n_layers 3 --model.n_heads 4
       --model.n_kv_heads 2 --model.d_ff 256 --model.max_seq_len 32)
TRAIN=(--train.steps 30 --train.batch_size 16 --train.micro_batch_size 4 --train.lr 2e-3
       --train.warmup_steps 5 --save-every 5 --keep-last 2)
run() { "${launch[@]}" "$XWIN" sft --data data.h5 "${MODEL[@]}" "${TRAIN[@]}" --out "$@"; }

run full >full.log

# interrupt NAME SIG STEP LOG: runs NAME (output to LOG) and, once STEP steps are logged, sends
# SIG to every task, as Slurm does with --signal (the launcher may forward it too); sets
# SIGNAL_EXIT. A step takes milliseconds here, so a run that finished all 30 steps before the
# signal landed (its final checkpoint written) is repeated (signal_after).
interrupt() {
  local name=$1 sig=$2 step=$3 log=$4
  SIGNAL_PATTERN="--out $name" signal_after "$sig" \
    "[ -f $name/metrics.jsonl ] && [ \$(wc -l <$name/metrics.jsonl) -ge $step ]" \
    "[ -d $name/final ]" "rm -rf $name" "$log" run "$name"
}

# 2. SIGKILL every rank after step 17: no chance to save anything.
interrupt killed KILL 17 killed1.log
ls killed/ckpt
run killed --resume auto >killed2.log
grep -q "resumed from .*step-000000" killed2.log

# 3. SIGUSR1 at a moment chosen by the step count: checkpoint, exit 75, resume.
interrupt preempted USR1 $((7 + RANDOM % 15)) pre1.log
[ $SIGNAL_EXIT = 75 ] || { echo "preempted run exited $SIGNAL_EXIT, want 75"; cat pre1.log; exit 1; }
grep -q "preempted: checkpoint of step" pre1.log
run preempted >pre2.log

/usr/bin/python3 - <<'PY'
import h5py, json, numpy as np
def losses(d):
    return {j["step"]: j["loss"] for j in map(json.loads, open(f"{d}/metrics.jsonl"))}
full = losses("full")
for d in ("killed", "preempted"):
    got = losses(d)
    assert sorted(got) == list(range(1, 31)), (d, sorted(got))
    diff = [s for s in range(18, 31) if got[s] != full[s]]
    assert not diff, f"{d}: losses differ at steps {diff}"
    with h5py.File("full/final/shard-pp0-tp0.h5") as a, h5py.File(f"{d}/final/shard-pp0-tp0.h5") as b:
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert any(n.startswith("optim/m/") for n in names) and any(n.startswith("optim/v/") for n in names)
        for n in names:
            assert np.array_equal(a[n][...], b[n][...]), f"{d}: {n} differs"
    print(f"{d}: losses 18-30 and {len(names)} datasets (params, m, v) bitwise equal to the uninterrupted run")
PY
echo "resume_exact (np=$NP): ok"
