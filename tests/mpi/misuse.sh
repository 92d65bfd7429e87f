#!/usr/bin/env bash
# Misuse fails clearly and never hangs (DESIGN.md invariant 5): a layout whose product is not
# the world size, sizes that tp / pp do not divide, and a rank killed mid-run (the job must end
# within a bounded time with a message naming the dead rank).
# Usage: misuse.sh XWIN WORKDIR
set -uo pipefail
XWIN=$1 WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
"$XWIN" data synth --out data.h5 --records 64 >/dev/null || exit 1
MODEL=(--model.vocab_size 24 --model.d_model 64 --model.n_layers 4 --model.n_heads 4
       --model.n_kv_heads 2 --model.d_ff 128 --model.max_seq_len 32)
failures=0
# expect NP CODE PATTERN ARGS...: exit code CODE (any non-zero for "fail") within 60 s.
expect() {
  local np=$1 want=$2 pattern=$3
  shift 3
  local t0=$SECONDS
  timeout 60 mpiexec -n "$np" "$XWIN" "$@" >out.log 2>&1
  local got=$? took=$((SECONDS - t0))
  if [ $got = 124 ]; then
    echo "FAIL (hung): -n $np xwin $*"; failures=$((failures + 1))
  elif { [ "$want" = fail ] && [ $got = 0 ]; } || { [ "$want" != fail ] && [ $got != "$want" ]; }; then
    echo "FAIL (exit $got, want $want): -n $np xwin $*"; cat out.log; failures=$((failures + 1))
  elif ! grep -qE -- "$pattern" out.log; then
    echo "FAIL (no message /$pattern/): -n $np xwin $*"; cat out.log; failures=$((failures + 1))
  else
    echo "ok (exit $got in ${took}s): -n $np xwin $* -> $(grep -m1 -E -- "$pattern" out.log)"
  fi
}
SFT=(sft --data data.h5 "${MODEL[@]}" --train.steps 2 --train.batch_size 4
     --train.micro_batch_size 2 --out run)
expect 3 2 "dp x tp x pp = 1 x 2 x 1 = 2 but the job has 3 ranks" "${SFT[@]}" --parallel.dp 1 --parallel.tp 2
expect 3 2 "tp x parallel.pp = 2 x 1 does not divide the 3 ranks" "${SFT[@]}" --parallel.tp 2
expect 3 fail "parallel.tp = 3 does not divide model.n_heads = 4" "${SFT[@]}" --parallel.tp 3
expect 3 fail "parallel.pp = 3 does not divide model.n_layers = 4" "${SFT[@]}" --parallel.pp 3
SFT25=("${SFT[@]/#24/25}")  # vocab_size 25
expect 2 fail "parallel.tp = 2 does not divide model.vocab_size = 25" "${SFT25[@]}" --parallel.tp 2

# A rank killed (SIGKILL: no chance to clean up) while the other waits in a TP collective: the
# launcher must end the job within 60 s, naming the dead rank.
mpiexec -n 2 "$XWIN" sft --data data.h5 "${MODEL[@]}" --train.steps 100000 \
  --train.batch_size 4 --train.micro_batch_size 2 --parallel.tp 2 --out dierun >die.log 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
  [ -f dierun/metrics.jsonl ] && [ "$(wc -l <dierun/metrics.jsonl)" -ge 2 ] && break
  sleep 0.05
done
victim=""
for pid in $(pgrep -f -- "--out dierun"); do
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$pid
done
if [ -z "$victim" ]; then
  echo "FAIL: could not find rank 1 of the run to kill"; failures=$((failures + 1))
  kill "$launcher" 2>/dev/null
else
  t0=$SECONDS
  kill -KILL "$victim"
  for _ in $(seq 1 600); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$launcher" 2>/dev/null; then
    echo "FAIL (hung): job still running 60 s after rank 1 was killed"; failures=$((failures + 1))
    kill -KILL "$launcher"
  else
    wait "$launcher"; code=$?
    took=$((SECONDS - t0))
    if [ $code = 0 ] || ! grep -qiE "rank 1 .*(signal 9|killed)|signal 9 \(Killed\)" die.log; then
      echo "FAIL: after killing rank 1 the job exited $code with:"; cat die.log
      failures=$((failures + 1))
    else
      echo "ok (exit $code in ${took}s): killed rank 1 -> $(grep -m1 -iE "signal 9|killed" die.log)"
    fi
  fi
fi
[ $failures = 0 ] && echo "misuse: ok"
exit $failures
