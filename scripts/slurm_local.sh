#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, with accounting, for testing the Slurm profile.
#
#   scripts/slurm_local.sh install   # apt-get the packages (idempotent; starts no daemon)
#   scripts/slurm_local.sh start     # install if needed, configure, start every daemon
#   scripts/slurm_local.sh stop      # stop the daemons this script started (by PID file)
#   scripts/slurm_local.sh status    # daemons, node state, accounting
#
# Why each step looks the way it does (containers without systemd, Debian 12 packages):
#   - packages are installed behind a temporary /usr/sbin/policy-rc.d that exits 101, so
#     their maintainer scripts do not try to start daemons;
#   - the daemons are started directly and stopped by PID file: munged as the munge user,
#     mariadbd in its own session (setsid) bound to 127.0.0.1, then slurmdbd, slurmctld,
#     slurmd;
#   - slurm.conf: process tracking without cgroups (proctrack/linuxproc, task/none), the
#     node line from `slurmd -C` with ~5 % less memory (a node with less memory than
#     configured is drained), DefMemPerCPU (otherwise a job without a memory request takes
#     the whole node), MinJobAge=300 (finished jobs stay visible to squeue);
#   - accounting (slurmdbd + MariaDB) because the Snakemake Slurm executor asks `sacct` for
#     job states by default, and the tests read each job's record from it.
#
# Only root can do this; the files it writes carry the marker below, and a slurm.conf
# without the marker (someone else's cluster) is never overwritten.
# Environment: SLURM_LOCAL_CLUSTER (regsegbench), SLURM_LOCAL_PARTITION (debug),
# SLURM_LOCAL_ACCOUNT (regsegbench): the names of the cluster, its one partition and the
# account that root's jobs may be charged to.
set -euo pipefail

readonly MARKER="# written by regsegbench scripts/slurm_local.sh"
readonly CLUSTER="${SLURM_LOCAL_CLUSTER:-regsegbench}"
readonly PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
readonly ACCOUNT="${SLURM_LOCAL_ACCOUNT:-regsegbench}"
readonly PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

readonly CONF_DIR=/etc/slurm
readonly SLURM_CONF="$CONF_DIR/slurm.conf"
readonly SLURMDBD_CONF="$CONF_DIR/slurmdbd.conf"
readonly LOG_DIR=/var/log/slurm
readonly STATE_DIR=/var/lib/slurm
readonly DB_PASSWORD_FILE=/etc/slurm/.regsegbench-db-password

readonly MUNGED_PID=/run/munge/munged.pid
readonly MARIADB_PID=/run/mysqld/mysqld.pid
readonly MARIADB_SOCKET=/run/mysqld/mysqld.sock
readonly SLURMDBD_PID=/run/slurmdbd.pid
readonly SLURMCTLD_PID=/run/slurmctld.pid
readonly SLURMD_PID=/run/slurmd.pid

log() { printf '[slurm_local] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"
}

# --- processes -------------------------------------------------------------------------

# The PID in a PID file, if that process is alive.
alive_pid() {
    local file=$1 pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what"
        sleep 0.5
    done
}

stop_pidfile() {
    local name=$1 file=$2 pid
    if ! pid=$(alive_pid "$file"); then
        log "$name: not running"
        rm -f "$file"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "$name: still alive after 30 s, killing"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$file"
    log "$name: stopped (pid $pid)"
}

# --- install ---------------------------------------------------------------------------

installed() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            return 1
    done
}

cmd_install() {
    require_root
    if installed; then
        log "packages already installed"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: cannot install ${PACKAGES[*]}"
    # Keep package scripts from starting daemons; restore whatever policy was there.
    local policy=/usr/sbin/policy-rc.d backup=""
    if [[ -e $policy ]]; then
        backup=$(mktemp)
        cp -p "$policy" "$backup"
    fi
    # shellcheck disable=SC2064  # expand now: the trap must restore this very backup
    trap "if [[ -n '$backup' ]]; then mv -f '$backup' '$policy'; else rm -f '$policy'; fi" EXIT
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    export DEBIAN_FRONTEND=noninteractive
    log "installing ${PACKAGES[*]}"
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null; then
        log "install failed; updating the package lists and retrying"
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
    trap - EXIT
    if [[ -n $backup ]]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi
    installed || die "packages still missing after apt-get install"
    log "installed"
}

# --- configuration ---------------------------------------------------------------------

# The node line from the hardware slurmd sees, with RealMemory reduced by ~5 %.
node_line() {
    local detected memory
    detected=$(slurmd -C | head -n 1)
    [[ $detected == NodeName=* ]] || die "unexpected output of 'slurmd -C': $detected"
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    [[ -n $memory ]] || die "no RealMemory in 'slurmd -C' output: $detected"
    sed "s/RealMemory=$memory/RealMemory=$((memory * 95 / 100))/" <<<"$detected" |
        sed 's/$/ NodeAddr=127.0.0.1 State=UNKNOWN/'
}

write_if_ours() {
    local path=$1 mode=$2 owner=$3 content=$4
    if [[ -e $path ]] && ! grep -qF "$MARKER" "$path"; then
        die "$path exists and was not written by this script; move it away to use this cluster"
    fi
    local tmp
    tmp=$(mktemp "$path.XXXXXX")
    printf '%s\n' "$content" >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv -f "$tmp" "$path"
}

