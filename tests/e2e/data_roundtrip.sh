#!/usr/bin/env bash
# xwin data: JSONL -> HDF5 -> JSONL gives back the same conversations, pairs, prompts and
# Xwin-Set records; SFT ids and loss masks equal SentencePiece's ids of the template string;
# 2 and 3 ranks write the same dataset as 1; the overlong policies count what they do.
# Usage: data_roundtrip.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
DATA=${XWIN_SHARED_DATA:-$SRC/../shared/data}
TOK=$DATA/llama2_tokenizer/tokenizer.model
[ -f "$TOK" ] || { echo "skip: no Llama-2 tokenizer at $TOK"; exit 0; }
PY=/usr/bin/python3 TOOLS=$SRC/tests/e2e/data_tools.py
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
printf '[tokenizer]\nmodel = %s\n' "$TOK" >deck.ini

$PY "$TOOLS" make . 200
"$XWIN" data sft --config deck.ini --in sft.jsonl --out sft.h5
"$XWIN" data sft --config deck.ini --in sft_openai.jsonl --out sft_openai.h5
"$XWIN" data pairs --config deck.ini --in pairs.jsonl --out pairs.h5
"$XWIN" data prompts --config deck.ini --in prompts.jsonl --out prompts.h5
"$XWIN" data xwin_set --config deck.ini --in xwin_set.jsonl --out xwin_set.h5
for kind in sft pairs prompts xwin_set; do
  "$XWIN" data export --config deck.ini --in $kind.h5 --out ${kind}_out.jsonl
done
"$XWIN" data export --config deck.ini --in sft_openai.h5 --out sft_openai_out.jsonl --format openai
grep -q '"messages"' sft_openai_out.jsonl
$PY "$TOOLS" roundtrip .
$PY "$TOOLS" ids "$TOK" sft.h5 sft.jsonl

# Every rank converts a share and all write one file: the same file as one rank writes.
timeout 120 mpiexec -n 2 "$XWIN" data sft --config deck.ini --in sft.jsonl --out sft_2.h5
timeout 120 mpiexec -n 3 "$XWIN" data xwin_set --config deck.ini --in xwin_set.jsonl \
  --out xwin_set_3.h5
timeout 120 mpiexec -n 2 "$XWIN" data pairs --config deck.ini --in pairs.jsonl --out pairs_2.h5
$PY "$TOOLS" same sft.h5 sft_2.h5
$PY "$TOOLS" same xwin_set.h5 xwin_set_3.h5
$PY "$TOOLS" same pairs.h5 pairs_2.h5

# Overlong records: drop or truncate (prompt cut from the left, reply kept), counted.
"$XWIN" data sft --config deck.ini --in sft.jsonl --out drop.h5 --max_seq_len 96
"$XWIN" data sft --config deck.ini --in sft.jsonl --out trunc.h5 --max_seq_len 96 \
  --overlong truncate
timeout 120 mpiexec -n 2 "$XWIN" data sft --config deck.ini --in sft.jsonl --out trunc_2.h5 \
  --max_seq_len 96 --overlong truncate
$PY "$TOOLS" same trunc.h5 trunc_2.h5
"$XWIN" data pairs --config deck.ini --in pairs.jsonl --out pairs_trunc.h5 --max_seq_len 96 \
  --overlong truncate
"$XWIN" data export --config deck.ini --in trunc.h5 --out trunc_out.jsonl
"$XWIN" data export --config deck.ini --in pairs_trunc.h5 --out pairs_trunc_out.jsonl
$PY - <<'PY'
import h5py, json
full = h5py.File("sft.h5", "r")
lens = full["offsets"][1:] - full["offsets"][:-1]
n_long = int((lens > 96).sum())
assert n_long > 10, n_long
with h5py.File("drop.h5", "r") as f:
    a = f.attrs
    assert (a["n_kept"], a["n_truncated"], a["n_dropped"]) == (200 - n_long, 0, n_long), dict(a)
    assert a["n_records"] == len(f["offsets"]) - 1 == 200 - n_long
with h5py.File("trunc.h5", "r") as f:
    a, off, tok, mask = f.attrs, f["offsets"][:], f["tokens"][:], f["loss_mask"][:]
    assert a["n_kept"] == 200 - n_long and a["n_truncated"] + a["n_dropped"] == n_long, dict(a)
    assert a["n_truncated"] > 0 and a["overlong"] == "truncate"
    n_truncated = int(a["n_truncated"])
    assert ((off[1:] - off[:-1]) <= 96).all()
    # Every record starts with BOS and ends with a masked EOS; the final reply is whole.
    assert (tok[off[:-1]] == 1).all() and (tok[off[1:] - 1] == 2).all()
    assert (mask[off[1:] - 1] == 1).all() and (mask[off[:-1]] == 0).all()
    assert (mask[off[:-1] + 1] == 0).all(), "a kept record starts inside a reply"
# The truncated records' final replies survive the cut.
src = [json.loads(l) for l in open("sft.jsonl")]
out = [json.loads(l) for l in open("trunc_out.jsonl")]
assert len(out) == 200 - n_long + n_truncated
finals = {r["conversations"][-1]["value"] for r in src}
assert all(r["conversations"][-1]["value"] in finals for r in out)
with h5py.File("pairs_trunc.h5", "r") as f:
    a = f.attrs
    assert a["n_truncated"] > 0, dict(a)
    for g in ("chosen", "rejected"):
        n = (f["prompt/offsets"][1:] - f["prompt/offsets"][:-1]) + \
            (f[g + "/offsets"][1:] - f[g + "/offsets"][:-1])
        assert (n <= 96).all()
print(f"overlong: {n_long} of 200 records > 96 tokens; drop and truncate counted")
PY
echo "data_roundtrip: ok"
