#!/usr/bin/env bash
# xwin eval --suite mt-bench on a tiny random model with the Llama-2 tokenizer: answers to the
# first MT-bench questions (two turns, the chat template, FastChat's category temperatures) in
# FastChat's model_answer format, graded by the scripted judge with single-v1 and
# single-v1-multi-turn into FastChat's judgment format; printed scores match the judgments; two
# ranks give the same answers as one; a rerun regenerates the same answers and sends no request
# (journal); GPT-4's reference answers
# judged as a model exercise the -math prompts with references; a math question without
# --reference fails clearly; preempted with SIGUSR1 on 2 ranks, it exits 75 and reruns from the
# journal to the same judgments.
# Usage: judge_eval_mt_bench.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
source "$SRC/tests/judge/lib.sh"
Q=$DATA/mt_bench/question.jsonl REF=$DATA/mt_bench/reference_answer_gpt-4.jsonl
"$XWIN" init --out tiny --model.vocab_size 32000 --model.d_model 32 --model.n_layers 1 \
  --model.n_heads 2 --model.n_kv_heads 2 --model.d_ff 64 --model.max_seq_len 512 > /dev/null
start_server srv
J=(--judge_url "$URL" --judge_model test-judge --judge_prompts "$PROMPTS" --judge_backoff 0.05)
E=(eval --suite mt-bench --questions "$Q" --limit 3 --max_new_tokens 16 --batch 4
   --tokenizer.model "$TOK" --ckpt tiny)
"$XWIN" "${E[@]}" --out mt "${J[@]}" > run1.out 2>&1 || { cat run1.out; fail "eval mt-bench failed"; }
cat run1.out
[ "$(requests srv)" = 6 ] || fail "expected 6 judge requests, got $(requests srv)"
"$PY" - <<'PY'
import json, re
ans = [json.loads(l) for l in open("mt/model_answer/tiny.jsonl")]
assert [a["question_id"] for a in ans] == [81, 82, 83]
for a in ans:
    assert set(a) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}, a.keys()
    assert a["model_id"] == "tiny" and len(a["answer_id"]) == 22
    assert len(a["choices"]) == 1 and a["choices"][0]["index"] == 0
    assert len(a["choices"][0]["turns"]) == 2 and all(isinstance(t, str) for t in a["choices"][0]["turns"])
