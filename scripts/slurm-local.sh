#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the Slurm tests: munge, slurmctld and slurmd
# from Debian's packages, configured for localhost with the machine's CPUs, everything (config,
# state, logs) in one folder.
#   scripts/slurm-local.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm-local.sh stop DIR
# Needs root (slurmd and munged run as system daemons). Installs nothing: .ci/run does.
set -euo pipefail
action=${1:?usage: $0 start|stop DIR}
dir=$(mkdir -p "${2:?usage: $0 start|stop DIR}" && cd "$2" && pwd)
conf="$dir/slurm.conf"

stop() {
    for pid in "$dir"/slurmd.pid "$dir"/slurmctld.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    sleep 1
}

if [ "$action" = stop ]; then
    stop
    exit 0
fi

# munge: one key, the daemon as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do munge -n >/dev/null 2>&1 && break; sleep 0.5; done
fi
munge -n | unmunge >/dev/null

host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$dir/state" "$dir/spool"
cat > "$conf" <<CONF
ClusterName=realbias-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
stop
export SLURM_CONF="$conf"
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
        echo "export SLURM_CONF=$conf"
        exit 0
    fi
    sleep 1
done
echo "the local Slurm cluster did not come up; logs in $dir" >&2
tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
