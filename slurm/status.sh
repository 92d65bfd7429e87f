#!/usr/bin/env bash
# Reports the jobs of a chain submitted by slurm/pipeline.sh: state, exit code and log of each,
# and for a failed job its log's last lines. Jobs cancelled because an earlier job failed are
# named as such. Exit code: 0 all completed, 1 a job failed or was cancelled, 3 still running.
# Usage: slurm/status.sh [--wait] LOGDIR|JOBS.TSV
#   --wait  poll (every XWIN_POLL seconds, default 10) until no job is pending or running
set -euo pipefail
wait=0
[ "${1:-}" = --wait ] && { wait=1; shift; }
src=${1:?usage: slurm/status.sh [--wait] LOGDIR|JOBS.TSV}
jobs_file=$src
[ -d "$src" ] && jobs_file=$src/jobs.tsv
[ -f "$jobs_file" ] || { echo "status.sh: $jobs_file not found (written by slurm/pipeline.sh)" >&2; exit 2; }

# state ID LOG -> "STATE EXIT REASON": from slurmctld while it remembers the job, else from
# accounting (sacct), else from the last "xwin-slurm: job N exit R" line of the job's log.
state() {
  local id=$1 log=$2 line st ex reason
  if line=$(scontrol show job -o "$id" 2>/dev/null) && [ -n "$line" ]; then
    st=$(sed -E 's/.*JobState=([^ ]+).*/\1/' <<<"$line")
    ex=$(sed -E 's/.*ExitCode=([^ ]+).*/\1/' <<<"$line")
    reason=$(sed -E 's/.* Reason=([^ ]+).*/\1/' <<<"$line")
    echo "$st $ex $reason"
    return
  fi
  if command -v sacct >/dev/null && line=$(sacct -n -X -P -j "$id" -o State,ExitCode 2>/dev/null) &&
    [ -n "$line" ]; then
    line=${line%%$'\n'*}
    echo "${line%%|*} ${line#*|} -"
    return
  fi
  line=$(grep -E "^xwin-slurm: job $id exit [0-9]+" "$log" 2>/dev/null | tail -n 1 || true)
  if [ -n "$line" ]; then
    ex=${line#*exit }
    ex=${ex%%,*}
    [ "$ex" = 0 ] && echo "COMPLETED 0:0 -" || echo "FAILED $ex:0 -"
    return
  fi
  echo "UNKNOWN - -"
}

active() { case $1 in PENDING | RUNNING | CONFIGURING | COMPLETING | REQUEUED | REQUEUE_* | RESIZING | SUSPENDED | STAGE_OUT | SIGNALING) return 0 ;; esac; return 1; }

report() {
  local job id log st ex reason running=0 bad=0 failed=()
  printf '%-7s %-10s %-12s %-6s %s\n' STAGE JOB STATE EXIT LOG
  while IFS=$'\t' read -r job id log; do
    read -r st ex reason < <(state "$id" "$log")
    # Without kill_invalid_depend a job whose dependency failed stays pending for ever.
    if [ "$st" = PENDING ] && [ "$reason" = DependencyNeverSatisfied ]; then
      st=NEVER_RUNS
    fi
    printf '%-7s %-10s %-12s %-6s %s\n' "$job" "$id" "$st" "$ex" "$log"
    if active "$st"; then
      running=1
    elif [ "$st" != COMPLETED ]; then
      bad=1
      failed+=("$job $id $st $ex $reason $log")
    fi
  done <"$jobs_file"
  local f
  for f in "${failed[@]}"; do
    read -r job id st ex reason log <<<"$f"
    if [ "$reason" = DependencyNeverSatisfied ]; then
      echo "not run: $job (job $id, $st): a job it depends on failed"
      [ "$st" = NEVER_RUNS ] && echo "  cancel it: scancel $id"
      continue
    fi
    if [ "$st" = UNKNOWN ]; then
      echo "unknown: $job (job $id): Slurm no longer knows it and it left no log; it never ran"
      continue
    fi
    echo "failed: $job (job $id, $st, exit code $ex), log: $log"
    if [ -f "$log" ]; then
      # xwin's own error lines first: an MPI abort's boilerplate can push them out of the tail.
      if grep -q "^xwin.*error:" "$log"; then
        echo "--- xwin errors in $log:"
        grep "^xwin.*error:" "$log" | sort -u | head -n 5 | sed 's/^/  /'
      fi
      echo "--- last lines of $log:"
      tail -n 15 "$log" | sed 's/^/  /'
    fi
  done
  [ $running = 1 ] && return 3
  [ $bad = 1 ] && return 1
  return 0
}

if [ $wait = 0 ]; then
  rc=0
  report || rc=$?
  exit $rc
fi
while :; do
  rc=0
  report >/dev/null 2>&1 || rc=$?
  [ $rc != 3 ] && break
  sleep "${XWIN_POLL:-10}"
done
rc=0
report || rc=$?
exit $rc
