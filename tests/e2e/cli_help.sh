#!/usr/bin/env bash
# --help describes every option with its default; --version names the git revision; the deck
# and the command line agree (command line wins); OpenMP oversubscription is warned about.
set -euo pipefail
XWIN=$1
version=$("$XWIN" --version)
grep -qE '^xwin [0-9]+\.[0-9]+\.[0-9]+ \(git ([0-9a-f]+|unknown)\)' <<<"$version"
top_help=$("$XWIN" --help)
grep -q 'sft' <<<"$top_help"
for phase in init sft logprobs dump "data tokens" "data synth" import export "ckpt info"; do
  # shellcheck disable=SC2086
  help=$("$XWIN" $phase --help)
  # Every option line of the help text is documented (has text after the option name).
  undocumented=$(printf '%s\n' "$help" | grep -E '^  --[a-z_.]+( arg( \(=[^)]*\))?)? *$' || true)
  [ -z "$undocumented" ] || { echo "undocumented options in xwin $phase --help:"; echo "$undocumented"; exit 1; }
done
sft_help=$("$XWIN" sft --help)  # captured first: grep -q on a pipe would SIGPIPE the writer
grep -q -- '--train.lr arg (=0.0003)' <<<"$sft_help"
grep -q -- '--model.n_kv_heads arg (=4)' <<<"$sft_help"
grep -q -- '--save_every arg (=0)' <<<"$sft_help"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf '[model]\nd_model = 48\nn_heads = 4\n[init]\nout = %s/deck_ck\nseed = 5\n' "$WORK" >"$WORK/d.ini"
"$XWIN" init --config "$WORK/d.ini" --model.n_heads 6 --model.n_kv_heads 2 >/dev/null
grep -q '"d_model": 48' "$WORK/deck_ck/index.json"
grep -q '"n_heads": 6' "$WORK/deck_ck/index.json"
# OpenMP threads that oversubscribe their CPUs: one warning on stderr naming the fix, and the
# run goes on; none for threads that fit or a passive wait policy.
T=(init --model.d_model 32 --model.n_heads 2 --model.n_kv_heads 2 --model.n_layers 1
   --model.d_ff 64 --model.vocab_size 12)
err=$(OMP_NUM_THREADS=2 taskset -c 0 "$XWIN" "${T[@]}" --out "$WORK/t1" 2>&1 >/dev/null)
grep -q 'warning: 2 OpenMP threads per rank, but this rank may run on 1 CPU: .*OMP_NUM_THREADS=1 ' \
  <<<"$err" || { echo "no oversubscription warning: $err"; exit 1; }
[ "$(grep -c warning <<<"$err")" = 1 ] && [ -f "$WORK/t1/index.json" ]
for env in "OMP_NUM_THREADS=1" "OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive"; do
  # shellcheck disable=SC2086
  err=$(env $env taskset -c 0 "$XWIN" "${T[@]}" --out "$WORK/t2" 2>&1 >/dev/null)
  [ -z "$err" ] || { echo "unexpected output with $env: $err"; exit 1; }
done
echo "cli_help: ok"
