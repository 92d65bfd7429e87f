#!/usr/bin/env bash
# Bad input to xwin data / tokenizer stops with a message naming the file and line (or record)
# and the fix, exits non-zero on every rank, and leaves no output under its final name.
# Usage: data_bad_input.sh XWIN SOURCE_DIR WORKDIR
set -uo pipefail
XWIN=$1 SRC=$2 WORK=$3
DATA=${XWIN_SHARED_DATA:-$SRC/../shared/data}
TOK=$DATA/llama2_tokenizer/tokenizer.model
[ -f "$TOK" ] || { echo "skip: no Llama-2 tokenizer at $TOK"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
failures=0

# expect CODE PATTERN CMD...: CMD exits with CODE, its stderr matches PATTERN (grep -E), and
# the --out it was given (if any) does not exist, nor its .tmp.
expect() {
  local code=$1 pattern=$2 out="" prev=""
  shift 2
  for a in "$@"; do [ "$prev" = --out ] && out=$a; prev=$a; done
  "$@" >out.txt 2>err.txt
  local got=$?
  if [ "$got" != "$code" ] || ! grep -qE -- "$pattern" err.txt; then
    echo "FAIL: $* -> exit $got (want $code), stderr:"
    cat err.txt
    failures=$((failures + 1))
  elif [ -n "$out" ] && { [ -e "$out" ] || [ -e "$out.tmp" ]; }; then
    echo "FAIL: $* left $out or $out.tmp behind"
    failures=$((failures + 1))
  else
    echo "ok: exit $got: $(grep -E -m1 -- "$pattern" err.txt)"
  fi
}

good='{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}'
printf '%s\nnot json\n' "$good" >malformed.jsonl
printf '%s\n{"conversations": [{"from": "human", "value": "Hi"},\n' "$good" >cut.jsonl
printf '%s\n%s\n{"conversations": [{"from": "human", "value": "x"}, {"from": "bot", "value": "y"}]}\n' \
  "$good" "$good" >role.jsonl
printf '{"messages": []}\n' >empty.jsonl
printf '{"messages": [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "q"}]}\n' \
  >assistant_first.jsonl
printf '%s\n{"conversations": [{"from": "human", "value": "caf\xe9"}, {"from": "gpt", "value": "x"}]}\n' \
  "$good" >latin1.jsonl
printf '%s\n%s\n' "$good" '{"conversations": [{"from": "human", "value": "a b c d e f g h i j k l m n o p"}, {"from": "gpt", "value": "ok"}]}' \
  >long.jsonl
printf '{"conversations": [{"from": "human", "value": "q"}]}\n' >ends_user.jsonl
printf '{"prompt": "q", "responses": ["a", "b"], "scores": [1, 2]}\n{"prompt": "q", "responses": ["a"], "scores": [1]}\n' \
  >k.jsonl
printf '{"prompt": "q", "chosen": "a", "rejected": "b", "margin": 1}\n{"prompt": "q", "chosen": "a", "rejected": "b"}\n' \
  >margin.jsonl

T=(--tokenizer.model "$TOK")
expect 1 "malformed.jsonl:2: malformed JSON" "$XWIN" data sft "${T[@]}" --in malformed.jsonl --out o.h5
expect 1 "cut.jsonl:2: malformed JSON" "$XWIN" data sft "${T[@]}" --in cut.jsonl --out o.h5
expect 1 "role.jsonl:3: turn 2 has the unknown role 'bot'; roles are" \
  "$XWIN" data sft "${T[@]}" --in role.jsonl --out o.h5
expect 1 "empty.jsonl:1: the conversation has no turns" \
  "$XWIN" data sft "${T[@]}" --in empty.jsonl --out o.h5
expect 1 "assistant_first.jsonl:1: the conversation starts with the assistant" \
  "$XWIN" data sft "${T[@]}" --in assistant_first.jsonl --out o.h5
expect 1 "latin1.jsonl:2: invalid UTF-8 at byte 51 of the line; re-encode" \
  "$XWIN" data sft "${T[@]}" --in latin1.jsonl --out o.h5
expect 1 "long.jsonl:2: the record has [0-9]+ tokens, more than max_seq_len = 50; raise" \
  "$XWIN" data sft "${T[@]}" --in long.jsonl --out o.h5 --max_seq_len 50 --overlong error
expect 1 "ends_user.jsonl:1: the conversation ends with a user turn" \
  "$XWIN" data sft "${T[@]}" --in ends_user.jsonl --out o.h5
expect 1 "ends_user.jsonl:1: .*must end with a user turn|a pair needs" \
  "$XWIN" data pairs "${T[@]}" --in ends_user.jsonl --out o.h5
expect 1 "k.jsonl:2: the record has 1 responses but earlier ones have 2" \
  "$XWIN" data xwin_set "${T[@]}" --in k.jsonl --out o.h5
expect 1 "margin.jsonl: 1 of 2 pairs give a \"margin\"" \
  "$XWIN" data pairs "${T[@]}" --in margin.jsonl --out o.h5
expect 1 "nosuch.jsonl: cannot open" "$XWIN" data sft "${T[@]}" --in nosuch.jsonl --out o.h5
expect 2 "needs --tokenizer.model" "$XWIN" data sft --in long.jsonl --out o.h5
expect 2 "assistant_prefix '  ' has no visible text" \
  "$XWIN" data sft "${T[@]}" --in long.jsonl --out o.h5 --template.assistant_prefix '"  "'
printf '[template]\nuser_prefix = "### Human: "\n' >hash.ini
expect 2 "template.user_prefix = \" has no closing quote; in a deck '#' starts a comment" \
  "$XWIN" data sft "${T[@]}" --config hash.ini --in long.jsonl --out o.h5
expect 2 "overlong = 'sometimes'" \
  "$XWIN" data sft "${T[@]}" --in long.jsonl --out o.h5 --overlong sometimes

# A dataset from another tokenizer is refused, by export and by sft.
printf 'hello world, this is a tiny corpus\nfor a tiny tokenizer\n' >corpus.txt
"$XWIN" tokenizer train --input corpus.txt --vocab_size 300 --out other_tok >/dev/null ||
  { echo "FAIL: tokenizer train"; exit 1; }
"$XWIN" data sft --tokenizer.model other_tok/tokenizer.model --in long.jsonl --out other.h5 \
  >/dev/null || { echo "FAIL: data sft with the trained tokenizer"; exit 1; }
expect 1 "other.h5: made with another tokenizer .*convert the data again with --tokenizer.model" \
  "$XWIN" data export "${T[@]}" --in other.h5 --out o.jsonl
expect 1 "other.h5: made with another tokenizer" "$XWIN" sft "${T[@]}" --data other.h5 --out r \
  --model.vocab_size 300 --model.d_model 32 --model.n_layers 1 --model.max_seq_len 32
# Datasets of the wrong kind, and a truncated HDF5 file.
printf '{"prompt": "q", "chosen": "a", "rejected": "b"}\n' >pair.jsonl
"$XWIN" data pairs "${T[@]}" --in pair.jsonl --out p.h5 >/dev/null || { echo "FAIL: pairs"; exit 1; }
"$XWIN" data sft "${T[@]}" --in long.jsonl --out sft.h5 >/dev/null || { echo "FAIL: sft"; exit 1; }
expect 1 "p.h5: this is an xwin.pairs dataset, but a token dataset" "$XWIN" sft --data p.h5 \
  --out r --model.vocab_size 32000 --model.d_model 32 --model.n_layers 1 --model.max_seq_len 32
head -c 3000 sft.h5 >trunc.h5
expect 1 "trunc.h5: cannot open as HDF5 \(missing, truncated" \
  "$XWIN" data export "${T[@]}" --in trunc.h5 --out o.jsonl
expect 1 "trunc.h5: cannot open as HDF5" "$XWIN" sft --data trunc.h5 --out r \
  --model.vocab_size 32000 --model.d_model 32 --model.n_layers 1 --model.max_seq_len 32

# An existing output survives a failed conversion untouched.
cp sft.h5 keep.h5 && sum_before=$(md5sum <keep.h5)
"$XWIN" data sft "${T[@]}" --in malformed.jsonl --out keep.h5 >/dev/null 2>&1
got=$?
if [ $got = 1 ] && [ "$(md5sum <keep.h5)" = "$sum_before" ] && [ ! -e keep.h5.tmp ]; then
  echo "ok: a failed conversion left the existing keep.h5 untouched"
else
  echo "FAIL: a failed conversion (exit $got) changed keep.h5 or left keep.h5.tmp"
  failures=$((failures + 1))
fi

# Several ranks: the rank holding the bad line reports it, every rank stops, nothing hangs.
for i in $(seq 1 40); do echo "$good"; done >mpi.jsonl
printf '{"conversations": [{"from": "gpt", "value": "first"}]}\n' >>mpi.jsonl
timeout 60 mpiexec -n 2 "$XWIN" data sft "${T[@]}" --in mpi.jsonl --out mpi.h5 >out.txt 2>err.txt
got=$?
if [ $got = 0 ] || [ $got = 124 ] || ! grep -q "mpi.jsonl:41: the conversation starts with the assistant" err.txt ||
  [ -e mpi.h5 ]; then
  echo "FAIL: mpiexec -n 2 data sft on a bad last line -> exit $got"; cat err.txt
  failures=$((failures + 1))
else
  echo "ok: mpiexec -n 2 -> exit $got: $(grep -m1 mpi.jsonl:41 err.txt)"
fi

echo "data_bad_input: $failures failure(s)"
[ $failures = 0 ]
