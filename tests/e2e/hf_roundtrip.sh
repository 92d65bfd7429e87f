#!/usr/bin/env bash
# Hugging Face round trips: HF -> xwin import -> xwin export -> HF gives bit-identical tensors
# (fp32; bf16 and fp16 through exact fp32 and back, every 16-bit pattern included), sharded and
# single-file, tied and untied, GQA and default-MHA configs; the value head flag, tokenizer
# copies and atomic replacement of the output directory. The HF directories are made and checked
# by validation/hf_tools.py (its own safetensors reader/writer, not xwin's).
# Usage: hf_roundtrip.sh XWIN PYTHON SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1
PY=$2
TOOLS=$3/validation/hf_tools.py
WORK=$4
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
hf() { "$PY" "$TOOLS" "$@"; }
step() { echo "== $*"; }

# roundtrip NAME DTYPE MAKE-FLAGS...: make, import, export in DTYPE (bit-identical to the
# source) and in fp32 (the exact fp32 value of every source element).
roundtrip() {
  local name=$1 dtype=$2
  shift 2
  step "$name: make --dtype $dtype $*"
  hf make "src_$name" --dtype "$dtype" "$@"
  "$XWIN" import --hf "src_$name" --out "ck_$name"
  [ ! -e "ck_$name.tmp" ] || { echo "FAIL: ck_$name.tmp left behind"; exit 1; }
  "$XWIN" export --ckpt "ck_$name" --hf "out_$name" --dtype "$dtype" --max_shard_size 30KB
  hf compare "src_$name" "out_$name" --max-shard 30000 --min-files 2
  "$XWIN" export --ckpt "ck_$name" --hf "f32_$name/" --dtype fp32
  hf compare "src_$name" "f32_$name" --widen
}

roundtrip fp32 fp32 --inv-freq
roundtrip fp32_bits fp32 --all-bits --shards 3
roundtrip bf16 bf16 --shards 3 --tied
roundtrip bf16_bits bf16 --all-bits --shards 2
roundtrip fp16 fp16 --mha
roundtrip fp16_bits fp16 --all-bits --tied
step "fp32 -> bf16/fp16 export rounds to nearest even (numpy and torch as references), with"
step "overflow to inf, subnormals and NaNs, on random fp32 bit patterns"
"$XWIN" export --ckpt ck_fp32_bits --hf bf16_of_fp32 --dtype bf16
hf compare src_fp32_bits bf16_of_fp32 --narrow
"$XWIN" export --ckpt ck_fp32_bits --hf fp16_of_fp32 --dtype fp16
hf compare src_fp32_bits fp16_of_fp32 --narrow
grep -q '"num_key_value_heads": 4' out_fp16/config.json
grep -q '"torch_dtype": "bfloat16"' out_bf16/config.json
[ -f out_fp32/model.safetensors.index.json ] && [ -f f32_fp32/model.safetensors ]

step "re-export replaces a previous export; a second round trip is still identical"
"$XWIN" import --hf out_bf16 --out ck_bf16_again
"$XWIN" export --ckpt ck_bf16_again --hf out_bf16 --dtype bf16
hf compare src_bf16 out_bf16

step "value head: skipped with a warning, or exported with --value_head; import skips it"
"$XWIN" init --model.vocab_size 97 --model.d_model 48 --model.n_layers 1 --model.n_heads 4 \
  --model.n_kv_heads 2 --model.d_ff 64 --model.max_seq_len 32 --model.value_head true \
  --out ck_rm >/dev/null
"$XWIN" export --ckpt ck_rm --hf rm_plain 2>&1 | tee log.txt
grep -q "warning: skipping value_head.weight and value_head.bias" log.txt
"$XWIN" export --ckpt ck_rm --hf rm_vh --value_head
"$XWIN" import --hf rm_vh --out ck_rm_lm 2>&1 | tee log.txt
grep -q "skipping value_head.weight" log.txt
grep -q '"value_head": false' ck_rm_lm/index.json
"$XWIN" export --ckpt ck_rm_lm --hf rm_lm
hf compare rm_plain rm_lm
hf compare rm_vh rm_plain
if hf compare rm_vh rm_lm --value-head >cmp.txt; then echo "FAIL: rm_vh has no value head"; exit 1; fi
grep -q "missing \['value_head.bias', 'value_head.weight'\]" cmp.txt

step "tokenizer files are copied (a file, or a folder's tokenizer files)"
mkdir -p tok && printf 'sentencepiece bytes' >tok/tokenizer.model
printf '{"add_bos_token": true}' >tok/tokenizer_config.json
printf 'unrelated' >tok/notes.txt
"$XWIN" export --ckpt ck_fp32 --hf with_tok_file --tokenizer tok/tokenizer.model
cmp tok/tokenizer.model with_tok_file/tokenizer.model
"$XWIN" export --ckpt ck_fp32 --hf with_tok_dir --tokenizer tok
cmp tok/tokenizer_config.json with_tok_dir/tokenizer_config.json
[ -f with_tok_dir/tokenizer.model ] && [ ! -e with_tok_dir/notes.txt ]

echo "hf_roundtrip: ok"
