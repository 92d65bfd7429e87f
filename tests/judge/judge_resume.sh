#!/usr/bin/env bash
# A killed annotate run resumes from its journal: the process is killed (SIGKILL) while
# requests are in flight; the restarted run completes, no request the server answered is
# answered twice (the server holds the in-flight ones until the kill, so none of them was
# delivered), the journal holds every reply once, and the output equals an uninterrupted run's.
# The same run preempted with SIGUSR1 on 2 ranks exits 75 after its requests in flight finish.
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

# Preempted instead of killed: SIGUSR1 (what the Slurm templates forward before the time limit)
# reaches both ranks of an mpiexec run while requests are held in flight. Nothing new is sent;
# the held requests, once released, finish into the journal; every rank exits with 75 and no
# output is written. The rerun completes to the uninterrupted output, every request answered once.
touch hang2
start_server pre --hang_after 30 --hang_flag "$WORK/hang2" --delay 0.005
mpiexec -n 2 "$XWIN" annotate "${J[@]}" --judge_url "$URL" --out pre.jsonl > pre1.out 2>&1 &
PID=$!
for _ in $(seq 600); do [ "$(grep -c '"answered": true' pre.log || true)" -ge 30 ] && break; sleep 0.05; done
sleep 0.5  # the next requests are now held by the server
kill -USR1 $PID
for _ in $(seq 100); do grep -q "judge: preempted" pre1.out && break; sleep 0.05; done
arrived=$(requests pre)
rm -f hang2
code=0
wait $PID || code=$?
[ $code = 75 ] || { cat pre1.out; fail "preempted annotate exited $code, want 75"; }
grep -q "judge: preempted at" pre1.out && grep -q "annotate: preempted: " pre1.out ||
  { cat pre1.out; fail "no preemption messages"; }
[ ! -f pre.jsonl ] || fail "a preempted run wrote its output"
[ "$(requests pre)" = "$arrived" ] || fail "requests were sent after the preemption signal"
settle pre
"$PY" - <<'PY'
import json
done = [r for r in map(json.loads, open("pre.log")) if r["event"] == "done"]
assert done and all(r["answered"] for r in done), "a request in flight was abandoned"
journal = [json.loads(l) for l in open("pre.jsonl.journal.jsonl")]
assert len(journal) == len(done) > 30, (len(journal), len(done))
print("preempt: %d replies journaled, every request in flight at the signal among them" % len(journal))
PY
"$XWIN" annotate "${J[@]}" --judge_url "$URL" --out pre.jsonl > pre2.out 2>&1 || { cat pre2.out; fail "rerun after preemption failed"; }
settle pre
cmp pre.jsonl clean.jsonl || fail "the output after preemption differs from an uninterrupted run's"
"$PY" - <<'PY'
import collections, json
done = [r for r in map(json.loads, open("pre.log")) if r["event"] == "done"]
answered = collections.Counter(r["key"] for r in done if r["answered"])
assert max(answered.values()) == 1 and len(answered) == 80, answered.most_common(2)
PY
echo "judge_resume: ok"
