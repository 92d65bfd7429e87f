#!/usr/bin/env bash
# Submits the xwin pipeline on DECK as a chain of Slurm jobs, each starting only after the one
# before it succeeded (afterok; a failure cancels the rest):
#   sft (prepare + sft) -> rm (pairs + rm) -> sample -> rs -> dpo -> eval
# Prints "STAGE JOBID LOG" per job and writes them to LOGDIR/jobs.tsv for slurm/status.sh.
#
# Usage: slurm/pipeline.sh [--from STAGE] [--after JOBID] [--wait] [--dry-run] DECK [-- XWIN_OPTIONS...]
#   --from STAGE   start at this job (sft rm sample rs dpo eval); earlier outputs must exist
#   --after JOBID  the first job waits for JOBID to succeed
#   --wait         wait for the chain to end, print slurm/status.sh's report, exit non-zero if a
#                  job failed
#   --dry-run      print the sbatch commands instead of running them
#   XWIN_OPTIONS   appended to every stage's `xwin pipeline` (e.g. --train.steps 50)
# Resources come from the environment (defaults in brackets); XWIN_<JOB>_<NAME>, e.g.
# XWIN_SAMPLE_NODES=4 or XWIN_SFT_TIME=12:00:00, overrides one job:
#   XWIN_PARTITION [cluster default]  XWIN_ACCOUNT [none]  XWIN_QOS [none]
#   XWIN_NODES [1]  XWIN_TASKS_PER_NODE [1]  XWIN_CPUS_PER_TASK [1]  XWIN_GPUS_PER_NODE [0]
#   XWIN_MEM [cluster default]  XWIN_TIME [04:00:00]  XWIN_SBATCH_ARGS [none: extra sbatch options]
#   XWIN_DP, XWIN_TP, XWIN_PP [the deck's [parallel]]  XWIN_BIN [xwin on PATH, else build/xwin]
#   XWIN_LOG_DIR [RUN_DIR/slurm, RUN_DIR from the deck's [pipeline] run_dir]
# Launch, requeue and site settings (XWIN_LAUNCHER, XWIN_SETUP, ...): slurm/common.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JOBS=(sft rm sample rs dpo eval)

usage() {
  sed -n '/^# Usage:/,/^#   XWIN_OPTIONS/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
from=sft after='' wait=0 dry=0
while [ $# -gt 0 ]; do
  case $1 in
    --from) from=${2:?--from needs a stage}; shift 2 ;;
    --after) after=${2:?--after needs a job id}; shift 2 ;;
    --wait) wait=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h | --help) usage ;;
    -*) echo "pipeline.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
DECK=$1
shift
if [ "${1:-}" = -- ]; then shift; fi
[ -f "$DECK" ] || { echo "pipeline.sh: deck $DECK not found" >&2; exit 2; }
DECK=$(cd "$(dirname "$DECK")" && pwd)/$(basename "$DECK")
start=-1
for i in "${!JOBS[@]}"; do [ "${JOBS[i]}" = "$from" ] && start=$i; done
[ "$start" -ge 0 ] || { echo "pipeline.sh: --from $from: stages are ${JOBS[*]}" >&2; exit 2; }

