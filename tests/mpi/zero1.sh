#!/usr/bin/env bash
# ZeRO-1 (--train.zero1): AdamW's moments split across the data-parallel ranks. Checks, for a
# model whose flat size is not a multiple of the 64-float slice unit (d_model 40):
#  1. under (dp,tp,pp) in {(2,1,1), (2,2,1), (2,1,2), (4,1,1)} the losses, final weights and
#     final moments are bit-identical to the same layout without ZeRO-1, and within TOL (losses)
#     and WTOL (tensors) of one rank;
#  2. each rank holds only its slice of the moments (the log line's count is below the total);
#  3. a step checkpoint written under ZeRO-1 at (2,2,1) resumes under ZeRO-1 at (2,1,1) and
#     without it at (1,1,1): steps 4-6 match the uninterrupted run within TOL / WTOL.
# Usage: zero1.sh XWIN WORKDIR
set -euo pipefail
source "$(dirname "$0")/common.sh" "$1" "$2"
sft_args 40 96
"$XWIN" sft "${ARGS[@]}" --out run-1-1-1 >run-1-1-1.log
LAYOUTS=("2 1 1" "2 2 1" "2 1 2" "4 1 1")
for layout in "${LAYOUTS[@]}"; do
  read -r dp tp pp <<<"$layout"
  run run-$dp-$tp-$pp $dp $tp $pp
  run zero-$dp-$tp-$pp $dp $tp $pp --train.zero1 true
  line=$(grep -m1 "ZeRO-1: AdamW moments of" zero-$dp-$tp-$pp.log) ||
    { echo "FAIL: zero-$dp-$tp-$pp logs no ZeRO-1 partition"; exit 1; }
  read -r mine total <<<"$(sed -E 's/.*moments of ([0-9]+) of ([0-9]+) parameters.*/\1 \2/' <<<"$line")"
  # rank 0's slice: about total/dp (rounded to the 64-float unit)
  if ((mine * dp > total + 64 * dp || mine >= total)); then
    echo "FAIL: zero-$dp-$tp-$pp rank 0 holds $mine of $total moments (dp=$dp)"
    exit 1
  fi
done
grep -q "ZeRO-1" run-2-1-1.log && { echo "FAIL: ZeRO-1 active without --train.zero1"; exit 1; }

run zfull 2 2 1 --train.zero1 true --save-every 3
CKPT=zfull/ckpt/step-00000003
run zresume 2 1 1 --train.zero1 true --resume $CKPT
grep -q "resumed from $CKPT at step 3" zresume.log
run zone 1 1 1 --resume $CKPT
grep -q "resumed from $CKPT at step 3" zone.log

/usr/bin/python3 - "$HERE" $TOL $WTOL "${LAYOUTS[@]}" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import ckpt_tools as ct
tol, wtol = float(sys.argv[2]), float(sys.argv[3])
bad = []
for layout in sys.argv[4:]:
    name = layout.replace(" ", "-")
    bad += ct.compare_runs(f"zero-{name}", f"run-{name}", range(1, 7), 0.0)  # bit for bit
    bad += ct.compare_runs(f"zero-{name}", "run-1-1-1", range(1, 7), tol, wtol=wtol)
bad += ct.compare_runs("zfull", "run-2-2-1", range(1, 7), 0.0)
bad += ct.compare_runs("zresume", "zfull", range(4, 7), tol, wtol=wtol)
bad += ct.compare_runs("zone", "zfull", range(4, 7), tol, wtol=wtol)
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "zero1: ok"
