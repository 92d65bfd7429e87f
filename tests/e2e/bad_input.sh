#!/usr/bin/env bash
# Bad input stops with a clear message and a non-zero exit, on one rank and on every rank of an
# MPI run. Usage: bad_input.sh XWIN WORKDIR
set -uo pipefail
XWIN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
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

SMALL=(--model.vocab_size 50 --model.d_model 32 --model.n_layers 1 --model.n_heads 4
       --model.d_ff 64 --model.max_seq_len 16)
"$XWIN" init "${SMALL[@]}" --out ck >/dev/null || { echo "FAIL: init"; exit 1; }
printf '{"tokens":[1,2,3,4],"loss_mask":[0,0,1,1]}\n{"tokens":[5,6,7]}\n' >mixed.jsonl
printf '{"tokens":[1,2,3,4],"loss_mask":[0,0,1,1]}\n{"tokens":[1,2,99],"loss_mask":[0,1,1]}\n' >oov.jsonl
printf '{"tokens":[1,2,3,4],"loss_mask":[0,0,1,1]}\nnot json\n' >broken.jsonl
"$XWIN" data tokens --in oov.jsonl --out oov.h5 >/dev/null || { echo "FAIL: data tokens"; exit 1; }

expect 2 "unknown phase 'frobnicate'" "$XWIN" frobnicate
expect 2 "unrecognised option '--no_such_option'" "$XWIN" sft --no-such-option 3
expect 2 "missing.ini: cannot open the deck" "$XWIN" sft --config missing.ini
printf '[model]\nd_model = 64\nbogus_key = 1\n' >bad_key.ini
expect 2 "bad_key.ini: unknown key 'bogus_key' in section \[model\]" "$XWIN" sft --config bad_key.ini
# xwin pipeline: bad settings stop before anything is written.
expect 2 "--sft_noise_kind sloppy: use hedged, unhelpful, lazy or scattered" "$XWIN" pipeline --run_dir pl --sft_noise_kind sloppy
expect 2 "--stage train: unknown stage" "$XWIN" pipeline --run_dir pl --stage train
expect 2 "--n_rl must be positive" "$XWIN" pipeline --run_dir pl --n_rl 0
expect 2 "--noisy_families: no task family 'cout'" "$XWIN" pipeline --run_dir pl --noisy_families "add cout"
expect 2 "--noisy_share must be in \\[0, 1\\)" "$XWIN" pipeline --run_dir pl --noisy_share 1
expect 2 "--set_temperature must be > 0" "$XWIN" pipeline --run_dir pl --set_temperature 0
[ ! -e pl ] || { echo "FAIL: a refused pipeline wrote pl/"; failures=$((failures + 1)); }
expect 1 "stage prepare has not finished in pl2" "$XWIN" pipeline --run_dir pl2 --stage rm
# Demonstrations longer than the model's sequence limit: the error names the record and the
# pipeline's own option, and the rerun with a longer limit finishes the stage.
expect 1 "from xwin pipeline: raise --model.max_seq_len" \
  "$XWIN" pipeline --run_dir pl3 --families format --n_sft 200 --model.max_seq_len 40 --stage prepare
grep -qE "sft.jsonl:[0-9]+: the record has [0-9]+ tokens" err.txt ||
  { echo "FAIL: the error does not name the record"; failures=$((failures + 1)); }
"$XWIN" pipeline --run_dir pl3 --families format --n_sft 200 --model.max_seq_len 200 \
  --stage prepare >out.txt 2>&1 && [ -e pl3/stages/prepare.done ] ||
  { echo "FAIL: the prepare rerun with a longer max_seq_len:"; cat out.txt; failures=$((failures + 1)); }
expect 1 "x.model: cannot load as a SentencePiece model" "$XWIN" eval --suite tasks --ckpt ck --tokenizer.model x.model --tasks none.jsonl
printf '[nosuch]\nx = 1\n' >bad_section.ini
expect 2 "bad_section.ini: unknown section \[nosuch\]" "$XWIN" init --config bad_section.ini
printf 'd_model = 64\n' >no_section.ini
expect 2 "outside any section" "$XWIN" init --config no_section.ini
printf '[model]\nd_model = sixty\n' >bad_value.ini
expect 2 "bad_value.ini: .*d_model" "$XWIN" init --config bad_value.ini --out x
expect 2 "d_model = 30 is not divisible by model.n_heads = 4" \
  "$XWIN" init --model.d_model 30 --model.n_heads 4 --out x
expect 2 "n_heads = 6 is not a multiple of model.n_kv_heads = 4" \
  "$XWIN" init --model.d_model 48 --model.n_heads 6 --model.n_kv_heads 4 --out x
expect 2 "batch_size = 6 is not a multiple of train.micro_batch_size = 4" \
  "$XWIN" sft --data oov.h5 --out r --train.batch_size 6 --train.micro_batch_size 4
expect 2 "needs --out" "$XWIN" init
expect 2 "contradictory options: --init ck holds the model" \
  "$XWIN" sft --init ck --model.d_model 64 --data oov.h5 --out r
expect 1 "oov.h5: record 1 holds token id 99 outside the model's vocabulary \[0, 50\)" \
  "$XWIN" sft --init ck --data oov.h5 --out r --train.steps 1
expect 1 "mixed.jsonl: some records have loss_mask and some do not" \
  "$XWIN" data tokens --in mixed.jsonl --out mixed.h5
expect 1 "broken.jsonl:2: not a" "$XWIN" data tokens --in broken.jsonl --out broken.h5
[ -e broken.h5 ] && { echo "FAIL: broken.h5 was written"; failures=$((failures + 1)); }
expect 1 "nockpt: not a checkpoint \(no index.json\)" \
  "$XWIN" logprobs --ckpt nockpt --data oov.h5 --out lp.h5
# A checkpoint whose stored shapes disagree with its config.
cp -r ck ck_bad
/usr/bin/python3 - <<'PY' || { echo "FAIL: could not damage the checkpoint"; exit 1; }
import h5py, numpy as np
with h5py.File("ck_bad/shard-pp0-tp0.h5", "r+") as f:
    del f["params/model.norm.weight"]
    f["params/model.norm.weight"] = np.ones(7, dtype=np.float32)
PY
expect 1 "dataset /params/model.norm.weight has shape \[7\] but the model config needs \[32\]" \
  "$XWIN" logprobs --ckpt ck_bad --data oov.h5 --out lp.h5
head -c 2000 ck/shard-pp0-tp0.h5 >trunc.h5
mkdir -p ck_trunc && cp ck/index.json ck_trunc/ && cp trunc.h5 ck_trunc/shard-pp0-tp0.h5
expect 1 "shard-pp0-tp0.h5: cannot open as HDF5" \
  "$XWIN" logprobs --ckpt ck_trunc --data oov.h5 --out lp.h5

# Every rank of an MPI run exits non-zero, and nothing hangs.
for case in usage runtime; do
  if [ $case = usage ]; then args=(init --model.d_model 30 --out x); else
    args=(sft --init ck --data oov.h5 --out r); fi
  timeout 60 mpiexec -n 2 --output-filename mpi_$case "$XWIN" "${args[@]}" >/dev/null 2>&1
  got=$?
  if [ $got = 0 ] || [ $got = 124 ]; then
    echo "FAIL: mpiexec -n 2 xwin ${args[*]} -> exit $got"
    failures=$((failures + 1))
  else
    echo "ok: mpiexec -n 2 xwin ${args[*]} -> exit $got"
  fi
done

echo "bad_input: $failures failure(s)"
[ $failures = 0 ]
