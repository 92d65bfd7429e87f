#!/usr/bin/env bash
# xwin pipeline on 2 data-parallel ranks (mpiexec -n 2) with the demo deck, reduced: the deck's
# micro-batch (32 of a batch of 32) is lowered to 16 per rank, every stage runs and the report
# is complete; SFT's first losses agree with a one-rank run at micro-batch 16 (the same
# gradient, summed over ranks instead of accumulated: equal to rounding).
# Usage: pipeline_np2.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
SMALL=(--n_sft 3000 --sft_steps 300 --n_pairs 300 --rm_steps 60 --n_rl 24 --num_samples 16
       --n_eval 80 --n_rm_eval 60 --n_bon 16 --rs_steps 30 --dpo_steps 30 --rs_candidates 4
       --dpo_rejected_ablation median --max_new_tokens 16 --train.warmup_steps 5
       --train.log_every 10)
mpiexec -n 2 "$XWIN" pipeline --config "$SRC/inputs/demo.ini" --run_dir np2 "${SMALL[@]}" \
  >np2.log 2>&1 || { tail -30 np2.log; exit 1; }
grep -q "pipeline: finished" np2.log
for stage in sft rm rs dpo; do
  grep -q "pipeline: $stage: train.micro_batch_size 32 -> 16 (batch 32 over 2 data-parallel ranks)" np2.log
done
"$XWIN" pipeline --config "$SRC/inputs/demo.ini" --run_dir np1 "${SMALL[@]}" \
  --train.micro_batch_size 16 --stage prepare --stage sft >np1.log 2>&1 || { tail -30 np1.log; exit 1; }
! grep -q "micro_batch_size 16 ->" np1.log  # one rank: the value given is used as is
/usr/bin/python3 - <<'PYEOF'
import json
res = json.load(open("np2/report/results.json"))
for m in ("sft", "rs", "dpo", "ablations/rs_n4", "ablations/dpo_median"):
    assert res["models"][m]["n"] == 80, m
assert res["rm"]["pairs"] > 0 and sum(f["prompts"] for f in res["best_of_n"]["by_family"].values()) == 16
def losses(path):
    return {j["step"]: j["loss"] for j in map(json.loads, open(path)) if "loss" in j and "step" in j}
a, b = losses("np2/sft/metrics.jsonl"), losses("np1/sft/metrics.jsonl")
assert sorted(a) == sorted(b) and len(a) >= 30, (sorted(a), sorted(b))
# The first 10 steps, before rounding differences grow: at the demo's learning rate (4e-3) they
# reach 1e-3 by step 30 (measured: 1e-9 at step 10, 6e-7 at 20). A missing all-reduce or a
# wrong data shard changes the loss from step 2 on by percents.
early = [s for s in sorted(b) if s <= 10]
assert len(early) == 10, early
worst = max(abs(a[s] - b[s]) / abs(b[s]) for s in early)
assert worst < 1e-6, worst
print(f"pipeline_np2: SFT losses, steps 1-10, 2 ranks vs 1 at micro-batch 16: worst relative {worst:.1e}")
PYEOF
echo "pipeline_np2: ok"
