#!/usr/bin/env bash
# A job in the chain fails: slurm/pipeline.sh's later jobs are cancelled (not left pending),
# slurm/status.sh names the failed job and its log, and nothing after it ran. Every stage runs
# `xwin pipeline` through a stand-in that records the stage and runs a real xwin command on 2
# ranks: `xwin --version` for every stage but rm, which fails on a missing dataset.
# Runs inside harness.sh. Usage: chain_failure.sh XWIN SOURCE_DIR
set -euo pipefail
XWIN=$1 SRC=$2

cat >deck.ini <<'INI'
[pipeline]
run_dir = run
INI
cat >stand_in.sh <<SH
#!/usr/bin/env bash
stages=\$(echo "\$*" | grep -o -- '--stage [a-z]*' | cut -d' ' -f2 | tr '\n' ' ')
[ "\${PMIX_RANK:-0}" = 0 ] && echo "\$SLURM_JOB_ID \$stages" >>$PWD/calls.txt
case " \$stages" in
  *" rm "*) exec $XWIN sft --data missing_pairs.h5 --out run/rm ;;
  *) exec $XWIN --version ;;
esac
SH
chmod +x stand_in.sh
export XWIN_BIN=$PWD/stand_in.sh XWIN_TASKS_PER_NODE=2 XWIN_TIME=5 XWIN_POLL=0.5
"$SRC/slurm/pipeline.sh" deck.ini | tee submit.txt
[ "$(grep -c . submit.txt)" = 7 ] || { echo "want 6 jobs and a status line"; exit 1; }
set +e
timeout 120 "$SRC/slurm/status.sh" --wait run/slurm >status.txt
code=$?
set -e
cat status.txt
[ $code = 1 ] || { echo "status.sh --wait exited $code, want 1 (a job failed)"; exit 1; }
rm_id=$(awk '$1 == "rm" { print $2 }' submit.txt)
grep -q "^failed: rm (job $rm_id, FAILED, exit code 1:0), log: $PWD/run/slurm/rm-$rm_id.out" status.txt
grep -q "missing_pairs.h5" "run/slurm/rm-$rm_id.out"
grep -q "missing_pairs.h5" status.txt  # the log's tail is shown
for job in sample rs dpo eval; do
  grep -q "^not run: $job (job [0-9]*, CANCELLED): a job it depends on failed" status.txt ||
    { echo "$job is not reported as cancelled"; exit 1; }
  ! compgen -G "run/slurm/$job-*.out" >/dev/null || { echo "$job left a log: it ran"; exit 1; }
done
grep -q "^sft  *[0-9]*  *COMPLETED" status.txt
# Only sft then rm ran, in that order.
[ "$(cut -d' ' -f2- calls.txt | tr -s ' \n' ' ')" = "prepare sft pairs rm " ] ||
  { echo "unexpected stage runs:"; cat calls.txt; exit 1; }
[ -z "$(squeue -h)" ] || { echo "jobs left in the queue:"; squeue; exit 1; }
echo "chain_failure: ok"
