#!/usr/bin/env bash
# `xwin sample` under model-parallel layouts writes the same Xwin-Set as one rank: the policy
# and the RM split over TP and PP ranks that decode in lock step, prompts spread over DP groups.
# Responses, lengths and duplicate counts must be identical; RM scores and policy log-prob sums
# within TOL relative (data parallelism alone: exactly). Two models: GQA with untied embeddings
# (KV heads split at tp = 2) and tied embeddings with one KV head (replicated at tp = 2). Both
# checkpoints are written on one rank, so every run also reshards them on load.
# Usage: sample_layouts.sh XWIN WORKDIR
set -euo pipefail
source "$(dirname "$0")/common.sh" "$1" "$2" 512
TOL=1e-4
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(3)
# Prompts of several lengths (BOS, symbols, SEP), two of them repeated: prefill groups equal
# lengths and shares identical prompts.
rows = [np.concatenate([[1], rng.integers(4, 24, rng.integers(1, 9)), [3]]) for _ in range(9)]
rows += [rows[2], rows[5]]
with h5py.File("prompts.h5", "w") as f:
    f["prompt/tokens"] = np.concatenate(rows).astype(np.int32)
    f["prompt/offsets"] = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    f.attrs["schema"] = "xwin.prompts"; f.attrs["version"] = 1
PY

declare -A MODEL
MODEL[untied]="--model.n_kv_heads 2 --model.tie_embeddings false"
MODEL[tied]="--model.n_kv_heads 1 --model.tie_embeddings true"
SAMPLE=(sample --prompts prompts.h5 --num_samples 4 --draw_budget 8 --max_new_tokens 10
        --chunk 3 --batch 8 --temperature 1.3 --top_k 16 --seed 7 --score_batch 6)
for model in untied tied; do
  # A briefly trained policy (peaked distributions, EOS reachable) and a random reward model.
  # shellcheck disable=SC2086
  ARCH=(--model.vocab_size 24 --model.d_model 64 --model.n_layers 4 --model.n_heads 4
        --model.d_ff 128 --model.max_seq_len 48 ${MODEL[$model]})
  "$XWIN" sft --data data.h5 "${ARCH[@]}" --train.steps 30 --train.batch_size 16 \
    --train.micro_batch_size 16 --train.lr 3e-3 --train.warmup_steps 3 --out $model-policy \
    >$model-sft.log 2>&1 || { cat $model-sft.log; exit 1; }
  "$XWIN" init "${ARCH[@]}" --model.value_head true --seed 11 --out $model-rm >/dev/null
  "$XWIN" "${SAMPLE[@]}" --policy $model-policy/final --rm $model-rm --out $model-1-1-1.h5 \
    >$model-1-1-1.log 2>&1 || { cat $model-1-1-1.log; exit 1; }
  layouts=("2 1 1" "1 2 1" "1 1 2" "1 2 2" "2 2 1")
  [ $model = tied ] && layouts=("1 2 1" "1 1 2" "2 1 2")
  for layout in "${layouts[@]}"; do
    read -r dp tp pp <<<"$layout"
    name=$model-$dp-$tp-$pp
    timeout 300 mpiexec -n $((dp * tp * pp)) "$XWIN" "${SAMPLE[@]}" --policy $model-policy/final \
      --rm $model-rm --parallel.dp $dp --parallel.tp $tp --parallel.pp $pp --out $name.h5 \
      >$name.log 2>&1 || { echo "FAIL: sample under $layout ($model)"; cat $name.log; exit 1; }
  done
done

/usr/bin/python3 - "$TOL" "$HERE" <<'PY'
import glob, sys, h5py
sys.path.insert(0, sys.argv[2])
from ckpt_tools import compare_arrays
tol = float(sys.argv[1])
bad = []
def load(path):
    with h5py.File(path) as f:
        return {k: f[k][...] for k in ("responses/tokens", "responses/offsets", "prompt/tokens",
                                       "lengths", "duplicates", "scores", "policy_logp")}
for model in ("untied", "tied"):
    want = load(f"{model}-1-1-1.h5")
    n = want["lengths"].size
    eos = sum(1 for i in range(n)
              if want["responses/tokens"][want["responses/offsets"][i + 1] - 1] == 2)
    print(f"{model}: {n} responses, {eos} end in EOS, mean length {want['lengths'].mean():.1f}")
    if eos == 0 or eos == n:
        bad.append(f"{model}: the reference set does not mix EOS and length-limited responses")
    for path in sorted(glob.glob(f"{model}-*.h5")):
        layout = path[len(model) + 1:-3]
        if layout == "1-1-1":
            continue
        bad += compare_arrays(f"{model} {layout}", load(path), want,
                              ("responses/tokens", "responses/offsets", "prompt/tokens", "lengths",
                               "duplicates"), ("scores", "policy_logp"),
                              0.0 if layout.endswith("-1-1") else tol)
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "sample_layouts: ok"