write_slurm_conf() {
    local host node
    host=$(hostname -s)
    node=$(node_line)
    write_if_ours "$SLURM_CONF" 0644 root:root "$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$SLURMCTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# containers: no cgroups, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
MpiDefault=none
# accounting: sacct answers from slurmdbd; per-job memory and CPU are gathered
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
$node
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
}

db_password() {
    if [[ ! -s $DB_PASSWORD_FILE ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASSWORD_FILE")
    fi
    cat "$DB_PASSWORD_FILE"
}

write_slurmdbd_conf() {
    write_if_ours "$SLURMDBD_CONF" 0600 slurm:slurm "$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$SLURMDBD_PID
LogFile=$LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$(db_password)"
}

# --- daemons ---------------------------------------------------------------------------

start_munge() {
    if alive_pid "$MUNGED_PID" >/dev/null; then return 0; fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        (umask 077 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none)
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGED_PID"
    wait_for 20 "munged" bash -c 'munge -n | unmunge'
    log "munged: started"
}

mariadb_ping() { mariadb-admin --socket="$MARIADB_SOCKET" ping; }

start_mariadb() {
    if ! alive_pid "$MARIADB_PID" >/dev/null; then
        install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            log "initializing the MariaDB data directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        fi
        setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
            --pid-file="$MARIADB_PID" --socket="$MARIADB_SOCKET" \
            </dev/null >>/var/log/mysql/regsegbench-mariadbd.log 2>&1 &
        wait_for 60 "mariadbd" mariadb_ping
        log "mariadbd: started"
    fi
    local password
    password=$(db_password)
    mariadb --socket="$MARIADB_SOCKET" -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$password';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$password';
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
}

start_slurmdbd() {
    if alive_pid "$SLURMDBD_PID" >/dev/null; then return 0; fi
    /usr/sbin/slurmdbd
    wait_for 60 "slurmdbd" sacctmgr -n list cluster
    log "slurmdbd: started"
}

# Cluster, account and root's association, each only if missing (sacctmgr -i is not
# idempotent: adding what exists is an error).
ensure_associations() {
    if [[ -z $(sacctmgr -n -P list cluster "$CLUSTER" format=cluster) ]]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if [[ -z $(sacctmgr -n -P list account "$ACCOUNT" format=account) ]]; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
            description="regsegbench tests" organization=regsegbench >/dev/null
    fi
    if [[ -z $(sacctmgr -n -P list association cluster="$CLUSTER" account="$ACCOUNT" \
        user=root format=user) ]]; then
        sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    fi
}

node_ready() {
    local state
    state=$(sinfo -h -N -o '%T' | head -n 1)
    [[ $state == idle* || $state == mixed* || $state == allocated* ]]
}

start_slurm() {
    install -d -o slurm -g slurm -m 0755 "$LOG_DIR" "$STATE_DIR" "$STATE_DIR/slurmctld"
    install -d -o root -g root -m 0755 "$STATE_DIR/slurmd"
    if ! alive_pid "$SLURMCTLD_PID" >/dev/null; then
        /usr/sbin/slurmctld
        wait_for 60 "slurmctld" scontrol ping
        log "slurmctld: started"
    fi
    if ! alive_pid "$SLURMD_PID" >/dev/null; then
        /usr/sbin/slurmd
        log "slurmd: started"
    fi
    if ! node_ready; then
        # A node left DOWN/DRAINED by an earlier, unclean stop: return it to service.
        sleep 1
        node_ready ||
            scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    fi
    wait_for 60 "the node to become idle" node_ready
}

cmd_start() {
    require_root
    cmd_install
    install -d -m 0755 "$CONF_DIR"
    write_slurm_conf
    write_slurmdbd_conf
    start_munge
    start_mariadb
    start_slurmdbd
    ensure_associations
    start_slurm
    log "ready: cluster $CLUSTER, partition $PARTITION, account $ACCOUNT"
    sinfo -N -o '%N %T %c %m %P' >&2
}

cmd_stop() {
    require_root
    stop_pidfile slurmd "$SLURMD_PID"
    stop_pidfile slurmctld "$SLURMCTLD_PID"
    stop_pidfile slurmdbd "$SLURMDBD_PID"
    stop_pidfile mariadbd "$MARIADB_PID"
    stop_pidfile munged "$MUNGED_PID"
}

cmd_status() {
    local name file all=0
    for name in munged:$MUNGED_PID mariadbd:$MARIADB_PID slurmdbd:$SLURMDBD_PID \
        slurmctld:$SLURMCTLD_PID slurmd:$SLURMD_PID; do
        file=${name#*:}
        if pid=$(alive_pid "$file"); then
            echo "${name%%:*}: running (pid $pid)"
        else
            echo "${name%%:*}: stopped"
            all=1
        fi
    done
    if ((all == 0)); then
        sinfo -N -o '%N %T %c %m %P'
        sacctmgr -n -P list association cluster="$CLUSTER" format=cluster,account,user
    fi
    return "$all"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 install|start|stop|restart|status" >&2
        exit 2
        ;;
esac
