# Sourced by e2e tests that interrupt a run. signal_after SIG READY DONE CLEAN LOG CMD...: runs
# CMD in the background (output to LOG), sends it SIG (KILL, TERM, USR1) as soon as the shell
# test READY holds (or after 300 s), waits, and sets SIGNAL_EXIT to its exit code. A run that
# finished before the signal (the shell test DONE holds) or ended before READY held is cleaned
# with CLEAN and run again, up to 5 times; then the test fails. With SIGNAL_PATTERN set, SIG goes
# to every process whose command line matches it (pkill -f), as Slurm's --signal reaches every
# task, instead of to CMD's process alone.
signal_after() {
  local sig=$1 ready=$2 done=$3 clean=$4 log=$5 try end pid
  shift 5
  for try in 1 2 3 4 5; do
    eval "$clean"
    "$@" >"$log" 2>&1 &
    pid=$!
    end=$((SECONDS + 300))
    while ((SECONDS < end)); do
      eval "$ready" >/dev/null 2>&1 && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.005
    done
    if [ -n "${SIGNAL_PATTERN:-}" ]; then
      pkill -"$sig" -f -- "$SIGNAL_PATTERN" || true
    else
      kill -"$sig" $pid 2>/dev/null || true
    fi
    SIGNAL_EXIT=0
    wait $pid 2>/dev/null || SIGNAL_EXIT=$?
    eval "$ready" >/dev/null 2>&1 && ! eval "$done" >/dev/null 2>&1 && return 0
  done
  echo "FAIL: '$*' was not cut short by SIG$sig after '$ready' in 5 tries (see $log)"
  exit 1
}
