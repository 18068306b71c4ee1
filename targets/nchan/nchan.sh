#!/usr/bin/env bash
# Starts and stops one private nginx + nchan instance for the SSE harness.
#
#   nchan.sh start DIR   writes DIR/nginx.conf from nginx.conf.template (free port on
#                        127.0.0.1), starts nginx with prefix DIR, waits until the port
#                        answers, prints exactly http://127.0.0.1:PORT on stdout.
#   nchan.sh stop DIR    SIGTERM to the pid in DIR/nginx.pid, waits for it to exit.
#
# NCHAN_PORT=N pins the port (one attempt, no retry): a restart on the same address.
# NCHAN_WORKERS=N runs N nginx worker processes (default 1).
#
# Everything lives in DIR (config, pid file, logs/, tmp/): several instances run at
# once with different DIRs, and the system nginx service and /etc/nginx are never
# touched. Install nginx + nchan first with install.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/nginx.conf.template"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
START_TIMEOUT_S="${NCHAN_START_TIMEOUT_S:-10}"
STOP_TIMEOUT_S="${NCHAN_STOP_TIMEOUT_S:-10}"
PORT_ATTEMPTS=5

die() { echo "nchan.sh: $*" >&2; exit 1; }

usage() { die "usage: nchan.sh start DIR | nchan.sh stop DIR"; }

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Exit status 0 once 127.0.0.1:$1 answers /healthz with 200.
answers() {
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/healthz" 2>/dev/null
}

running_pid() {
    local pid
    [ -s "$1/nginx.pid" ] || return 1
    pid="$(tr -d '[:space:]' < "$1/nginx.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    local dir="$1" port attempt deadline pid
    [ -x "$NGINX" ] || die "nginx not found at '$NGINX' (run targets/nchan/install.sh)"
    [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] \
        || die "nchan module not found (run targets/nchan/install.sh)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if pid="$(running_pid "$dir")"; then
        die "an instance is already running in $dir (pid $pid)"
    fi
    mkdir -p "$dir/logs" "$dir/tmp/client_body" "$dir/tmp/proxy" "$dir/tmp/fastcgi" \
        "$dir/tmp/uwsgi" "$dir/tmp/scgi"
    rm -f "$dir/nginx.pid"

    for attempt in $(seq 1 "$PORT_ATTEMPTS"); do
        if [ -n "${NCHAN_PORT:-}" ]; then
            [[ "$NCHAN_PORT" =~ ^[0-9]+$ ]] || die "NCHAN_PORT must be a port number, not '$NCHAN_PORT'"
            port="$NCHAN_PORT"
        else
            port="$(free_port)" || die "python3 could not find a free port"
        fi
        workers="${NCHAN_WORKERS:-1}"
        [[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "NCHAN_WORKERS must be a positive number, not '$workers'"
        sed -e "s/@PORT@/$port/g" -e "s/@USER@/$(id -un)/g" -e "s/@WORKERS@/$workers/g" \
            "$TEMPLATE" > "$dir/nginx.conf"
        # daemon on: nginx returns once bound (or fails with the bind error).
        if "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
                2>> "$dir/logs/start.log"; then
            deadline=$((SECONDS + START_TIMEOUT_S))
            until answers "$port" && running_pid "$dir" > /dev/null; do
                if (( SECONDS >= deadline )); then
                    stop "$dir" >/dev/null 2>&1 || true
                    die "nginx did not answer on 127.0.0.1:$port within ${START_TIMEOUT_S}s (see $dir/logs/error.log)"
                fi
                sleep 0.05
            done
            echo "http://127.0.0.1:$port"
            return 0
        fi
        if [ -z "${NCHAN_PORT:-}" ] \
            && grep -q "Address already in use" "$dir/logs/start.log" 2>/dev/null; then
            echo "nchan.sh: port $port taken, retrying ($attempt/$PORT_ATTEMPTS)" >&2
            : > "$dir/logs/start.log"
            continue
        fi
        die "nginx failed to start: $(tail -n 3 "$dir/logs/start.log" "$dir/logs/error.log" 2>/dev/null)"
    done
    die "no free port after $PORT_ATTEMPTS attempts"
}

stop() {
    local dir="$1" pid deadline
    [ -d "$dir" ] || die "no such directory: $dir"
    if ! pid="$(running_pid "$dir")"; then
        echo "nchan.sh: no running instance in $dir" >&2
        return 0
    fi
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS >= deadline )); then
            die "nginx (pid $pid) still running ${STOP_TIMEOUT_S}s after SIGTERM"
        fi
        sleep 0.05
    done
    rm -f "$dir/nginx.pid"
}

[ $# -eq 2 ] || usage
case "$1" in
    start) start "$2" ;;
    stop) stop "$2" ;;
    *) usage ;;
esac
