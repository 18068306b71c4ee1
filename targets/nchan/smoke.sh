#!/usr/bin/env bash
# Self-check of the nchan target: starts an instance in a temp dir, publishes 3
# messages, subscribes with curl from the start of the buffer, with Last-Event-ID and
# live, checks the exact frames (BEHAVIOUR.md), and stops it. Exit 0 on success.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="$(mktemp -d /tmp/nchan-smoke.XXXXXX)"
cleanup() { "$HERE/nchan.sh" stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT

fail() { echo "smoke.sh: FAIL: $*" >&2; exit 1; }

# The field lines of a stream (id/data/event/retry), without comments and blank lines.
fields() { grep -E '^(id|data|event|retry):' || true; }

URL="$("$HERE/nchan.sh" start "$DIR")"
[[ "$URL" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "start printed '$URL'"
CHAN="smoke-$$-$RANDOM"

# Raw bytes of a subscription; $1 = max seconds (curl's timeout is the normal end).
sub() {
    local t="$1"; shift
    curl -s -N --max-time "$t" -H 'Accept: text/event-stream' "$@" "$URL/sub/$CHAN" || true
}

ids=()
for i in 1 2 3; do
    ack="$(curl -sS --max-time 5 -X POST -H 'Accept: application/json' -d "msg-$i" \
        -w '\n%{http_code}' "$URL/pub/$CHAN")"
    status="${ack##*$'\n'}"
    [ "$status" = 202 ] || fail "publish $i: status $status (no subscriber yet: 202 expected)"
    id="$(printf '%s' "${ack%$'\n'*}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_message_id"])')"
    [[ "$id" =~ ^[0-9]+:[0-9]+$ ]] || fail "publish $i: id '$id' is not <seconds>:<n>"
    ids+=("$id")
done

# From the start of the buffer: 0:0 is older than any message.
got="$(sub 1.5 -H 'Last-Event-ID: 0:0' | fields)"
want="$(printf 'id: %s\ndata: msg-1\nid: %s\ndata: msg-2\nid: %s\ndata: msg-3\n' "${ids[@]}")"
[ "$got" = "$want" ] || fail "from the start: got [$got] want [$want]"

# Resume after the first id: exactly the 2nd and 3rd, nothing twice.
got="$(sub 1.5 -H "Last-Event-ID: ${ids[0]}" | fields)"
want="$(printf 'id: %s\ndata: msg-2\nid: %s\ndata: msg-3\n' "${ids[1]}" "${ids[2]}")"
[ "$got" = "$want" ] || fail "resume after ${ids[0]}: got [$got] want [$want]"

# No cursor: only messages published after subscribing; heartbeats are ':ping' comments.
: > "$DIR/live.out"
sub 3 > "$DIR/live.out" &
CURL=$!
for _ in $(seq 1 100); do grep -q '^: hi$' "$DIR/live.out" && break; sleep 0.05; done
grep -q '^: hi$' "$DIR/live.out" || fail "live subscriber got no ': hi' within 5 s"
ack="$(curl -sS --max-time 5 -X POST -d 'msg-live' -o /dev/null -w '%{http_code}' "$URL/pub/$CHAN")"
[ "$ack" = 201 ] || fail "publish with a subscriber: status $ack (201 expected)"
wait "$CURL" || true
frames="$(fields < "$DIR/live.out")"
live_re=$'^id: [0-9]+:[0-9]+\ndata: msg-live$'
[[ "$frames" =~ $live_re ]] \
    || fail "live subscriber: got [$frames], want only msg-live"
grep -q '^:ping$' "$DIR/live.out" || fail "no ':ping' heartbeat within 3 s"

"$HERE/nchan.sh" stop "$DIR"
echo "smoke.sh: ok ($URL, ids ${ids[*]})"
