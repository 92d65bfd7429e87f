#!/usr/bin/env bash
# Throughput of xwin data sft on 100k synthetic conversations (label bench): records/s of JSON
# parsing, of tokenization + template, and of the HDF5 write, on 1 and 2 ranks. Conversion must
# be limited by tokenization, not by HDF5 writes.
# Usage: data_throughput.sh XWIN SOURCE_DIR WORKDIR [N]
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3 N=${4:-100000}
DATA=${XWIN_SHARED_DATA:-$SRC/../shared/data}
TOK=$DATA/llama2_tokenizer/tokenizer.model
[ -f "$TOK" ] || { echo "skip: no Llama-2 tokenizer at $TOK"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
/usr/bin/python3 "$SRC/tests/e2e/data_tools.py" conversations conv.jsonl "$N" 7
ls -l conv.jsonl
for np in 1 2; do
  mpiexec -n $np "$XWIN" data sft --tokenizer.model "$TOK" --in conv.jsonl --out sft_np$np.h5 |
    tee np$np.log
done
/usr/bin/python3 - <<'PY'
import re
for np in (1, 2):
    line = [l for l in open(f"np{np}.log") if "tokenize + template" in l][0]
    tok_s, tok_rps = map(float, re.search(r"template ([\d.]+) s \(([\d.]+) records/s", line).groups())
    w_s, w_rps = map(float, re.search(r"HDF5 write ([\d.]+) s \(([\d.]+) records/s", line).groups())
    print(f"np={np}: tokenize {tok_rps:.0f} records/s ({tok_s:.1f} s), HDF5 write {w_rps:.0f} "
          f"records/s ({w_s:.2f} s): tokenization is {tok_s / max(w_s, 1e-9):.0f}x the write")
    assert w_s < tok_s, "HDF5 writes, not tokenization, limit the conversion"
PY
