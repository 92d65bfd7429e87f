#!/usr/bin/env bash
# Judge throughput: requests/s of xwin annotate against the local server with 1, 8 and 32
# requests in flight, with no server latency and with 20 ms per reply (an API's latency).
# Input: the first 200 AlpacaEval annotation records, both orders (400 requests per run).
# Usage: judge_throughput.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
source "$SRC/tests/judge/lib.sh"
ANN=$DATA/alpaca_eval/alpaca-7b.alpaca_eval_gpt4.annotations.json
[ -f "$ANN" ] || { echo "skip: no AlpacaEval annotations under $DATA"; exit 0; }
for delay in 0 0.02; do
  start_server "srv$delay" --delay $delay
  for n in 1 8 32; do
    "$XWIN" annotate --in "$ANN" --limit 200 --out "t$delay-$n.jsonl" --judge_url "$URL" \
      --judge_prompts "$PROMPTS" --judge_in_flight $n > "t$delay-$n.out" 2>&1
    rate=$(grep -o '[0-9.]* requests/s' "t$delay-$n.out" | tail -1)
    echo "server latency ${delay}s, $n in flight: $rate"
  done
done
