# Shared helpers for scripts/{slurm,ray,s3,prefect-server}. Source it; do not run it.
#
# Conventions (see each script's header):
#   - state root: $NEMOTRON_STATE_DIR, else <repo>/.state; a service keeps ALL its files
#     (config, pid, log, data) under $STATE/services/<name>.
#   - every listener binds 127.0.0.1 only.
#   - `status` exits 0 when running, 3 when stopped (LSB style), 1 when the process is alive but
#     does not answer; errors exit 1 with one line `<name>: error: ...` on stderr.
#   - `start` on a running service only prints its env; start/stop hold a lock (svc_lock).
# shellcheck shell=bash

SVC_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SVC_VENV_BIN="$SVC_REPO_ROOT/.venv/bin"
SVC_NAME="${SVC_NAME:-service}"

svc_state_root() {
    local s="${NEMOTRON_STATE_DIR:-$SVC_REPO_ROOT/.state}"
    mkdir -p "$s"
    (cd "$s" && pwd -P)
}

# svc_dir NAME -> prints and creates $STATE/services/NAME
svc_dir() {
    local d
    d="$(svc_state_root)/services/$1"
    mkdir -p "$d"
    printf '%s\n' "$d"
}

svc_die() {
    echo "$SVC_NAME: error: $*" >&2
    exit 1
}

svc_log() {
    echo "$SVC_NAME: $*" >&2
}

svc_now() { date +%s.%N; }

# svc_elapsed START -> seconds since START with one decimal
svc_elapsed() { awk -v a="$1" -v b="$(svc_now)" 'BEGIN { printf "%.1f", b - a }'; }

# svc_pid_from FILE -> prints the pid stored in FILE when that process is alive; rc 1 otherwise
svc_pid_from() {
    local f="$1" p
    [[ -s "$f" ]] || return 1
    p="$(tr -dc '0-9' <"$f")"
    [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null || return 1
    printf '%s\n' "$p"
}

# svc_port_open PORT -> rc 0 when something accepts TCP connections on 127.0.0.1:PORT
svc_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# svc_require_port_free PORT WHAT -> dies when the port already has a listener
svc_require_port_free() {
    if svc_port_open "$1"; then
        svc_die "port 127.0.0.1:$1 ($2) is already in use by another process; pick another port (see the script header)"
    fi
}

# svc_wait TIMEOUT_S WHAT CMD... -> polls CMD every 0.25 s until it succeeds; dies after TIMEOUT_S
svc_wait() {
    local timeout="$1" what="$2"
    shift 2
    local deadline
    deadline=$(($(date +%s) + timeout))
    until "$@" >/dev/null 2>&1; do
        if (($(date +%s) >= deadline)); then
            return 1
        fi
        sleep 0.25
    done
}

# svc_http_ok URL -> rc 0 on a 2xx answer (loopback only; never goes through a proxy)
svc_http_ok() {
    curl -fsS --noproxy '*' --max-time 5 -o /dev/null "$1"
}

# svc_spawn PIDFILE LOGFILE CMD... -> starts CMD detached in its own session/process group
# (pid == pgid), stdin from /dev/null, stdout+stderr appended to LOGFILE; writes PIDFILE.
svc_spawn() {
    local pidfile="$1" logfile="$2"
    shift 2
    nohup setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
    echo $! >"$pidfile"
}

# svc_wait_gone PID TIMEOUT_S -> rc 0 once PID has exited, 1 on timeout
svc_wait_gone() {
    local pid="$1" timeout="$2" deadline
    deadline=$(($(date +%s) + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if (($(date +%s) >= deadline)); then
            return 1
        fi
        sleep 0.1
    done
}

# svc_group_alive PGID -> rc 0 while a non-zombie process of that process group exists
svc_group_alive() {
    ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { n++ } END { exit !(n > 0) }'
}

# svc_stop_group PIDFILE WHAT [TIMEOUT_S] -> SIGTERM the process group started by svc_spawn,
# wait for it to exit; SIGKILL the group only after the timeout. Removes PIDFILE.
svc_stop_group() {
    local pidfile="$1" what="$2" timeout="${3:-20}" pid
    if ! pid="$(svc_pid_from "$pidfile")"; then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    if ! svc_wait_gone "$pid" "$timeout"; then
        svc_log "$what (pid $pid) did not exit ${timeout}s after SIGTERM; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        svc_wait_gone "$pid" 5 || svc_die "$what (pid $pid) survived SIGKILL"
    fi
    # stragglers of the same group (children that ignored TERM)
    if svc_group_alive "$pid"; then
        sleep 1
        { svc_group_alive "$pid" && kill -KILL -- "-$pid"; } 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# svc_tail LOGFILE -> last meaningful log line, for one-line error messages
svc_tail() {
    [[ -f "$1" ]] || return 0
    grep -v '^[[:space:]]*$' "$1" | tail -n 1 | cut -c1-300
}

# svc_lock DIR -> serialises start/stop of one service across processes (flock on fd 9 = DIR/.lock,
# held until the script exits). Every daemon must be started with `9>&-`, or it would keep the lock.
# Waits up to $NEMOTRON_SERVICES_LOCK_TIMEOUT s (default 900: a first Slurm start may run apt-get).
svc_lock() {
    { exec 9>"$1/.lock"; } 2>/dev/null || svc_die "cannot open $1/.lock for writing (run as the user owning the state folder)"
    flock -w "${NEMOTRON_SERVICES_LOCK_TIMEOUT:-900}" 9 ||
        svc_die "another start/stop of $SVC_NAME holds $1/.lock"
}

# svc_usage USAGE -> prints usage and exits 2
svc_usage() {
    echo "usage: $1" >&2
    exit 2
}