# [pipeline] run_dir of the deck (relative paths are relative to this directory, where the jobs
# run too).
run_dir=$(awk -F= '
  /^[ \t]*\[/ { sec = $0; gsub(/[][ \t]/, "", sec); next }
  sec == "pipeline" && $1 ~ /^[ \t]*run_dir[ \t]*$/ {
    v = $2; sub(/[ \t]*[#;].*$/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v); print v }' "$DECK")
log_dir=${XWIN_LOG_DIR:-${run_dir:-xwin-$(basename "$DECK" .ini)}/slurm}
mkdir -p "$log_dir"
log_dir=$(cd "$log_dir" && pwd)

if [ -z "${XWIN_BIN:-}" ]; then
  XWIN_BIN=$(command -v xwin || true)
  [ -n "$XWIN_BIN" ] || XWIN_BIN=$(dirname "$HERE")/build/xwin
fi
[ -x "$XWIN_BIN" ] || { echo "pipeline.sh: xwin binary $XWIN_BIN not found; set XWIN_BIN" >&2; exit 2; }
XWIN_BIN=$(cd "$(dirname "$XWIN_BIN")" && pwd)/$(basename "$XWIN_BIN")

# setting JOB NAME DEFAULT: XWIN_<JOB>_<NAME>, else XWIN_<NAME>, else DEFAULT.
setting() {
  local per=XWIN_${1^^}_$2 all=XWIN_$2
  printf '%s' "${!per:-${!all:-$3}}"
}

sbatch_args() {  # JOB: resources, log, environment
  local job=$1 v args=()
  args+=(--job-name="xwin-$job" --output="$log_dir/$job-%j.out" --chdir="$PWD")
  args+=(--nodes="$(setting "$job" NODES 1)" --ntasks-per-node="$(setting "$job" TASKS_PER_NODE 1)")
  args+=(--cpus-per-task="$(setting "$job" CPUS_PER_TASK 1)" --time="$(setting "$job" TIME 04:00:00)")
  v=$(setting "$job" PARTITION "") && [ -n "$v" ] && args+=(--partition="$v")
  v=$(setting "$job" ACCOUNT "") && [ -n "$v" ] && args+=(--account="$v")
  v=$(setting "$job" QOS "") && [ -n "$v" ] && args+=(--qos="$v")
  v=$(setting "$job" MEM "") && [ -n "$v" ] && args+=(--mem="$v")
  v=$(setting "$job" GPUS_PER_NODE 0) && [ "$v" != 0 ] && args+=(--gpus-per-node="$v")
  local export="ALL,XWIN_BIN=$XWIN_BIN,XWIN_SLURM_DIR=$HERE"
  for v in DP TP PP; do export+=",XWIN_$v=$(setting "$job" "$v" "")"; done
  args+=(--export="$export")
  read -ra v <<<"$(setting "$job" SBATCH_ARGS "")"
  args+=("${v[@]}")
  printf '%s\n' "${args[@]}"
}

: >"$log_dir/jobs.tsv.new"
prev=$after
ids=()
for job in "${JOBS[@]:$start}"; do
  mapfile -t args < <(sbatch_args "$job")
  dep=()
  [ -n "$prev" ] && dep=(--dependency="afterok:$prev" --kill-on-invalid-dep=yes)
  cmd=(sbatch --parsable "${args[@]}" "${dep[@]}" "$HERE/$job.sbatch" "$DECK" "$@")
  if [ $dry = 1 ]; then
    printf '%q ' "${cmd[@]}" && echo
    prev=DRYRUN_$job
    continue
  fi
  if ! id=$("${cmd[@]}"); then
    echo "pipeline.sh: sbatch refused the $job job (above);" \
      "cancelling the jobs submitted before it: ${ids[*]:-none}" >&2
    [ ${#ids[@]} = 0 ] || scancel "${ids[@]}"
    exit 1
  fi
  id=${id%%;*}  # "ID;CLUSTER" on federated clusters
  ids+=("$id")
  log=$log_dir/$job-$id.out
  printf '%s\t%s\t%s\n' "$job" "$id" "$log" >>"$log_dir/jobs.tsv.new"
  printf '%-7s %-10s %s\n' "$job" "$id" "$log"
  prev=$id
done
[ $dry = 1 ] && { rm -f "$log_dir/jobs.tsv.new"; exit 0; }
mv "$log_dir/jobs.tsv.new" "$log_dir/jobs.tsv"
echo "status: $HERE/status.sh $log_dir"
[ $wait = 1 ] && exec "$HERE/status.sh" --wait "$log_dir"
exit 0
