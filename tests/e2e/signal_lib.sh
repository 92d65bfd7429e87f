# Sourced by e2e tests that preempt a run. signal_after SIG READY DONE CLEAN LOG CMD...: runs CMD
# in the background (output to LOG) and sends it SIG as soon as the shell test READY holds, then
# waits and sets SIGNAL_EXIT to its exit code. A run that finished before the signal (the shell
# test DONE holds) is cleaned with CLEAN and run again, up to 5 times.
signal_after() {
  local sig=$1 ready=$2 done=$3 clean=$4 log=$5 try i pid
  shift 5
  for try in 1 2 3 4 5; do
    eval "$clean"
    "$@" >"$log" 2>&1 &
    pid=$!
    for ((i = 0; i < 6000; i++)); do
      eval "$ready" >/dev/null 2>&1 && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.005
    done
    kill -"$sig" $pid 2>/dev/null || true
    SIGNAL_EXIT=0
    wait $pid || SIGNAL_EXIT=$?
    eval "$done" || return 0
  done
}
