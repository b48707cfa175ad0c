#!/usr/bin/env bash
# A Docker engine for the Docker end-to-end test and `docker compose`, on machines without a running one.
#
#   scripts/dockerd.sh start    # install docker.io when absent, start dockerd in the background, wait for it
#   scripts/dockerd.sh stop     # stop the dockerd this script started (by its pid), and wait for it to exit
#   scripts/dockerd.sh status   # exit 0 when `docker info` answers
#
# Idempotent: `start` does nothing when an engine already answers (ours or anyone else's; only ours is
# ever stopped), `stop` does nothing when this script's engine is not running.
# The engine runs with host networking only (no bridge, no iptables), overlay2 storage, and its own data
# root (DOCKER_DATA_ROOT, default build/docker/data). Its pid is in build/docker/dockerd.pid, its log in
# build/docker/dockerd.log (dockerd writes the pid file itself). Starting it needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${DOCKERD_STATE_DIR:-$PWD/build/docker}
DATA_ROOT=${DOCKER_DATA_ROOT:-$STATE_DIR/data}
PIDFILE=$STATE_DIR/dockerd.pid
LOG=$STATE_DIR/dockerd.log
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}
STOP_TIMEOUT=${DOCKERD_STOP_TIMEOUT:-60}

answers() { docker info >/dev/null 2>&1; }

our_pid() {
    # The pid in our pid file when that process is alive and is a dockerd; else nothing.
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    grep -q dockerd "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    if answers; then
        echo "dockerd: an engine already answers (docker info); nothing started" >&2
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        scripts/apt-ensure.sh docker.io
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "dockerd: no Docker engine answers and starting one needs root (run as root, or start Docker)" >&2
        return 1
    fi
    if pid=$(our_pid); then
        echo "dockerd: pid $pid is running but does not answer yet; waiting" >&2
    else
        mkdir -p "$STATE_DIR" "$DATA_ROOT"
        rm -f "$PIDFILE"
        # setsid: the engine outlives this script and is not in the caller's process group.
        setsid dockerd --storage-driver=overlay2 --bridge=none --iptables=false --ip6tables=false \
            --data-root "$DATA_ROOT" --pidfile "$PIDFILE" >>"$LOG" 2>&1 </dev/null &
        pid=$!  # setsid execs dockerd (a background job is no group leader), so this is dockerd's pid
        echo "dockerd: started pid $pid (data root $DATA_ROOT, log $LOG)" >&2
    fi
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers; do
        if [ ! -d "/proc/$pid" ]; then
            echo "dockerd: exited before answering; last lines of $LOG:" >&2
            tail -n 20 "$LOG" >&2
            rm -f "$PIDFILE"
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "dockerd: no answer from docker info within ${START_TIMEOUT}s; last lines of $LOG:" >&2
            tail -n 20 "$LOG" >&2
            return 1
        fi
        sleep 0.2  # polling the engine's socket while it comes up
    done
    echo "dockerd: ready" >&2
}

stop() {
    local pid
    if ! pid=$(our_pid); then
        rm -f "$PIDFILE"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while [ -d "/proc/$pid" ]; do
        if [ $SECONDS -ge $deadline ]; then
            echo "dockerd: pid $pid did not exit within ${STOP_TIMEOUT}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2  # polling for the process to exit
    done
    rm -f "$PIDFILE"
    # dockerd bind-mounts its data root onto itself and leaves it at exit; undo that for our own data root
    # (never for a data root given elsewhere, which may be a real mount).
    if [ "$DATA_ROOT" = "$STATE_DIR/data" ] && mountpoint -q "$DATA_ROOT" 2>/dev/null; then
        umount "$DATA_ROOT" 2>/dev/null || true
    fi
    echo "dockerd: stopped pid $pid" >&2
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
