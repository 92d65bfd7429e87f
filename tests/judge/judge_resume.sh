#!/usr/bin/env bash
# A killed annotate run resumes from its journal: the process is killed (SIGKILL) while
# requests are in flight; the restarted run completes, no request the server answered is
# answered twice (the server holds the in-flight ones until the kill, so none of them was
# delivered), the journal holds every reply once, and the output equals an uninterrupted run's.
# Usage: judge_resume.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
source "$SRC/tests/judge/lib.sh"
export OPENAI_API_KEY=sk-resume-test

"$PY" - <<'PY'
import json
with open("in.jsonl", "w") as f:
    for i in range(40):
        f.write(json.dumps({"prompt": "Question %d?" % i,
                            "responses": ["a" * (i % 7 + 1), "b" * (i % 5 + 1)]}) + "\n")
PY
touch hang
start_server srv --hang_after 30 --hang_flag "$WORK/hang" --delay 0.005
J=(--judge_model test-judge --judge_prompts "$PROMPTS" --judge_in_flight 4
   --ties keep --in in.jsonl)
"$XWIN" annotate "${J[@]}" --judge_url "$URL" --out killed.jsonl > run1.out 2>&1 &
PID=$!
answered() { grep -c '"answered": true' srv.log || true; }
for _ in $(seq 600); do [ "$(answered)" -ge 30 ] && break; sleep 0.05; done
[ "$(answered)" -ge 30 ] || fail "the first run made no progress"
sleep 0.5  # the next requests are now held by the server
kill -9 $PID
wait $PID 2>/dev/null || true
rm -f hang
sleep 0.3  # held requests see their client gone
[ ! -f killed.jsonl ] || fail "a killed run left its output"
"$XWIN" annotate "${J[@]}" --judge_url "$URL" --out killed.jsonl > run2.out 2>&1 || { cat run2.out; fail "resume failed"; }
cat run2.out
settle srv
start_server clean
"$XWIN" annotate "${J[@]}" --out clean.jsonl --judge_url "$URL" > run3.out 2>&1
cmp killed.jsonl clean.jsonl || fail "the resumed output differs from an uninterrupted run's"
"$PY" - <<'PY'
import collections, json
done = [r for r in map(json.loads, open("srv.log")) if r["event"] == "done"]
answered = collections.Counter(r["key"] for r in done if r["answered"])
assert max(answered.values()) == 1, "a request was answered twice"
assert len(answered) == 80, len(answered)
held = [r for r in done if not r["answered"]]
assert held, "nothing was in flight at the kill"
journal = [json.loads(l) for l in open("killed.jsonl.journal.jsonl")]
assert len(journal) == 80 and len({j["key"] for j in journal}) == 80, len(journal)
print("resume: %d requests held in flight at the kill (never delivered); 80 requests answered "
      "once each over the killed and the resumed run" % len(held))
PY
echo "judge_resume: ok"
