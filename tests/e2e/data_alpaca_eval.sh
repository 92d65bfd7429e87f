#!/usr/bin/env bash
# The real AlpacaEval GPT-4 annotation file becomes a pairs dataset whose counts match the
# file: 805 records minus the ties with --ties drop, all 805 (ties flagged) with --ties keep;
# every chosen / rejected reply is the output the annotator preferred / did not.
# Usage: data_alpaca_eval.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
DATA=${XWIN_SHARED_DATA:-$SRC/../shared/data}
TOK=$DATA/llama2_tokenizer/tokenizer.model
ANN=$DATA/alpaca_eval/alpaca-7b.alpaca_eval_gpt4.annotations.json
[ -f "$TOK" ] && [ -f "$ANN" ] || { echo "skip: no tokenizer or annotations under $DATA"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
T=(--tokenizer.model "$TOK")
"$XWIN" data pairs "${T[@]}" --in "$ANN" --out drop.h5 --ties drop | tee drop.log
timeout 300 mpiexec -n 2 "$XWIN" data pairs "${T[@]}" --in "$ANN" --out keep.h5 --ties keep
"$XWIN" data export "${T[@]}" --in drop.h5 --out drop.jsonl
"$XWIN" data export "${T[@]}" --in keep.h5 --out keep.jsonl --format openai
ANN="$ANN" /usr/bin/python3 - <<'PY'
import h5py, json, os
ann = json.load(open(os.environ["ANN"]))
ties = [a for a in ann if a["preference"] in (0, 1.5)]
decided = [a for a in ann if a["preference"] in (1, 2)]
assert len(ann) == 805 and len(decided) + len(ties) == 805
for name, n, skipped in (("drop", len(decided), len(ties)), ("keep", 805, 0)):
    with h5py.File(f"{name}.h5", "r") as f:
        a = f.attrs
        assert a["schema"] == "xwin.pairs" and a["n_records"] == n, dict(a)
        assert a["n_skipped"] == skipped and a["n_dropped"] == 0 and a["n_ties"] == len(ties)
        assert len(f["prompt/offsets"]) == len(f["chosen/offsets"]) == n + 1
        assert ("tie" in f) == (name == "keep")
        if name == "keep":
            assert f["tie"][:].sum() == len(ties)
    print(f"{name}: {n} pairs ({skipped} ties skipped) as the file says")
def check(path, records):
    out = [json.loads(l) for l in open(path)]
    assert len(out) == len(records)
    for a, o in zip(records, out):
        turns = o.get("conversations") or o.get("messages")
        assert [t.get("value", t.get("content")) for t in turns] == [a["instruction"]]
        win, lose = ("output_2", "output_1") if a["preference"] == 2 else ("output_1", "output_2")
        assert (o["chosen"], o["rejected"]) == (a[win], a[lose])
        assert o.get("tie", False) == (a["preference"] in (0, 1.5))
check("drop.jsonl", decided)
check("keep.jsonl", ann)
print("data_alpaca_eval: chosen/rejected follow every preference; ok")
PY
grep -q "805 records: 789 kept, 0 truncated, 0 dropped .* 16 skipped" drop.log
