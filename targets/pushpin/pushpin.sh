#!/usr/bin/env bash
# Starts and stops one private Pushpin instance in front of a GRIP origin (the
# reference server with --grip-publish).
#
#   pushpin.sh start DIR ORIGIN   writes DIR/pushpin.conf from pushpin.conf.template
#                                 (free loopback ports) and DIR/routes (everything to
#                                 ORIGIN, host:port), starts pushpin, waits until both its
#                                 HTTP port and its publish port answer, and prints two
#                                 lines on stdout:
#                                   http://127.0.0.1:PORT                  (clients)
#                                   http://127.0.0.1:PUBLISH_PORT/publish/ (the origin's
#                                                                           --grip-publish)
#   pushpin.sh stop DIR           SIGTERM to the pid in DIR/pushpin.pid, waits for it
#                                 (and the services it runs) to exit.
#
# The ports are free when chosen and bound a moment later, so a start retries with new
# ports when one was taken meanwhile. Everything lives in DIR (config, routes, run/ with
# the ipc sockets, logs/): several instances run at once with different DIRs, and the
# system pushpin service and /etc/pushpin are never touched. Needs the Debian package
# pushpin (1.36: pushpin, condure, zurl, pushpin-proxy, pushpin-handler).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/pushpin.conf.template"
PUSHPIN="${PUSHPIN:-$(command -v pushpin || echo /usr/bin/pushpin)}"
START_TIMEOUT_S="${PUSHPIN_START_TIMEOUT_S:-15}"
STOP_TIMEOUT_S="${PUSHPIN_STOP_TIMEOUT_S:-10}"
ATTEMPTS=3

die() { echo "pushpin.sh: $*" >&2; exit 1; }

usage() { die "usage: pushpin.sh start DIR ORIGIN_HOST:PORT | pushpin.sh stop DIR"; }

# Five distinct free loopback ports, one a line.
free_ports() {
    python3 -c 'import socket
socks = []
for _ in range(5):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()'
}

# Exit status 0 once http://127.0.0.1:$1/ answers at all (any status).
answers() {
    curl -sS -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null
}

running_pid() {
    local pid
    [ -s "$1/pushpin.pid" ] || return 1
    pid="$(tr -d '[:space:]' < "$1/pushpin.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    local dir="$1" origin="$2" attempt deadline pid ports key
    [ -x "$PUSHPIN" ] || die "pushpin not found at '$PUSHPIN' (apt-get install pushpin)"
    [[ "$origin" =~ ^[A-Za-z0-9.:-]+:[0-9]+$ ]] || die "ORIGIN must be host:port, not '$origin'"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if pid="$(running_pid "$dir")"; then
        die "an instance is already running in $dir (pid $pid)"
    fi
    mkdir -p "$dir/run" "$dir/logs"
    echo "* $origin" > "$dir/routes"
    key="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    for attempt in $(seq 1 "$ATTEMPTS"); do
        mapfile -t ports < <(free_ports) || die "python3 could not find free ports"
        sed -e "s#@DIR@#$dir#g" -e "s/@SIG_KEY@/$key/" \
            -e "s/@PORT@/${ports[0]}/" -e "s/@PUBLISH_PORT@/${ports[1]}/" \
            -e "s/@PUSH_IN_PORT@/${ports[2]}/" -e "s/@PUSH_SUB_PORT@/${ports[3]}/" \
            -e "s/@COMMAND_PORT@/${ports[4]}/" "$TEMPLATE" > "$dir/pushpin.conf"
        rm -f "$dir/pushpin.pid" "$dir"/run/*.pid
        setsid "$PUSHPIN" --config "$dir/pushpin.conf" --merge-output \
            >> "$dir/logs/runner.log" 2>&1 < /dev/null &
        echo $! > "$dir/pushpin.pid"
        deadline=$((SECONDS + START_TIMEOUT_S))
        while ! { answers "${ports[0]}" && answers "${ports[1]}"; }; do
            if ! running_pid "$dir" > /dev/null || (( SECONDS >= deadline )); then
                break
            fi
            sleep 0.1
        done
        if running_pid "$dir" > /dev/null && answers "${ports[0]}" && answers "${ports[1]}"; then
            echo "http://127.0.0.1:${ports[0]}"
            echo "http://127.0.0.1:${ports[1]}/publish/"
            return 0
        fi
        stop "$dir" > /dev/null 2>&1 || true
        echo "pushpin.sh: no answer on ports ${ports[*]} (attempt $attempt/$ATTEMPTS)" >&2
    done
    die "pushpin did not start (see $dir/logs/)"
}

stop() {
    local dir="$1" pid deadline
    [ -d "$dir" ] || die "no such directory: $dir"
    if ! pid="$(running_pid "$dir")"; then
        echo "pushpin.sh: no running instance in $dir" >&2
        return 0
    fi
    # The runner stops the services it started (condure, zurl, proxy, handler).
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            kill -KILL -- "-$pid" 2>/dev/null || true
            die "pushpin (pid $pid) still running ${STOP_TIMEOUT_S}s after SIGTERM; killed its group"
        fi
        sleep 0.05
    done
    rm -f "$dir/pushpin.pid"
}

case "${1:-}" in
    start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
    stop) [ $# -eq 2 ] || usage; stop "$2" ;;
    *) usage ;;
esac
