# Shared by the judge tests: paths, the scripted server, and log queries.
# Sourced with XWIN SRC WORK set: sets DATA, PY, PROMPTS, TOK; start_server / requests / settle /
# preempt_judging.
export DATA=${XWIN_SHARED_DATA:-$SRC/../shared/data}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
PROMPTS=$DATA/mt_bench/judge_prompts.jsonl
TOK=$DATA/llama2_tokenizer/tokenizer.model
[ -f "$PROMPTS" ] && [ -f "$TOK" ] || { echo "skip: no MT-bench prompts or tokenizer under $DATA"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
SERVERS=()
trap 'for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# start_server NAME [server options]: a fresh server logging to NAME.log; sets URL.
start_server() {
  local name=$1
  shift
  rm -f "$name.port" "$name.log"
  touch "$name.log"
  "$PY" "$SRC/tests/judge/fake_openai.py" --port_file "$name.port" --log "$name.log" "$@" &
  SERVERS+=($!)
  for _ in $(seq 100); do [ -s "$name.port" ] && break; sleep 0.05; done
  [ -s "$name.port" ] || { echo "FAIL: the test server did not start"; exit 1; }
  URL=http://127.0.0.1:$(cat "$name.port")/v1
}

# requests NAME: how many requests the server has seen.
requests() { grep -c '"event": "arrive"' "$1.log" || true; }

# settle NAME: waits (up to 10 s) until the server has finished every request it received.
settle() {
  for _ in $(seq 200); do
    [ "$(requests "$1")" = "$(grep -c '"event": "done"' "$1.log" || true)" ] && return 0
    sleep 0.05
  done
  fail "the server still has requests open"
}

# preempt_judging NAME LOG CMD...: runs CMD (output to LOG) in the background against server
# NAME, started with --hang_after 2 --hang_flag "$WORK/hang" (a held third request); sends it
# SIGUSR1 (as the Slurm templates forward it) once that request arrives, releases it after the
# judge has logged the preemption, and checks that CMD exits 75 having sent nothing more (the
# caller checks its phase's preemption message).
preempt_judging() {
  local name=$1 log=$2 pid code=0
  shift 2
  "$@" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ "$(requests "$name")" -ge 3 ] && break; sleep 0.05; done
  [ "$(requests "$name")" = 3 ] || fail "expected the third request held, the server saw $(requests "$name")"
  kill -USR1 $pid
  for _ in $(seq 100); do grep -q "judge: preempted" "$log" && break; sleep 0.05; done
  rm -f "$WORK/hang"
  wait $pid || code=$?
  [ $code = 75 ] || { cat "$log"; fail "preempted run exited $code, want 75"; }
  [ "$(requests "$name")" = 3 ] || fail "requests were sent after the preemption signal"
}

fail() { echo "FAIL: $*"; exit 1; }