turns = {a["question_id"]: a["choices"][0]["turns"] for a in ans}
js = [json.loads(l) for l in open("mt/model_judgment/test-judge_single.jsonl")]
assert len(js) == 6
qs = {q["question_id"]: q for q in map(json.loads, open("%s/mt_bench/question.jsonl" % __import__("os").environ["DATA"]))}
for j in js:
    assert set(j) == {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"}
    t = j["turn"]
    assert j["model"] == "tiny"
    assert j["judge"] == ["test-judge", "single-v1" if t == 1 else "single-v1-multi-turn"], j["judge"]
    assert qs[j["question_id"]]["turns"][t - 1] in j["user_prompt"]
    assert j["score"] == 1 + len(turns[j["question_id"]][t - 1]) % 10, (j["score"], turns)
mean = sum(j["score"] for j in js) / len(js)
out = open("run1.out").read()
assert re.search(r"overall %.3f \(6 ratings, 0 failed\)" % mean, out), mean
scores = json.load(open("mt/mt_bench_scores.json"))
assert abs(scores["overall"]["score"] - mean) < 1e-9 and scores["by_category"]["writing"]["n"] == 6
print("mt-bench: FastChat answer and judgment files, scores: ok")
PY
# Two ranks share the questions out and gather the answers: the same answers as one rank.
timeout 120 mpiexec -n 2 "$XWIN" "${E[@]}" --out mt2 --judge none > run_np2.out 2>&1 || { cat run_np2.out; fail "2 ranks failed"; }
cmp <("$PY" -c "import json,sys; [print(json.dumps(json.loads(l)['choices'])) for l in open('mt/model_answer/tiny.jsonl')]") \
    <("$PY" -c "import json,sys; [print(json.dumps(json.loads(l)['choices'])) for l in open('mt2/model_answer/tiny.jsonl')]") ||
  fail "2 ranks gave other answers than 1 rank"

# Same seed, same answers, same requests: all from the journal.
cp mt/model_answer/tiny.jsonl answers1.jsonl
"$XWIN" "${E[@]}" --out mt "${J[@]}" > run2.out 2>&1 || { cat run2.out; fail "rerun failed"; }
[ "$(requests srv)" = 6 ] || fail "the rerun sent $(( $(requests srv) - 6 )) requests, want 0"
"$PY" -c "
import json
a = [json.loads(l) for l in open('answers1.jsonl')]; b = [json.loads(l) for l in open('mt/model_answer/tiny.jsonl')]
assert [x['choices'] for x in a] == [x['choices'] for x in b], 'answers are not reproducible'"

# GPT-4's reference answers judged as a model's: the math prompts with reference answers.
"$XWIN" eval --suite mt-bench --questions "$Q" --categories math --limit 2 --answers "$REF" \
  --reference "$REF" --model_id gpt-4 --out mtref "${J[@]}" > run3.out 2>&1 || { cat run3.out; fail "reference judging failed"; }
"$PY" - <<'PY'
import json
js = [json.loads(l) for l in open("mtref/model_judgment/test-judge_single.jsonl")]
assert len(js) == 4 and {j["question_id"] for j in js} == {111, 112}
for j in js:
    assert j["judge"][1] == ("single-math-v1" if j["turn"] == 1 else "single-math-v1-multi-turn")
    assert ("[The Start of Reference Answer]" if j["turn"] == 1 else "### Reference answer:") in j["user_prompt"]
    assert j["model"] == "gpt-4" and 1 <= j["score"] <= 10
print("mt-bench: reference answers and -math prompts: ok")
PY
set +e
"$XWIN" eval --suite mt-bench --questions "$Q" --categories math --limit 1 --answers "$REF" \
  --out mtnoref "${J[@]}" > run4.out 2>&1
rc=$?
set -e
[ $rc = 1 ] && grep -q "give --reference" run4.out || { cat run4.out; fail "missing reference: unclear"; }

# Preempted (SIGUSR1, as the Slurm templates forward it) on 2 ranks while rank 0 judges, one
# request at a time, the third held by the server: nothing new is sent, the held one finishes
# into the journal once released, every rank exits 75 and no judgment file is written. The rerun
# sends only the 3 requests never asked and gives the uninterrupted run's judgments.
touch hang
start_server pre --hang_after 2 --hang_flag "$WORK/hang"
P=(--judge_url "$URL" --judge_model test-judge --judge_prompts "$PROMPTS" --judge_in_flight 1)
preempt_judging pre pre1.out mpiexec -n 2 "$XWIN" "${E[@]}" --out mtpre "${P[@]}"
grep -q "eval: preempted: " pre1.out || { cat pre1.out; fail "no preemption message from eval"; }
[ ! -e mtpre/model_judgment/test-judge_single.jsonl ] || fail "a preempted eval wrote judgments"
[ "$(grep -c . mtpre/judge_journal.jsonl)" = 3 ] || fail "the journal does not hold the 3 replies"
settle pre
"$XWIN" "${E[@]}" --out mtpre "${P[@]}" > pre2.out 2>&1 || { cat pre2.out; fail "rerun after preemption failed"; }
[ "$(requests pre)" = 6 ] || fail "the rerun sent $(( $(requests pre) - 3 )) requests, want 3"
"$PY" -c "
import json
key = lambda f: [(j['question_id'], j['turn'], j['judgment'], j['score']) for j in map(json.loads, open(f))]
assert key('mtpre/model_judgment/test-judge_single.jsonl') == key('mt/model_judgment/test-judge_single.jsonl')"
echo "judge_eval_mt_bench: ok"
