#!/usr/bin/env python3
"""Probes a running nginx + nchan instance (nchan.sh start) and prints what it does.

Usage: [NCHAN_DIR=DIR] probe.py BASE_URL [probe ...]
(no probe name: all but shutdown, which stops and restarts the instance in DIR)

Every facts line in BEHAVIOUR.md comes from one of these probes. Standard library
only, raw sockets so that the exact bytes are visible; every read has a deadline and
every loop a bound.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlparse


class Stream:
    """One raw SSE subscription: a socket, the response head and the parsed events."""

    def __init__(self, base, path, headers=None, rcvbuf=None):
        u = urlparse(base)
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((u.hostname, u.port))
        hdrs = {"Host": u.netloc, "Accept": "text/event-stream"}
        hdrs.update(headers or {})
        req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.sock.sendall(req.encode())
        self.buf = b""
        self.head = None
        self.status = None
        self.headers = {}
        self.raw = b""
        self.events = []  # dicts: id, event, data
        self.comments = []
        self.closed = False
        self._pending = {}

    def _parse(self):
        if self.head is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.head = self.buf[:i].decode()
            self.buf = self.buf[i + 4:]
            lines = self.head.split("\r\n")
            self.status = int(lines[0].split()[1])
            for l in lines[1:]:
                k, _, v = l.partition(":")
                self.headers[k.strip().lower()] = v.strip()
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            line = line.decode()
            if line == "":
                if "data" in self._pending:
                    self.events.append(self._pending)
                self._pending = {}
            elif line.startswith(":"):
                self.comments.append((time.monotonic(), line))
            else:
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "data":
                    self._pending["data"] = self._pending["data"] + "\n" + v if "data" in self._pending else v
                else:
                    self._pending[k] = v

    def read_until(self, pred, timeout):
        """Reads until pred(self) is true, the peer closes, or timeout seconds pass."""
        deadline = time.monotonic() + timeout
        while not pred(self) and not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                self.closed = True
                break
            self.raw += chunk
            self.buf += chunk
            self._parse()
        return self

    def close(self):
        self.sock.close()


def request(base, method, path, body=b"", headers=None, timeout=5):
    """One HTTP/1.1 request on its own connection; returns (status, headers, body)."""
    u = urlparse(base)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    hdrs = {"Host": u.netloc, "Connection": "close", "Content-Length": str(len(body))}
    hdrs.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    s.sendall(req.encode() + body)
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    h = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        h[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), h, rest


def publish(base, chan, body, json_ack=True, path="pub"):
    st, h, b = request(base, "POST", f"/{path}/{chan}", body.encode(),
                       {"Accept": "application/json"} if json_ack else {})
    return st, (json.loads(b) if json_ack and st < 300 else b.decode())


def chan():
    return "probe-" + uuid.uuid4().hex[:12]


def has(n):
    return lambda s: len(s.events) >= n


def p_headers(base):
    s = Stream(base, f"/sub/{chan()}").read_until(lambda s: len(s.comments) >= 2, 5)
    print("status", s.status, "headers", s.headers)
    print("first bytes", s.raw[:len(s.raw)].split(b"\r\n\r\n", 1)[1][:40])
    s.close()


def p_ack_ids(base):
    c = chan()
    st, ack = publish(base, c, "no-subscriber")
    print("publish with no subscriber:", st, ack)
    s = Stream(base, f"/sub/{c}").read_until(lambda s: s.status, 5)
    st2, ack2 = publish(base, c, "with-subscriber")
    s.read_until(has(1), 5)
    print("publish with a subscriber:", st2, ack2, "delivered", s.events)
    print("ack last_message_id == delivered id:", ack2["last_message_id"] == s.events[0].get("id"))
    st3, b3 = publish(base, c, "plain", json_ack=False)
    print("publish without Accept json:", st3, repr(b3))
    s.close()


def p_id_format(base):
    c = chan()
    ids = []
    t0 = time.time()
    for i in range(6):
        ids.append(publish(base, c, f"m{i}")[1]["last_message_id"])
        if i == 2:
            time.sleep(1.1)
    print("wall time at start", int(t0), "ids", ids)


def p_resume(base):
    c = chan()
    ids = [publish(base, c, f"r{i}")[1]["last_message_id"] for i in range(5)]
    print("published", ids)
    def sub(hdrs, path_suffix="", wait=1.5):
        s = Stream(base, f"/sub/{c}{path_suffix}", hdrs).read_until(has(10), wait)
        s.close()
        return s.status, [(e.get("id"), e["data"]) for e in s.events]
    print("no cursor:", sub({}))
    print("Last-Event-ID ids[1]:", sub({"Last-Event-ID": ids[1]}))
    print("Last-Event-ID ids[4] (the last):", sub({"Last-Event-ID": ids[4]}))
    print("?last_event_id=ids[2]:", sub({}, f"?last_event_id={ids[2]}"))
    t, n = ids[0].split(":")
    print("older than buffer (1000:0):", sub({"Last-Event-ID": "1000:0"}))
    print("0:0:", sub({"Last-Event-ID": "0:0"}))
    print("same second, unknown tag 99:", sub({"Last-Event-ID": f"{t}:99"}))
    print("previous second, tag 99:", sub({"Last-Event-ID": f"{int(t) - 1}:99"}))
    print("future (+1e6 s):", sub({"Last-Event-ID": f"{int(t) + 1000000}:0"}))
    for bad in ["garbage", "5", "-1", "", "1:2:3", "12a:0", f"{t}:[0]"]:
        print(f"malformed {bad!r}:", sub({"Last-Event-ID": bad}))


def p_future_then_live(base):
    """What a subscriber with a cursor in the future gets once messages are published."""
    c = chan()
    publish(base, c, "before")
    s = Stream(base, f"/sub/{c}", {"Last-Event-ID": "2999999999:0"}).read_until(lambda s: s.status, 5)
    time.sleep(0.3)
    publish(base, c, "after-1")
    publish(base, c, "after-2")
    s.read_until(has(2), 2)
    print("future cursor then live:", [(e.get("id"), e["data"]) for e in s.events])
    s.close()
    s = Stream(base, f"/sub/{c}", {"Last-Event-ID": "garbage"}).read_until(lambda s: s.status, 5)
    time.sleep(0.3)
    publish(base, c, "after-3")
    s.read_until(has(1), 2)
    print("garbage cursor then live:", [(e.get("id"), e["data"]) for e in s.events])
    s.close()


def p_boundary(base):
    """Resume while publishing: no gap, no duplicate at the replay/live boundary."""
    c = chan()
    first = publish(base, c, "b0")[1]["last_message_id"]
    n = 2000
    acked = []
    def pub():
        for i in range(1, n + 1):
            acked.append(publish(base, c, f"b{i}")[1]["last_message_id"])
    t = threading.Thread(target=pub)
    t.start()
    time.sleep(0.05)
    s = Stream(base, f"/sub/{c}", {"Last-Event-ID": first})
    t.join(60)
    s.read_until(has(n), 10)
    got = [e["data"] for e in s.events]
    want = [f"b{i}" for i in range(1, n + 1)]
    print(f"resume during {n} publishes: got {len(got)}, in order and complete: {got == want}, "
          f"duplicates: {len(got) - len(set(got))}")
    print("acked ids == delivered ids:", acked == [e["id"] for e in s.events])
    s.close()


def p_concurrent(base):
    """Several publishers at once, several subscribers: same order everywhere?"""
    c = chan()
    subs = [Stream(base, f"/sub/{c}") for _ in range(50)]
    for s in subs:
        s.read_until(lambda s: s.status, 5)
    per, pubs = 200, 4
    acks = {p: [] for p in range(pubs)}
    def pub(p):
        for i in range(per):
            acks[p].append((publish(base, c, f"p{p}-{i}")[1]["last_message_id"], f"p{p}-{i}"))
    ts = [threading.Thread(target=pub, args=(p,)) for p in range(pubs)]
    [t.start() for t in ts]
    [t.join(60) for t in ts]
    total = per * pubs
    for s in subs:
        s.read_until(has(total), 10)
    seqs = [[(e["id"], e["data"]) for e in s.events] for s in subs]
    print(f"{len(subs)} subscribers, {pubs} publishers x {per}: counts",
          sorted(set(len(x) for x in seqs)), "all identical:", all(x == seqs[0] for x in seqs))
    order = [d for _, d in seqs[0]]
    ok = all([d for d in order if d.startswith(f"p{p}-")] == [f"p{p}-{i}" for i in range(per)] for p in range(pubs))
    print("each publisher's messages in its ack order:", ok)
    ackmap = {d: i for p in acks for i, d in acks[p]}
    print("ack id maps to the delivered id for every message:",
          all(ackmap[d] == i for i, d in seqs[0]))
    print("ids unique:", len(set(i for i, _ in seqs[0])) == total)
    for s in subs:
        s.close()


def p_overflow(base):
    """Publish more than the small buffer (/pub-small, length 5) holds, then resume."""
    c = chan()
    ids = [publish(base, c, f"o{i}", path="pub-small")[1]["last_message_id"] for i in range(12)]
    st, info = publish(base, c, "o12", path="pub-small")
    print("after 13 publishes the channel holds:", info["messages"])
    s = Stream(base, f"/sub/{c}", {"Last-Event-ID": ids[0]}).read_until(has(20), 1.5)
    print("resume from the 1st id (evicted):", s.status, [(e["id"], e["data"]) for e in s.events])
    s.close()


def p_slow_reader(base):
    """A subscriber that stops reading while 20 MB are published: dropped, closed or buffered?"""
    c = chan()
    slow = Stream(base, f"/sub/{c}").read_until(lambda s: s.status, 5)
    fast = Stream(base, f"/sub/{c}").read_until(lambda s: s.status, 5)
    n, size = 400, 50000
    pad = "x" * size
    done = threading.Event()
    def pub():
        for i in range(n):
            publish(base, c, f"s{i} {pad}")
        done.set()
    t = threading.Thread(target=pub)
    t.start()
    while not done.is_set():
        fast.read_until(has(n), 0.2)
    t.join(60)
    fast.read_until(has(n), 10)
    print(f"fast subscriber got {len(fast.events)}/{n} while the slow one did not read")
    time.sleep(1)
    slow.read_until(has(n), 20)
    got = [e["data"].split()[0] for e in slow.events]
    missing = [f"s{i}" for i in range(n) if f"s{i}" not in set(got)]
    print(f"slow subscriber then read: got {len(got)}/{n}, closed by server: {slow.closed}, "
          f"first missing: {missing[:5]}, in order: {got == sorted(got, key=lambda x: int(x[1:]))}")
    fast.close()
    slow.close()


def p_many(base):
    """How many subscribers at once (bounded: 1000)."""
    c = chan()
    subs = []
    for _ in range(1000):
        subs.append(Stream(base, f"/sub/{c}"))
    for s in subs:
        s.read_until(lambda s: s.status, 5)
    st, info = publish(base, c, "fanout")
    for s in subs:
        s.read_until(has(1), 5)
    print("1000 subscribers: statuses", sorted(set(s.status for s in subs)), "got it:",
          sum(1 for s in subs if s.events), "ack says subscribers:", info["subscribers"], "status", st)
    for s in subs:
        s.close()


def p_heartbeat(base):
    s = Stream(base, f"/sub/{chan()}").read_until(lambda s: len(s.comments) >= 5, 8)
    ts = [t for t, _ in s.comments]
    print("comments:", [c for _, c in s.comments], "gaps s:", [round(b - a, 2) for a, b in zip(ts, ts[1:])])
    print("raw:", s.raw.split(b"\r\n\r\n", 1)[1][:60])
    s.close()


def p_future_cursor(base):
    """A cursor 2 s ahead of the newest id: which later publishes are delivered?"""
    c = chan()
    now = int(publish(base, c, "first")[1]["last_message_id"].split(":")[0])
    cur = f"{now + 2}:0"
    s = Stream(base, f"/sub/{c}", {"Last-Event-ID": cur}).read_until(lambda s: s.status, 5)
    pubs = []
    for i in range(10):
        pubs.append(publish(base, c, f"f{i}")[1]["last_message_id"])
        s.read_until(lambda s: False, 0.5)
    print("cursor", cur, "acked", pubs)
    print("delivered", [e["id"] for e in s.events])
    print("':ping' comments while publishing every 0.5 s for 5 s:",
          len([x for x in s.comments if x[1] == ":ping"]))
    s.close()


def p_same_second(base):
    """A cursor in the current second with a tag not yet reached."""
    c = chan()
    t = publish(base, c, "first")[1]["last_message_id"].split(":")[0]
    s = Stream(base, f"/sub/{c}", {"Last-Event-ID": f"{t}:99"}).read_until(lambda s: s.status, 5)
    acked = [publish(base, c, f"q{i}")[1]["last_message_id"] for i in range(3)]
    s.read_until(has(3), 1.5)
    print("cursor", f"{t}:99", "acked", acked, "delivered", [e["id"] for e in s.events])
    s.close()


def p_foreign_cursor(base):
    """An id of another channel as the cursor: issued a second apart, then in the same second."""
    for gap in (1.1, 0):
        a, b = chan(), chan()
        had = [publish(base, a, f"e{i}")[1]["last_message_id"] for i in range(4)]
        time.sleep(gap)
        f = publish(base, b, "f0")[1]["last_message_id"]
        time.sleep(gap)
        away = [publish(base, a, f"a{i}")[1]["last_message_id"] for i in range(3)]
        s = Stream(base, f"/sub/{a}", {"Last-Event-ID": f}).read_until(lambda s: s.status, 5)
        for i in range(3):
            publish(base, a, f"l{i}")
        s.read_until(lambda s: False, 1.5)
        print(f"A {had} + {away}, foreign id {f} (gap {gap} s):",
              s.status, [(e["id"], e["data"]) for e in s.events])
        s.close()


def nchan_status(base):
    body = request(base, "GET", "/nchan_status")[2].decode()
    return dict((k.strip(), v.strip()) for k, _, v in (l.partition(":") for l in body.splitlines()))


def p_disconnect(base):
    """20 subscribers close (10 FIN, 10 RST): when does nchan's count drop?"""
    c = chan()
    base0 = int(nchan_status(base)["subscribers"])
    ss = [Stream(base, f"/sub/{c}").read_until(lambda s: s.comments, 5) for _ in range(20)]
    print("subscribers before", base0, "with 20 open", nchan_status(base)["subscribers"])
    for s in ss[:10]:
        s.close()
    for s in ss[10:]:
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01" + b"\x00" * 7)
        s.close()
    t0 = time.monotonic()
    while int(nchan_status(base)["subscribers"]) != base0 and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    print("back to", nchan_status(base)["subscribers"], f"after {time.monotonic() - t0:.2f} s")


