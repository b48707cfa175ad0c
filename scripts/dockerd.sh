#!/usr/bin/env bash
# This checkout's own Docker engine, for the Docker end-to-end test and `docker compose`:
#
#   scripts/dockerd.sh start    # install docker.io when absent, start dockerd in the background, wait for it
#   scripts/dockerd.sh stop     # stop the dockerd this script started (by its pid), and wait for it to exit
#   scripts/dockerd.sh status   # exit 0 when this checkout's engine answers
#   scripts/dockerd.sh host     # print its DOCKER_HOST (unix://<checkout>/build/docker/docker.sock)
#
#   scripts/dockerd.sh start && export DOCKER_HOST=$(scripts/dockerd.sh host)
#
# Everything of the engine is under build/docker/ (DOCKERD_STATE_DIR): its socket, exec root (with its
# containerd), data root (DOCKER_DATA_ROOT, default build/docker/data), pid file (written by dockerd) and
# log. So two checkouts on one machine (or a system Docker beside it) never share an engine, and `stop`
# can never take an engine away from another run. Idempotent: `start` does nothing when this engine already
# answers, `stop` does nothing when it is not running. The engine uses host networking only (no bridge,
# no iptables) and overlay2 storage. Starting it needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${DOCKERD_STATE_DIR:-$PWD/build/docker}
DATA_ROOT=${DOCKER_DATA_ROOT:-$STATE_DIR/data}
EXEC_ROOT=$STATE_DIR/exec
SOCKET=$STATE_DIR/docker.sock
PIDFILE=$STATE_DIR/dockerd.pid
LOG=$STATE_DIR/dockerd.log
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}
STOP_TIMEOUT=${DOCKERD_STOP_TIMEOUT:-60}

answers() { DOCKER_HOST="unix://$SOCKET" docker info >/dev/null 2>&1; }

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
    if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
        scripts/apt-ensure.sh docker.io
    fi
    if answers; then
        echo "dockerd: this checkout's engine already answers at unix://$SOCKET" >&2
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "dockerd: starting an engine needs root (run as root, or use a running Docker engine)" >&2
        return 1
    fi
    local pid
    if pid=$(our_pid); then
        echo "dockerd: pid $pid is running but does not answer yet; waiting" >&2
    else
        mkdir -p "$STATE_DIR" "$DATA_ROOT" "$EXEC_ROOT"
        rm -f "$PIDFILE" "$SOCKET"
        # setsid: the engine outlives this script and is not in the caller's process group.
        setsid dockerd --storage-driver=overlay2 --bridge=none --iptables=false --ip6tables=false \
            --host "unix://$SOCKET" --exec-root "$EXEC_ROOT" --data-root "$DATA_ROOT" --pidfile "$PIDFILE" \
            >>"$LOG" 2>&1 </dev/null &
        pid=$!  # setsid execs dockerd (a background job is no group leader), so this is dockerd's pid
        echo "dockerd: started pid $pid (DOCKER_HOST=unix://$SOCKET, data root $DATA_ROOT, log $LOG)" >&2
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
    # dockerd leaves mounts behind at exit (its data root bound onto itself, the exec root's netns/default):
    # undo those under build/docker/ (never a mount elsewhere, e.g. a data root given as a real disk).
    local target
    for target in $(findmnt -rn -o TARGET 2>/dev/null | grep -F "$STATE_DIR/" | sort -r || true); do
        umount "$target" 2>/dev/null || true
    done
    echo "dockerd: stopped pid $pid" >&2
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) answers ;;
    host) echo "unix://$SOCKET" ;;
    *) echo "usage: $0 start|stop|status|host" >&2; exit 2 ;;
esac
