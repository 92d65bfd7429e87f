#!/usr/bin/env bash
# xwin eval --suite alpaca-eval: a tiny random model answers the first AlpacaEval instructions
# into model_outputs.json (AlpacaEval's format), the scripted judge compares each answer with
# text-davinci-003's in both orders into AlpacaEval annotations, and the printed / CSV win rate
# is the one the annotations imply. Offline: --judge rm:CKPT with a reward model sends no
# request. The real GPT-4 annotations of alpaca-7b give AlpacaEval's published 26.46%.
# Preempted with SIGUSR1 on 2 ranks while a request is held, it exits 75 on every rank with the
# replies journaled, and the rerun asks only what was never asked and gives the same annotations.
# Usage: judge_eval_alpaca.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
source "$SRC/tests/judge/lib.sh"
BASE=$DATA/alpaca_eval/text_davinci_003.model_outputs.json
ANN=$DATA/alpaca_eval/alpaca-7b.alpaca_eval_gpt4.annotations.json
[ -f "$BASE" ] && [ -f "$ANN" ] || { echo "skip: no AlpacaEval files under $DATA"; exit 0; }
M=(--model.vocab_size 32000 --model.d_model 32 --model.n_layers 1 --model.n_heads 2
   --model.n_kv_heads 2 --model.d_ff 64 --model.max_seq_len 512)
"$XWIN" init --out tiny "${M[@]}" > /dev/null
"$XWIN" init --out rm "${M[@]}" --model.value_head true --seed 7 > /dev/null
start_server srv
J=(--judge_url "$URL" --judge_model test-judge --judge_prompts "$PROMPTS")
"$XWIN" eval --suite alpaca-eval --ckpt tiny --reference_outputs "$BASE" --limit 4 \
  --max_new_tokens 16 --tokenizer.model "$TOK" --out ae "${J[@]}" > run1.out 2>&1 ||
  { cat run1.out; fail "eval alpaca-eval failed"; }
cat run1.out
[ "$(requests srv)" = 8 ] || fail "expected 8 judge requests (4 x 2 orders), got $(requests srv)"
"$PY" - <<'PY'
import csv, json, math, os, re
base = json.load(open(os.environ["DATA"] + "/alpaca_eval/text_davinci_003.model_outputs.json"))[:4]
outs = json.load(open("ae/model_outputs.json"))
assert len(outs) == 4
for o, b in zip(outs, base):
    assert set(o) == {"dataset", "instruction", "output", "generator"} and o["generator"] == "tiny"
    assert o["instruction"] == b["instruction"] and o["dataset"] == b["dataset"]
ann = json.load(open("ae/annotations.json"))
prefs = []
for a, o, b in zip(ann, outs, base):
    assert a["output_1"] == b["output"] and a["output_2"] == o["output"]
    assert a["generator_1"] == "text_davinci_003" and a["generator_2"] == "tiny"
    assert a["annotator"] == "http:test-judge"
    want = 2 if len(o["output"]) > len(b["output"]) else 1 if len(o["output"]) < len(b["output"]) else 1.5
    assert a["preference"] == want, (a["preference"], want)
    prefs.append(a["preference"] - 1)
wr = 100 * sum(prefs) / len(prefs)
row = list(csv.DictReader(open("ae/leaderboard.csv")))[0]
assert abs(float(row["win_rate"]) - wr) < 1e-9 and int(row["n_total"]) == 4, row
assert re.search(r"win rate %.2f%%" % wr, open("run1.out").read())
print("alpaca-eval: model_outputs, annotations, win rate: ok (%.2f%%)" % wr)
PY

# Offline: the reward model judges the same outputs; no request reaches the server.
"$XWIN" eval --suite alpaca-eval --judge rm:rm --outputs ae/model_outputs.json \
  --reference_outputs "$BASE" --limit 4 --tokenizer.model "$TOK" --out ae_rm > run2.out 2>&1 ||
  { cat run2.out; fail "rm judge failed"; }
cat run2.out
[ "$(requests srv)" = 8 ] || fail "the rm judge sent requests"
"$PY" - <<'PY'
import json
ann = json.load(open("ae_rm/annotations.json"))
assert len(ann) == 4 and all(a["annotator"] == "rm:rm" and a["preference"] in (1, 2, 1.5) for a in ann)
PY
grep -q "win rate" run2.out

# The real GPT-4 annotations: AlpacaEval's published win rate of alpaca-7b.
"$XWIN" eval --suite alpaca-eval --annotations "$ANN" --out real > run3.out 2>&1
cat run3.out
"$PY" - <<'PY'
import json, math, os
ann = json.load(open(os.environ["DATA"] + "/alpaca_eval/alpaca-7b.alpaca_eval_gpt4.annotations.json"))
x = [(1.5 if a["preference"] == 0 else a["preference"]) - 1 for a in ann]
m = sum(x) / len(x)
se = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1) / len(x))
line = "win rate %.2f%% +- %.2f" % (100 * m, 100 * se)
assert line in open("run3.out").read(), line
assert "%.2f" % (100 * m) == "26.46"
print("alpaca-eval: published alpaca-7b win rate reproduced:", line)
PY

# Preempted (SIGUSR1, as the Slurm templates forward it) on 2 ranks while rank 0 judges the
# first run's outputs, one request at a time, the third held by the server: nothing new is sent,
# the held one finishes into the journal once released, every rank exits 75 and no annotations
# are written. The rerun sends only the 5 requests never asked and gives run 1's annotations.
touch hang
start_server pre --hang_after 2 --hang_flag "$WORK/hang"
P=(eval --suite alpaca-eval --outputs ae/model_outputs.json --reference_outputs "$BASE" --limit 4
   --tokenizer.model "$TOK" --out aepre --judge_url "$URL" --judge_model test-judge
   --judge_prompts "$PROMPTS" --judge_in_flight 1)
preempt_judging pre pre1.out mpiexec -n 2 "$XWIN" "${P[@]}"
grep -q "eval: preempted: " pre1.out || { cat pre1.out; fail "no preemption message from eval"; }
[ ! -e aepre/annotations.json ] || fail "a preempted eval wrote annotations"
[ "$(grep -c . aepre/judge_journal.jsonl)" = 3 ] || fail "the journal does not hold the 3 replies"
settle pre
"$XWIN" "${P[@]}" > pre2.out 2>&1 || { cat pre2.out; fail "rerun after preemption failed"; }
[ "$(requests pre)" = 8 ] || fail "the rerun sent $(( $(requests pre) - 3 )) requests, want 5"
"$PY" -c "
import json
key = lambda f: [(a['instruction'], a['output_1'], a['output_2'], a['preference']) for a in json.load(open(f))]
assert key('aepre/annotations.json') == key('ae/annotations.json')"
echo "judge_eval_alpaca: ok"
