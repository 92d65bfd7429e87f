#!/usr/bin/env bash
# Reference parity through Hugging Face files: the float64 PyTorch Llama forward
# (validation/reference.py) reading the safetensors that `xwin export` wrote agrees with
# `xwin logprobs` on the checkpoint (relative error <= 1e-5), for an fp32 untied GQA model and a
# bf16 sharded tied one.
# Usage: hf_logprobs.sh XWIN PYTHON SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1
PY=$2
TOOLS=$3/validation/hf_tools.py
WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
"$PY" "$TOOLS" tokens tok.jsonl --vocab 97
"$XWIN" data tokens --in tok.jsonl --out tok.h5
for variant in "fp32" "bf16 --shards 3 --tied"; do
  # shellcheck disable=SC2086
  set -- $variant
  "$PY" "$TOOLS" make "src_$1" --dtype $variant
  "$XWIN" import --hf "src_$1" --out "ck_$1"
  "$XWIN" export --ckpt "ck_$1" --hf "hf_$1" --dtype "$1" --max_shard_size 40KB
  "$XWIN" logprobs --ckpt "ck_$1" --data tok.h5 --out "lp_$1.h5"
  "$PY" "$TOOLS" logprobs "hf_$1" tok.jsonl "lp_$1.h5" --tol 1e-5
done
echo "hf_logprobs: ok"
