#!/usr/bin/env bash
# A real single-node Slurm for one test: writes slurm.conf for this machine (node name, CPUs and
# memory from `slurmd -C`, free ports, state/spool/log folders under WORK/slurm), starts munged,
# slurmctld and slurmd in the foreground as background children, waits until the node is idle,
# runs TEST with SLURM_CONF exported, then cancels what is left and stops the daemons by PID.
# Prints "skip: ..." and exits 0 where Slurm is not installed or we are not root.
# Usage: harness.sh WORK TEST [ARGS...]
set -euo pipefail
WORK=$1
shift
for tool in slurmctld slurmd munged sbatch; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null ||
    { echo "skip: $tool is not installed (bash scripts/install-deps.sh)"; exit 0; }
done
[ "$(id -u)" = 0 ] || { echo "skip: the Slurm tests start slurmd and munged and need root"; exit 0; }
id munge >/dev/null 2>&1 || { echo "skip: no munge user (apt-get install munge)"; exit 0; }
export PATH=$PATH:/usr/sbin

rm -rf "$WORK" && mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
S=$WORK/slurm
mkdir -p "$S"/{state,spool,log,run} "$S/munge"
chmod 755 "$WORK" "$S"
pids=()

stop_daemons() {
  local code=$?
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ ${#pids[@]} -ge 3 ]; then
    scancel --full --quiet --user=root 2>/dev/null
    for _ in $(seq 1 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [ $code != 0 ]; then
    echo "--- harness: test failed ($code); daemon logs in $S/log"
    tail -n 20 "$S"/log/slurmctld.log "$S"/log/slurmd.log 2>/dev/null
  fi
  exit $code
}
trap stop_daemons EXIT
trap 'exit 130' INT TERM

# munge: our own key, socket and logs (slurm.conf points Slurm at this socket).
M=$S/munge
dd if=/dev/urandom of="$M/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$M"
chmod 711 "$M" && chmod 400 "$M/munge.key"  # root reaches the socket; nobody lists the key
setpriv --reuid=munge --regid=munge --init-groups munged --foreground --force --socket="$M/munge.sock" \
  --key-file="$M/munge.key" --log-file="$M/munged.log" --pid-file="$M/munged.pid" \
  --seed-file="$M/munged.seed" >"$M/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -S "$M/munge.sock" ] && break; sleep 0.05; done
[ -S "$M/munge.sock" ] || { echo "munged did not start:"; cat "$M/munged.out"; exit 1; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
host=$(hostname -s)
node=$(slurmd -C | head -n 1 | sed -E 's/NodeName=[^ ]+/NodeName='"$host"'/')
cat >"$S/slurm.conf" <<EOF
ClusterName=xwintest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$M/munge.sock,cred_expire=5
CredType=cred/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
DependencyParameters=kill_invalid_depend
ReturnToService=2
KillWait=5
MinJobAge=3600
InactiveLimit=0
MailProg=/bin/true
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$S/slurm.conf
mpi=none  # Debian's Open MPI needs pmix under srun (pmi2 fails); the templates ask for it
srun --mpi=list 2>&1 | grep -qw pmix && mpi=pmix && sed -i 's/^MpiDefault=none/MpiDefault=pmix/' "$SLURM_CONF"

slurmctld -D -c -f "$SLURM_CONF" >"$S/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$S/log/slurmd.out" 2>&1 &
pids+=($!)
state=
for _ in $(seq 1 300); do
  state=$(sinfo -h -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.1
done
[ "$state" = idle ] || { echo "the node did not become idle (state '$state')"; exit 1; }
echo "harness: slurm up ($node, mpi=$mpi) in $S"

cd "$WORK"
"$@"
