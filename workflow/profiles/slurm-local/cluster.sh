#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, from Debian's packages (munge, slurmctld, slurmd), for
# trying the cluster path on a laptop and for CI. Needs root. No accounting daemon: the Snakemake
# executor plugin polls with squeue (workflow/profiles/slurm-local/config.yaml).
#
#   workflow/profiles/slurm-local/cluster.sh up       # install if missing, write the config, start
#   workflow/profiles/slurm-local/cluster.sh status   # sinfo and the node's state
#   workflow/profiles/slurm-local/cluster.sh down     # stop the daemons this script started
#
# Fake GPUs: the node declares Gres=gpu:N (DELTALORA_SLURM_GPUS, default 2) backed by /dev/null-like
# character devices, so that jobs asking for --gpus=1 are scheduled and get CUDA_VISIBLE_DEVICES.
# State, logs and the generated slurm.conf live in DELTALORA_SLURM_DIR (default /tmp/deltalora-slurm);
# /etc/slurm/slurm.conf becomes a link to it unless a slurm.conf that is not ours is there already.
set -euo pipefail

DIR="${DELTALORA_SLURM_DIR:-/tmp/deltalora-slurm}"
NGPU="${DELTALORA_SLURM_GPUS:-2}"
NODE="$(hostname -s)"
MARK="# written by deltalora workflow/profiles/slurm-local/cluster.sh"

die() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "needs root (it starts munged, slurmctld and slurmd)"; }

install_packages() {
    local missing=()
    for b in munged slurmctld slurmd sbatch squeue; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "cluster.sh: installing munge, slurmctld, slurmd, slurm-client (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    for i in 1 2 3 4 5; do  # apt may be locked by another process: retry
        if apt-get update -qq && apt-get install -y -qq munge slurmctld slurmd slurm-client >/dev/null; then
            return 0
        fi
        sleep 10
    done
    die "apt-get install munge slurmctld slurmd slurm-client failed"
}

write_config() {
    mkdir -p "$DIR"/{state,spool,log,run}
    local cpus mem
    cpus="$(nproc)"
    mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
    cat >"$DIR/slurm.conf" <<EOF
$MARK
ClusterName=deltalora-local
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
GresTypes=gpu
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
NodeName=$NODE CPUs=$cpus RealMemory=$mem Gres=gpu:$NGPU State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    # One line per fake device (a plain Count= registers 0 GPUs and the node goes INVAL).
    {
        echo "$MARK"
        echo "AutoDetect=off"
        local devs=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty)
        for ((i = 0; i < NGPU; i++)); do echo "NodeName=$NODE Name=gpu File=${devs[$i]}"; done
    } >"$DIR/gres.conf"
    mkdir -p /etc/slurm
    for f in slurm.conf gres.conf; do
        if [ -e "/etc/slurm/$f" ] && ! [ -L "/etc/slurm/$f" ] && ! grep -qF "$MARK" "/etc/slurm/$f"; then
            die "/etc/slurm/$f exists and was not written by this script: not touching a real cluster's config"
        fi
        ln -sfn "$DIR/$f" "/etc/slurm/$f"
    done
}

start_munge() {
    if pgrep -x munged >/dev/null; then return 0; fi
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/run/munged.ours"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local t="$1" what="$2"; shift 2
    for ((i = 0; i < t * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    die "timed out after ${t}s waiting for $what (logs in $DIR/log)"
}

node_idle() { sinfo -h -N -o '%t' | grep -qE '^(idle|mix|alloc)'; }

up() {
    need_root
    install_packages
    write_config
    start_munge
    wait_for 20 "munge" munge -n
    if ! pgrep -x slurmctld >/dev/null; then /usr/sbin/slurmctld; fi
    wait_for 60 "slurmctld" scontrol ping
    if ! pgrep -x slurmd >/dev/null; then /usr/sbin/slurmd; fi
    wait_for 60 "node $NODE to become idle" node_idle
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    echo "cluster.sh: up (node $NODE, $(nproc) CPUs, gpu:$NGPU, partition local; state in $DIR)"
}

stop_pidfile() {
    local f="$1"
    [ -s "$f" ] || return 0
    local pid; pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    rm -f "$f"
}

down() {
    need_root
    scancel --user=root >/dev/null 2>&1 || true
    stop_pidfile "$DIR/run/slurmd.pid"
    stop_pidfile "$DIR/run/slurmctld.pid"
    if [ -e "$DIR/run/munged.ours" ]; then
        stop_pidfile /run/munge/munged.pid
        rm -f "$DIR/run/munged.ours"
    fi
    echo "cluster.sh: down"
}

status() {
    if ! scontrol ping >/dev/null 2>&1; then echo "cluster.sh: down"; return 1; fi
    sinfo -N -o '%N %P %t %c %G'
    squeue
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: cluster.sh up|down|status" ;;
esac
