#!/usr/bin/env bash
# Bad Hugging Face input stops `xwin import` / `xwin export` with a message naming the file and
# the tensor or key, exit 1 (bad data) or 2 (bad option), and no output appears.
# Usage: hf_bad_input.sh XWIN PYTHON SOURCE_DIR WORKDIR
set -uo pipefail
XWIN=$1
PY=$2
TOOLS=$3/validation/hf_tools.py
WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
failures=0

# expect CODE PATTERN CMD...: CMD exits with CODE and its stderr matches PATTERN (grep -E).
expect() {
  local code=$1 pattern=$2
  shift 2
  "$@" >out.txt 2>err.txt
  local got=$?
  if [ "$got" != "$code" ] || ! grep -qE -- "$pattern" err.txt; then
    echo "FAIL: $* -> exit $got (want $code), stderr:"
    cat err.txt
    failures=$((failures + 1))
  else
    echo "ok: $* -> exit $got: $(grep -E -m1 -- "$pattern" err.txt)"
  fi
}
absent() {
  if [ -e "$1" ]; then
    echo "FAIL: $1 exists after a failed run"
    failures=$((failures + 1))
  fi
}

"$PY" "$TOOLS" make one || exit 1
"$PY" "$TOOLS" make sharded --shards 3 --dtype bf16 || exit 1
T=model.layers.1.mlp.up_proj.weight
# bad SRC MODE CODE PATTERN: corrupt SRC one way, import it, expect the failure and no checkpoint.
bad() {
  rm -rf "bad_$1_$2"
  "$PY" "$TOOLS" corrupt "$1" "bad_$1_$2" "$2" || exit 1
  expect "$3" "$4" "$XWIN" import --hf "bad_$1_$2" --out "ck_$1_$2"
  absent "ck_$1_$2"
  absent "ck_$1_$2.tmp"
}
bad one missing 1 "bad_one_missing/model.safetensors: tensor $T is missing"
bad sharded missing 1 "bad_sharded_missing/model.safetensors.index.json: tensor $T is missing"
bad sharded missing_in_shard 1 \
  "bad_sharded_missing_in_shard/model-00003-of-00003.safetensors: tensor $T is missing"
bad one shape 1 "bad_one_shape/model.safetensors: tensor $T has shape \[48, 128\] but the model config needs \[128, 48\]"
bad sharded shape 1 "model-00003-of-00003.safetensors: tensor $T has shape \[48, 128\]"
bad one int32 1 "bad_one_int32/model.safetensors: tensor $T has dtype I32; xwin needs a floating-point"
bad sharded int32 1 "model-00003-of-00003.safetensors: tensor $T has dtype I32"
bad one unexpected 1 "model.safetensors: unexpected tensor model.layers.0.self_attn.q_proj.bias"
bad one trunc_header 1 \
  "bad_one_trunc_header/model.safetensors: truncated safetensors file: the header declares [0-9]+ bytes but only [0-9]+ follow"
bad one trunc_data 1 \
  "bad_one_trunc_data/model.safetensors: truncated safetensors file: tensor lm_head.weight needs bytes \[[0-9]+, [0-9]+\) of the data section but only [0-9]+ are present"
bad sharded trunc_data 1 "model-00003-of-00003.safetensors: truncated safetensors file: tensor"
bad sharded missing_shard 1 \
  "bad_sharded_missing_shard/model.safetensors.index.json: tensor .* is in shard .*model-00003-of-00003.safetensors, which does not exist"
bad one config_missing 1 "bad_one_config_missing/config.json: missing key 'hidden_size'"
bad one config_bad_json 1 "bad_one_config_bad_json/config.json: not valid JSON"
bad one config_rope_scaling 1 "config.json: rope_scaling = .* is not supported"
mkdir -p nomodel empty && cp one/config.json nomodel/ && cp one/config.json empty/
: >empty/model.safetensors
expect 1 "empty/model.safetensors: truncated safetensors file \(0 bytes" \
  "$XWIN" import --hf empty --out ck_empty
expect 1 "nomodel: no model.safetensors or model.safetensors.index.json" \
  "$XWIN" import --hf nomodel --out ck_nomodel
expect 1 "no_such_dir: not a directory" "$XWIN" import --hf no_such_dir --out ck_x
expect 2 "xwin import needs --out" "$XWIN" import --hf one

"$XWIN" import --hf one --out ck >/dev/null || exit 1
expect 2 "--dtype 'fp8' is not one of fp32, bf16, fp16" "$XWIN" export --ckpt ck --hf o --dtype fp8
expect 2 "--max_shard_size = '5XB' is not a size" \
  "$XWIN" export --ckpt ck --hf o --max_shard_size 5XB
expect 1 "missing.model: no such tokenizer file" \
  "$XWIN" export --ckpt ck --hf o --tokenizer missing.model
absent o
absent o.tmp
mkdir -p precious && echo keep >precious/notes.txt
expect 1 "precious: exists and is not a model directory" "$XWIN" export --ckpt ck --hf precious
[ "$(cat precious/notes.txt)" = keep ] || { echo "FAIL: precious/ was touched"; failures=$((failures + 1)); }
expect 1 "nockpt: not a checkpoint" "$XWIN" export --ckpt nockpt --hf o
absent o

[ "$failures" = 0 ] || { echo "hf_bad_input: $failures failure(s)"; exit 1; }
echo "hf_bad_input: ok"
