#!/usr/bin/env bash
# xwin tokenizer train makes a working SentencePiece model from JSONL conversations; encode and
# decode invert each other; a [template] deck section changes the template without code; every
# option of the new phases is documented.
# Usage: data_tokenizer.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
PY=/usr/bin/python3 TOOLS=$SRC/tests/e2e/data_tools.py
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
$PY "$TOOLS" make . 200

"$XWIN" tokenizer train --input sft.jsonl pairs.jsonl --vocab_size 600 --out tok
[ -f tok/tokenizer.model ] && [ -f tok/tokenizer.vocab ] && [ ! -e tok.tmp ]
M=tok/tokenizer.model
ids=$("$XWIN" tokenizer encode --tokenizer.model $M --text "Grüße, café 😀 the water")
text=$("$XWIN" tokenizer decode --tokenizer.model $M --ids "$ids")
[ "$text" = "Grüße, café 😀 the water" ] || { echo "decode(encode(x)) = '$text'"; exit 1; }
$PY - "$M" <<'PY'
import sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
assert sp.vocab_size() == 600 and (sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2)
assert sp.decode(sp.encode("x=1;  def f():\n    return 42")) == "x=1;  def f():\n    return 42"
print("trained tokenizer: 600 pieces, unk/bos/eos 0/1/2, whitespace and newlines kept")
PY

# A different template from a deck: quoted values keep their spaces and JSON escapes ('#' starts
# a comment in a deck, so it is written \u0023).
cat >deck.ini <<EOF
[tokenizer]
model = $M
[template]
name = alpaca_like
system = ""
user_prefix = "\u0023\u0023\u0023 Instruction:\n"
user_suffix = "\n\n"
assistant_prefix = "\u0023\u0023\u0023 Response:\n"
EOF
"$XWIN" data sft --config deck.ini --in sft.jsonl --out sft.h5
"$XWIN" data export --config deck.ini --in sft.h5 --out sft_out.jsonl
"$XWIN" data sft --config deck.ini --in pairs.jsonl --out x.h5 2>/dev/null && exit 1
$PY - <<'PY'
import h5py, json
t = json.loads(h5py.File("sft.h5", "r").attrs["template"])
assert t["name"] == "alpaca_like" and t["user_prefix"] == "### Instruction:\n", t
assert t["assistant_prefix"] == "### Response:\n" and t["system"] == ""
PY
for k in pairs prompts xwin_set; do
  "$XWIN" data ${k} --config deck.ini --in $k.jsonl --out $k.h5
  "$XWIN" data export --config deck.ini --in $k.h5 --out ${k}_out.jsonl
done
# This template has no default system prompt: an empty system turn is the same as none.
$PY "$TOOLS" roundtrip . sft pairs prompts xwin_set --no-system

for phase in "tokenizer train" "tokenizer encode" "tokenizer decode" "data sft" "data pairs" \
  "data prompts" "data xwin_set" "data export"; do
  # shellcheck disable=SC2086
  help=$("$XWIN" $phase --help)
  # An option line with no text after it must be followed by its description (boost wraps
  # long option names onto their own line).
  undocumented=$(printf '%s\n' "$help" | awk '
    want && !/^      +[^ -]/ { print last }
    { want = ($0 ~ /^  --[a-z_.]+( arg( \(=[^)]*\))?)? *$/); last = $0 }
    END { if (want) print last }')
  [ -z "$undocumented" ] || { echo "undocumented in xwin $phase:"; echo "$undocumented"; exit 1; }
done
"$XWIN" data sft --help | grep -q -- '--template.user_prefix arg (="USER: ")'
echo "data_tokenizer: ok"
