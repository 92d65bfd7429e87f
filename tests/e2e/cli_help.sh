#!/usr/bin/env bash
# --help describes every option with its default; --version names the git revision; the deck
# and the command line agree (command line wins).
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
echo "cli_help: ok"
