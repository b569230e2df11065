#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the integration test of the shipped job files: munged,
# slurmctld and slurmd, all on localhost, all state under one folder, nothing system-wide touched.
#   scripts/slurm/local-cluster.sh start <dir>   start it; prints `export SLURM_CONF=<dir>/slurm.conf`
#   scripts/slurm/local-cluster.sh stop <dir>    stop every daemon it started
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge) and root (slurmd runs jobs as any user).
set -euo pipefail
cmd=${1:?start|stop}; dir=$(realpath -m "${2:?state folder}")

stop() {
  for p in slurmd slurmctld munged; do
    if [[ -f $dir/$p.pid ]]; then kill "$(cat "$dir/$p.pid")" 2>/dev/null || true; fi
  done
  for p in slurmd slurmctld munged; do
    for _ in $(seq 50); do
      [[ -f $dir/$p.pid ]] && kill -0 "$(cat "$dir/$p.pid")" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$dir/$p.pid"
  done
}

if [[ $cmd == stop ]]; then stop; exit 0; fi
[[ $cmd == start ]] || { echo "usage: $0 start|stop <dir>" >&2; exit 2; }
for b in munged slurmctld slurmd sbatch; do
  command -v "$b" >/dev/null || { echo "local-cluster: $b not found; install Debian's slurm-wlm and munge" >&2; exit 3; }
done

mkdir -p "$dir"/{state,spool,log}
chmod 700 "$dir"
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

# munge: a private key and socket, so a system munged (if any) is left alone
[[ -f $dir/munge.key ]] || { dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none; chmod 400 "$dir/munge.key"; }
munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed"

cat > "$dir/slurm.conf" <<CONF
ClusterName=cfgen-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
SlurmctldPort=${CFGEN_SLURMCTLD_PORT:-16817}
SlurmdPort=${CFGEN_SLURMD_PORT:-16818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MaxArraySize=1001
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF

export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then echo "export SLURM_CONF=$SLURM_CONF"; exit 0; fi
  sleep 0.2
done
echo "local-cluster: the node did not come up within 20 s; logs in $dir/log/" >&2
sinfo >&2 || true
tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
stop
exit 4
