#!/usr/bin/env bash
# Resharding (DESIGN.md invariant 2): a checkpoint saved under (dp,tp,pp) = (2,2,1) after 3
# steps resumes under (1,1,2) and under (1,1,1); steps 4-6 match the uninterrupted (2,2,1) run
# (losses within TOL relative; final weights and moments within WTOL in norm). The checkpoint
# holds one shard per TP rank (DP replicas write nothing extra).
# Usage: reshard.sh XWIN WORKDIR
set -euo pipefail
source "$(dirname "$0")/common.sh" "$1" "$2"
sft_args 64 128
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
/usr/bin/python3 - "$HERE" $TOL $WTOL <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import ckpt_tools as ct
tol, wtol = float(sys.argv[2]), float(sys.argv[3])
bad = (ct.compare_runs("pp2", "full", range(4, 7), tol, wtol=wtol)
       + ct.compare_runs("one", "full", range(4, 7), tol, wtol=wtol))
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "reshard: ok"
