#!/usr/bin/env bash
# Resharding (DESIGN.md invariant 2): a checkpoint saved under (dp,tp,pp) = (2,2,1) after 3
# steps resumes under (1,1,2) and under (1,1,1); steps 4-6 match the uninterrupted (2,2,1) run
# (losses within TOL relative; final weights and moments within TOL in norm). The checkpoint
# holds one shard per TP rank (DP replicas write nothing extra).
# Usage: reshard.sh XWIN WORKDIR
set -euo pipefail
XWIN=$1 WORK=$2
TOL=1e-5
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
"$XWIN" data synth --out data.h5 --records 256 >/dev/null
ARGS=(--data data.h5 --model.vocab_size 24 --model.d_model 64 --model.n_layers 4
      --model.n_heads 4 --model.n_kv_heads 2 --model.d_ff 128 --model.max_seq_len 32
      --train.steps 6 --train.batch_size 8 --train.micro_batch_size 2 --train.lr 2e-3
      --train.warmup_steps 2)
run() {  # run NAME DP TP PP [args]
  local name=$1 dp=$2 tp=$3 pp=$4
  shift 4
  mpiexec -n $((dp * tp * pp)) "$XWIN" sft "${ARGS[@]}" --parallel.dp $dp --parallel.tp $tp \
    --parallel.pp $pp --out $name "$@" >$name.log 2>&1 || { echo "FAIL: $name"; cat $name.log; exit 1; }
}
run full 2 2 1 --save-every 3
CKPT=full/ckpt/step-00000003
/usr/bin/python3 - $CKPT <<'PY'
import json, sys
idx = json.load(open(sys.argv[1] + "/index.json"))
assert idx["layout"] == {"pp": 1, "tp": 2}, idx["layout"]
assert [s["file"] for s in idx["shards"]] == ["shard-pp0-tp0.h5", "shard-pp0-tp1.h5"], idx["shards"]
PY
run pp2 1 1 2 --resume $CKPT
grep -q "resumed from $CKPT at step 3" pp2.log
run one 1 1 1 --resume $CKPT
grep -q "resumed from $CKPT at step 3" one.log
/usr/bin/python3 - "$HERE" $TOL <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import ckpt_tools as ct
tol = float(sys.argv[2])
bad = ct.compare_runs("pp2", "full", range(4, 7), tol) + ct.compare_runs("one", "full", range(4, 7), tol)
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "reshard: ok"
