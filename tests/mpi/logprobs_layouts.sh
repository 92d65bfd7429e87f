#!/usr/bin/env bash
# `xwin logprobs` under (dp,tp,pp) = (2,1,1), (1,2,1), (1,1,2) writes the same values as
# (1,1,1): offsets and n_scored exactly, log-probs and sums within TOL relative (data
# parallelism exactly). The checkpoint itself was trained under (1,2,2), so every run also
# reshards it on load.
# Usage: logprobs_layouts.sh XWIN WORKDIR
set -euo pipefail
source "$(dirname "$0")/common.sh" "$1" "$2" 61
mpiexec -n 4 "$XWIN" sft --data data.h5 --model.vocab_size 24 --model.d_model 64 \
  --model.n_layers 4 --model.n_heads 4 --model.n_kv_heads 2 --model.d_ff 128 \
  --model.max_seq_len 32 --train.steps 3 --train.batch_size 4 --train.micro_batch_size 2 \
  --parallel.tp 2 --parallel.pp 2 --out train >train.log 2>&1 || { cat train.log; exit 1; }
LP=(logprobs --ckpt train/final --data data.h5 --batch_size 4)
"$XWIN" "${LP[@]}" --out lp-1-1-1.h5 >/dev/null
for layout in "2 1 1" "1 2 1" "1 1 2"; do
  read -r dp tp pp <<<"$layout"
  mpiexec -n $((dp * tp * pp)) "$XWIN" "${LP[@]}" --parallel.dp $dp --parallel.tp $tp \
    --parallel.pp $pp --out lp-$dp-$tp-$pp.h5 >lp-$dp-$tp-$pp.log 2>&1 ||
    { echo "FAIL: logprobs under $layout"; cat lp-$dp-$tp-$pp.log; exit 1; }
done
/usr/bin/python3 - "$TOL" "$HERE" <<'PY'
import sys, h5py
sys.path.insert(0, sys.argv[2])
from ckpt_tools import compare_arrays
tol = float(sys.argv[1])
bad = []
with h5py.File("lp-1-1-1.h5") as ref:
    want = {k: ref[k][...] for k in ("logprobs", "offsets", "sum_logp", "n_scored")}
for layout in ("2-1-1", "1-2-1", "1-1-2"):
    with h5py.File(f"lp-{layout}.h5") as f:
        got = {k: f[k][...] for k in want}
    bad += compare_arrays(layout, got, want, ("offsets", "n_scored"), ("logprobs", "sum_logp"),
                          0.0 if layout == "2-1-1" else tol)
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "logprobs_layouts: ok"
