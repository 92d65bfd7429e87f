#!/usr/bin/env bash
# xwin annotate against the scripted server: every fault the client must survive (slow replies
# beyond the timeout, 500s, 429 with Retry-After, malformed JSON, a truncated body, a dropped
# connection, an unparseable verdict), the ones it must not retry (400) or must give up on
# (no verdict ever), a position-biased judge (ties after both orders), multi-turn prompts and K=3
# responses (every two, and --pairs best: the winner against what it beat). Server-side request counts prove each retry and non-retry; a second run with the
# same journal sends only the 400s again (nothing that was answered), also after a torn journal
# line; connection refused and 401 fail clearly; the API key is sent as a Bearer token and
# never appears in xwin's output, files or journal.
# Usage: judge_annotate.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
source "$SRC/tests/judge/lib.sh"
export OPENAI_API_KEY=sk-xwin-test-SECRET-4242

"$PY" - <<'PY'
import json
recs = [
    {"prompt": "Name a colour.", "output_1": "Red.", "output_2": "Blue is a calm colour."},
    {"conversations": [{"from": "human", "value": "Hello there."}, {"from": "gpt", "value": "Hi!"},
                       {"from": "human", "value": "Tell me a fact."}],
     "responses": ["Octopuses have three hearts.", "Water is wet."]},
    {"instruction": "Say hi.", "output_1": "Hi!", "output_2": "Yo!"},
    {"prompt": "Count to three.", "responses": ["One, two, three.", "123", "1 2 3"]},
    {"prompt": "MODE:slow Pick a number.", "response_a": "7", "response_b": "Seven, my favourite."},
    {"prompt": "MODE:e500 Name a fruit.", "output_1": "A ripe mango.", "output_2": "Fig."},
    {"prompt": "MODE:e429 Name a tree.", "output_1": "Oak.", "output_2": "The giant sequoia."},
    {"prompt": "MODE:malformed Name a river.", "output_1": "The Danube river.", "output_2": "Nile."},
    {"prompt": "MODE:truncated Name a city.", "output_1": "Rome.", "output_2": "Buenos Aires."},
    {"messages": [{"role": "user", "content": "MODE:drop Name a planet."}],
     "responses": ["Jupiter, the largest.", "Mars."]},
    {"prompt": "MODE:noisy Name a bird.", "output_1": "Owl.", "output_2": "The peregrine falcon."},
    {"prompt": "MODE:e400 Name a metal.", "output_1": "Iron.", "output_2": "Gold."},
    {"prompt": "MODE:garbage Name a dog.", "output_1": "Rex.", "output_2": "Fido the Great."},
    {"prompt": "MODE:biased Name a cat.", "output_1": "Tom.", "output_2": "Garfield."},
]
with open("in.jsonl", "w") as f:
    for r in recs:
        f.write(json.dumps(r) + "\n")
PY

start_server srv
J=(--judge_url "$URL" --judge_model test-judge --judge_prompts "$PROMPTS" --judge_timeout 1
   --judge_backoff 0.05 --judge_in_flight 4 --judge_price_in 0.03 --judge_price_out 0.06)
A=(annotate --in in.jsonl --out pairs.jsonl --out_h5 pairs.h5 --ties keep --tokenizer.model "$TOK")
"$XWIN" "${A[@]}" "${J[@]}" > run1.out 2> run1.err || { cat run1.out run1.err; fail "annotate failed"; }
cat run1.out
grep -q "verdicts: A 5, B 5, tie 2, failed 2" run1.out || fail "wrong verdict counts"
settle srv
grep -q "HTTP 400: bad request: context length exceeded (not retried)" run1.err ||
  { cat run1.err; fail "no clear message for the 400"; }
[ "$(requests srv)" = 48 ] || fail "expected 48 requests, the server saw $(requests srv)"

"$PY" - <<'PY'
import collections, json, h5py
log = [r for r in map(json.loads, open("srv.log")) if r["event"] == "arrive"]
by_mode = collections.Counter(r["mode"] for r in log)
want = {"ok": 8, "slow": 4, "e500": 6, "e429": 4, "malformed": 4, "truncated": 4, "drop": 4,
        "noisy": 4, "garbage": 6, "e400": 2, "biased": 2}
assert by_mode == want, (by_mode, want)
assert all(r["auth"] == "Bearer sk-xwin-test-SECRET-4242" for r in log), "key not sent as Bearer"
keys = collections.defaultdict(list)
for r in log:
    keys[r["key"]].append(r)
