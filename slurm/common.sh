# Sourced by every job template inside its job: how xwin is launched, how a preemption signal
# reaches it, and how a preempted job requeues itself. Settings (slurm/README.md):
#   XWIN_BIN          the xwin binary                    (default: xwin on PATH)
#   XWIN_SETUP        a file sourced first: module loads, site environment (default: none)
#   XWIN_LAUNCHER     srun | mpirun                      (default: srun)
#   XWIN_SRUN_MPI     srun's --mpi plugin                (default: pmix)
#   XWIN_SRUN_ARGS    extra srun arguments, e.g. "-O" for more ranks than CPUs (default: none)
#   XWIN_MPIRUN_ARGS  extra mpirun arguments             (default: none)
#   XWIN_DP, XWIN_TP, XWIN_PP  the layout, as --parallel.dp/tp/pp (default: the deck's)
#   XWIN_MAX_REQUEUE  requeues after which a preempted job gives up with 75 (default: 20)
# shellcheck shell=bash

XWIN_SLURM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export XWIN_SLURM_DIR
XWIN_EXIT_PREEMPTED=75  # xwin's code for "checkpoint saved, run me again" (core/signals.h)

if [ -n "${XWIN_SETUP:-}" ]; then
  # shellcheck disable=SC1090
  source "$XWIN_SETUP"
fi
XWIN_BIN=${XWIN_BIN:-xwin}
# One OpenMP thread pool per rank, sized by the allocation (srun no longer reads
# SLURM_CPUS_PER_TASK since Slurm 22.05; SRUN_CPUS_PER_TASK passes it on).
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
  export SRUN_CPUS_PER_TASK=${SRUN_CPUS_PER_TASK:-$SLURM_CPUS_PER_TASK}
fi

# --parallel.* options for the layout the environment asks for (none: the deck decides).
xwin_layout_args() {
  local opt var
  for opt in dp tp pp; do
    var=XWIN_${opt^^}
    [ -n "${!var:-}" ] && printf '%s\n' "--parallel.$opt" "${!var}"
  done
  return 0
}

_xwin_pid=
_xwin_signalled=0
_xwin_forward() {
  _xwin_signalled=1
  echo "xwin-slurm: got SIG$1; forwarding it to the ranks (they checkpoint and exit $XWIN_EXIT_PREEMPTED)"
  [ -n "$_xwin_pid" ] && kill -s "$1" "$_xwin_pid" 2>/dev/null
  return 0
}

# xwin_launch [-n RANKS] ARGS...: runs XWIN_BIN ARGS on the job's ranks (or RANKS of them) and
# returns its exit code. The batch shell gets --signal=B:USR1 and scancel -b; it forwards USR1
# and TERM to the launcher, which passes them to every rank (srun and mpirun both do).
xwin_launch() {
  local n=() launcher=() extra=()
  if [ "${1:-}" = -n ]; then
    n=(-n "$2")
    shift 2
  fi
  case ${XWIN_LAUNCHER:-srun} in
    srun)
      read -ra extra <<<"${XWIN_SRUN_ARGS:-}"
      launcher=(srun --mpi="${XWIN_SRUN_MPI:-pmix}" "${n[@]}" "${extra[@]}")
      ;;
    mpirun)
      read -ra extra <<<"${XWIN_MPIRUN_ARGS:-}"
      launcher=(mpirun "${n[@]}" "${extra[@]}")
      ;;
    *)
      echo "xwin-slurm: XWIN_LAUNCHER=$XWIN_LAUNCHER: use srun or mpirun" >&2
      return 2
      ;;
  esac
  echo "xwin-slurm: ${launcher[*]} $XWIN_BIN $*"
  trap '_xwin_forward USR1' USR1
  trap '_xwin_forward TERM' TERM
  "${launcher[@]}" "$XWIN_BIN" "$@" &
  _xwin_pid=$!
  local rc
  while :; do
    rc=0
    wait "$_xwin_pid" || rc=$?
    # A trapped signal interrupts `wait` (status > 128) while the ranks still run: wait again.
    if [ "$_xwin_signalled" = 1 ] && [ $rc -gt 128 ]; then
      _xwin_signalled=0
      continue
    fi
    break
  done
  trap - USR1 TERM
  _xwin_pid=
  return $rc
}

# xwin_job [-n RANKS] ARGS...: the body of a template. Runs xwin with the layout options; on
# exit 75 (preempted or near the time limit, checkpoint saved) requeues this job, which then
# resumes from the newest checkpoint; any other code ends the job with that code.
xwin_job() {
  local layout rc=0 n=()
  if [ "${1:-}" = -n ]; then
    n=(-n "$2")
    shift 2
  fi
  mapfile -t layout < <(xwin_layout_args)
  echo "xwin-slurm: job ${SLURM_JOB_ID:-none}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)}" \
    "restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-$(hostname -s)}, $(date '+%F %T')"
  xwin_launch "${n[@]}" "$@" "${layout[@]}" || rc=$?
  if [ $rc = "$XWIN_EXIT_PREEMPTED" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    xwin_requeue
    rc=$?
  fi
  echo "xwin-slurm: job ${SLURM_JOB_ID:-none} exit $rc, $(date '+%F %T')"
  return $rc
}

# Puts this job back in the queue; Slurm then ends this run of the script. Returns 75 where the
# job cannot be requeued (too many requeues, or the cluster forbids it).
xwin_requeue() {
  local restarts=${SLURM_RESTART_COUNT:-0}
  if [ "$restarts" -ge "${XWIN_MAX_REQUEUE:-20}" ]; then
    echo "xwin-slurm: preempted after $restarts requeues (XWIN_MAX_REQUEUE=${XWIN_MAX_REQUEUE:-20});" \
      "not requeueing. Resubmit the job to continue from its newest checkpoint." >&2
    return "$XWIN_EXIT_PREEMPTED"
  fi
  echo "xwin-slurm: checkpoint saved; requeueing job $SLURM_JOB_ID (restart $((restarts + 1)))"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    echo "xwin-slurm: scontrol requeue $SLURM_JOB_ID failed; resubmit the job to continue" \
      "from its newest checkpoint" >&2
    return "$XWIN_EXIT_PREEMPTED"
  fi
  # Slurm stops this script as it requeues the job; exiting first could end the job instead.
  sleep 300 &
  wait $! || true
  return "$XWIN_EXIT_PREEMPTED"
}