def worker_rss_kb(d):
    master = open(os.path.join(d, "nginx.pid")).read().strip()
    pids = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True).stdout.split()
    return sum(int(open(f"/proc/{p}/status").read().split("VmRSS:")[1].split()[0]) for p in pids)


def p_slow_memory(base):
    """Worker memory while 50 MB queue up for one subscriber that does not read (needs NCHAN_DIR)."""
    d = os.environ.get("NCHAN_DIR")
    if not d:
        print("skipped: set NCHAN_DIR to the instance's DIR")
        return
    c = chan()
    slow = Stream(base, f"/sub/{c}").read_until(lambda s: s.status, 5)
    before = worker_rss_kb(d)
    pad = "x" * 100000
    for i in range(500):
        publish(base, c, f"s{i} {pad}", path="pub-small")
    after = worker_rss_kb(d)
    print(f"worker RSS {before} kB -> {after} kB after 500 x 100 kB for a non-reading subscriber "
          "(channel buffer: 5 messages)")
    slow.read_until(has(500), 30)
    d_ = [int(e["data"].split()[0][1:]) for e in slow.events]
    print(f"then it reads: {len(d_)}/500, in order and contiguous: {d_ == list(range(500))}, "
          f"closed by server: {slow.closed}")
    slow.close()


def p_shutdown(base):
    """SIGTERM (nchan.sh stop) with a subscriber open, then a restart on the same port
    (needs NCHAN_DIR; stops and restarts the instance, so run it last and alone)."""
    d = os.environ.get("NCHAN_DIR")
    if not d:
        print("skipped: set NCHAN_DIR to the instance's DIR")
        return
    here = os.path.dirname(os.path.abspath(__file__))
    c = chan()
    publish(base, c, "before-restart")
    s = Stream(base, f"/sub/{c}").read_until(lambda s: s.status, 5)
    publish(base, c, "live")
    s.read_until(has(1), 5)
    n = len(s.raw)
    subprocess.run([f"{here}/nchan.sh", "stop", d], check=True)
    s.read_until(lambda s: False, 5)
    print("after SIGTERM: closed", s.closed, "bytes after the last event:", s.raw[n:])
    env = dict(os.environ, NCHAN_PORT=base.rsplit(":", 1)[1])
    subprocess.run([f"{here}/nchan.sh", "start", d], env=env, check=True, capture_output=True)
    r = Stream(base, f"/sub/{c}", {"Last-Event-ID": "0:0"}).read_until(has(1), 1.5)
    print("after restart, from the oldest:", r.status, r.events)
    r.close()
    print("publish after restart:", publish(base, c, "after"))


PROBES = {k[2:]: v for k, v in dict(globals()).items() if k.startswith("p_")}

if __name__ == "__main__":
    base = sys.argv[1]
    for name in sys.argv[2:] or [p for p in PROBES if p != "shutdown"]:
        print(f"== {name}")
        PROBES[name](base)