for k, rs in keys.items():
    if rs[0]["mode"] == "e429":
        assert len(rs) == 2 and rs[1]["t"] - rs[0]["t"] >= 0.9, "Retry-After not honoured"
    if rs[0]["mode"] == "e400":
        assert len(rs) == 1, "a 400 was retried"
pairs = [json.loads(l) for l in open("pairs.jsonl")]
assert len(pairs) == 12, len(pairs)
verdicts = [p["verdict"] for p in pairs]
assert verdicts == ["B", "A", "tie", "A", "B", "A", "B", "A", "B", "A", "B", "tie"], verdicts
for p in pairs:
    assert p["judge"] == "http:test-judge"
    if p["verdict"] != "tie":
        assert len(p["chosen"]) > len(p["rejected"]), p
assert pairs[1]["conversations"][2]["value"] == "Tell me a fact."
assert [p.get("tie", False) for p in pairs].count(True) == 2
with h5py.File("pairs.h5", "r") as f:
    a = f.attrs
    assert a["schema"] == "xwin.pairs" and a["n_records"] == 12 and a["n_ties"] == 2, dict(a)
    assert a["n_skipped"] == 2 and f["tie"][:].sum() == 2
print("annotate: verdicts, retries, Retry-After, no retry of 400, HDF5 output: ok")
PY
# The HDF5 dataset holds the same pairs as the JSONL.
"$XWIN" data export --tokenizer.model "$TOK" --in pairs.h5 --out h5.jsonl > /dev/null
"$PY" - <<'PY'
import json
a = [json.loads(l) for l in open("pairs.jsonl")]
b = [json.loads(l) for l in open("h5.jsonl")]
assert [(x["chosen"], x["rejected"]) for x in a] == [(x["chosen"], x["rejected"]) for x in b]
PY
grep -q "judge: .*failed; .* tokens, \$0\.[0-9]" run1.out || fail "no cost line"

# Rerun with the same journal: only the two 400s are asked again; same output.
cp pairs.jsonl pairs1.jsonl
"$XWIN" "${A[@]}" "${J[@]}" > run2.out 2> run2.err || fail "rerun failed"
settle srv
[ "$(requests srv)" = 50 ] || fail "rerun sent $(( $(requests srv) - 48 )) requests, want 2 (the 400s)"
cmp pairs.jsonl pairs1.jsonl || fail "rerun changed the output"
grep -q "replies from the journal" run2.out
# A torn last journal line (killed mid-write) is dropped; nothing else changes.
printf '{"key": "0123", "reply": "half a rep' >> pairs.jsonl.journal.jsonl
"$XWIN" "${A[@]}" "${J[@]}" > run3.out 2> run3.err || { cat run3.err; fail "torn journal not tolerated"; }
settle srv
grep -q "dropped a torn last line" run3.out || fail "torn line not reported"
[ "$(requests srv)" = 52 ] || fail "after a torn line the run sent $(( $(requests srv) - 50 )) requests, want 2"
cmp pairs.jsonl pairs1.jsonl

# An Xwin-Set (HDF5, K = 3 sampled responses per prompt) is decoded with its tokenizer and
# template and annotated like the JSONL records (--pairs all: every i < j).
"$PY" - <<'PY'
import json
with open("set.jsonl", "w") as f:
    for i in range(3):
        f.write(json.dumps({"prompt": "Set question %d?" % i, "scores": [0, 0, 0],
                            "responses": ["x" * (i + 1), "yy" * (i + 2), "Answer number %d." % i]}) + "\n")
PY
"$XWIN" data xwin_set --tokenizer.model "$TOK" --in set.jsonl --out set.h5 > /dev/null
"$XWIN" annotate --in set.h5 --out setpairs.jsonl --pairs all --tokenizer.model "$TOK" \
  "${J[@]}" > run_set.out 2>&1 || { cat run_set.out; fail "Xwin-Set annotate failed"; }
"$PY" - <<'PY'
import json
src = [json.loads(l) for l in open("set.jsonl")]
got = [json.loads(l) for l in open("setpairs.jsonl")]
want = []
for r in src:
    for i in range(3):
        for j in range(i + 1, 3):
            a, b = r["responses"][i], r["responses"][j]
            if len(a) != len(b):
                want.append((r["prompt"], max(a, b, key=len), min(a, b, key=len)))
assert [(g["conversations"][-1]["value"], g["chosen"], g["rejected"]) for g in got] == want, got
print("annotate: Xwin-Set HDF5 input decoded and judged: ok")
PY

# --pairs best: every two judged, the winner of most comparisons (lowest index among equals)
# against each response it beat; a tie makes no pair, and a prompt with a failed judgement (the
# 400) makes none until a rerun answers it. Expected pairs from the server's rule (longer wins).
"$PY" - <<'PY'
import json
recs = [{"prompt": "Best question?", "responses": ["x", "yyyy", "Answer number zero."]},
        {"prompt": "Tied question?", "responses": ["aa", "bb", "c"]},
        {"prompt": "MODE:e400 Failed question?", "responses": ["Iron.", "Gold.", "Copper."]},
        {"prompt": "Two replies?", "output_1": "Hi!", "output_2": "Hello!"}]
with open("best.jsonl", "w") as f:
    for r in recs:
        f.write(json.dumps(r) + "\n")
PY
"$XWIN" annotate --in best.jsonl --out best_pairs.jsonl --out_h5 best_pairs.h5 --pairs best \
  --tokenizer.model "$TOK" "${J[@]}" > run_best.out 2>&1 || { cat run_best.out; fail "--pairs best failed"; }
grep -q "4 pairs from 4 prompts (1 left out until a rerun" run_best.out || { cat run_best.out; fail "--pairs best: counts"; }
grep -q "wrote 4 pairs" run_best.out || { cat run_best.out; fail "--pairs best: written count"; }
"$PY" - <<'PY'
import json, h5py
want, verdicts = [], 0
for r in map(json.loads, open("best.jsonl")):
    resp = r.get("responses") or [r["output_1"], r["output_2"]]
    k = len(resp)
    qs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    verdicts += len(qs)
    if "MODE:e400" in r["prompt"]:
        continue
    beats = {(i, j): len(resp[i]) > len(resp[j]) for i in range(k) for j in range(k)}
    wins = [sum(beats[i, j] for j in range(k)) for i in range(k)]
    best = wins.index(max(wins))
    for i, j in qs:
        if best in (i, j):
            other = j if best == i else i
            if beats[best, other]:
                want.append((r["prompt"], resp[best], resp[other]))
got = [(g["conversations"][-1]["value"], g["chosen"], g["rejected"]) for g in map(json.loads, open("best_pairs.jsonl"))]
assert got == want, (got, want)
assert ("Tied question?", "aa", "c") in got and len(want) == 4, want
with h5py.File("best_pairs.h5", "r") as f:
    assert f.attrs["n_records"] == 4 and f.attrs["n_skipped"] == verdicts - 4, dict(f.attrs)
print("annotate: --pairs best: ok")
PY
set +e
"$XWIN" annotate --in best.jsonl --out x.jsonl --pairs best --ties keep "${J[@]}" > run_bk.out 2>&1
rc=$?
set -e
[ $rc = 2 ] && grep -q "pairs best pairs the winner with what it beat" run_bk.out ||
  { cat run_bk.out; fail "--pairs best --ties keep: exit $rc, want 2 and a clear message"; }

# Connection refused: retried, then a clear failure, exit 1.
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
set +e
"$XWIN" annotate --in in.jsonl --out refused.jsonl --judge_url "http://127.0.0.1:$PORT/v1" \
  --judge_prompts "$PROMPTS" --judge_retries 2 --judge_backoff 0.01 --limit 2 > run4.out 2> run4.err
rc=$?
set -e
[ $rc = 1 ] || fail "connection refused: exit $rc, want 1"
grep -q "every judgement failed.*gave up after 3 attempts: Couldn't connect to server" run4.err ||
  { cat run4.err; fail "connection refused: unclear message"; }

# A wrong key: 401 stops the run at once, the key the server echoes is redacted.
start_server srv401 --require_key sk-the-right-key
set +e
OPENAI_API_KEY=sk-wrong-key-777 "$XWIN" annotate --in in.jsonl --out k.jsonl --judge_url "$URL" \
  --judge_prompts "$PROMPTS" --judge_in_flight 2 > run5.out 2> run5.err
rc=$?
set -e
[ $rc = 1 ] || fail "401: exit $rc, want 1"
settle srv401
grep -q "HTTP 401: Incorrect API key provided: \*\*\*\..*check the key in \$OPENAI_API_KEY" run5.err ||
  { cat run5.err; fail "401: unclear message"; }
[ "$(requests srv401)" -le 2 ] || fail "401: $(requests srv401) requests, want at most the 2 in flight"
! grep -rq "sk-wrong-key-777" run5.out run5.err || fail "the wrong key leaked"

# The key never appears in anything xwin wrote (the server's own logs aside).
! grep -rlq "SECRET-4242" --exclude='srv*.log' . || fail "the API key leaked into $(grep -rl SECRET-4242 --exclude='srv*.log' .)"
echo "judge_annotate: ok"
