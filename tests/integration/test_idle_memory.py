"""Idle keep-alive connections: what they cost in RSS (measured with
testing/performance/idle-conns.py), and that connections which went idle —
read buffer and request state given back — serve pipelined bursts, heads
split into many small writes and bodies when they come back."""
import json
import os
import socket
import subprocess
import time

from harness import *
from profiles import start_body_sink
from test_http_basics import Conn

TOOL = os.path.join(ROOT, "testing", "performance", "idle-conns.py")


def test_idle_connection_costs_under_1_kib():
    srv = start_omnigate("--max-connections", "10000", "--log-level", "warn")
    r = subprocess.run(["/usr/bin/python3", TOOL, srv.url, str(srv.proc.pid), "-n", "3000",
                        "--max-bytes", "1024"], capture_output=True, text=True, timeout=300)
    check(r.stdout.strip(), "no report: %s" % r.stderr)
    out = json.loads(r.stdout)
    check(out["conns"] == 3000, out)
    check(out["per_idle_conn_bytes"] <= 1024,
          "an idle connection costs %d bytes of RSS: %s" % (out["per_idle_conn_bytes"], out))
    check(r.returncode == 0, (r.returncode, r.stderr))


def request(path, corr, extra=b""):
    return (b"GET %s HTTP/1.1\r\nHost: t\r\nX-Corr-ID: %s\r\n%s\r\n"
            % (path.encode(), corr.encode(), extra))


def idle_conns(srv, n):
    """n connections, each after one request, left idle long enough for the
    server to have given their buffers back (more than a worker caches)."""
    conns = []
    for i in range(n):
        c = Conn(srv.port)
        c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.send(request("/healthz", "warm-%d" % i))
        check(c.response()[0] == 200)
        conns.append(c)
    time.sleep(0.2)
    return conns


def test_pipelined_bursts_after_idle():
    srv = start_omnigate()
    conns = idle_conns(srv, 80)
    for rnd in range(2):
        paths = ["/healthz", "/nope", "/readyz"]
        for i, c in enumerate(conns):
            c.send(b"".join(request(paths[k % 3], "c%d-r%d-%d" % (i, rnd, k)) for k in range(12)))
        for i, c in enumerate(conns):
            got = [c.response() for _ in range(12)]
            check([g[0] for g in got] == [200, 404, 200] * 4, (i, [g[0] for g in got]))
            check([g[1]["x-corr-id"] for g in got] == ["c%d-r%d-%d" % (i, rnd, k) for k in range(12)],
                  "answers out of order or crossed between connections")
            check("connection" not in got[-1][1], got[-1][1])
        time.sleep(0.2)  # idle again: buffers go back, the next round takes them anew
    for c in conns:
        c.close()


def test_heads_split_into_small_writes_after_idle():
    srv = start_omnigate()
    conns = idle_conns(srv, 40)
    for rnd in range(2):
        # Every connection holds a partial head at once, so each needs a
        # buffer of its own; a crossed buffer shows as a wrong X-Corr-ID.
        reqs = [request("/healthz", "split-%d-%d" % (i, rnd), b"X-Pad: %s\r\n" % (b"p" * (i * 7)))
                for i in range(len(conns))]
        for off in range(0, max(len(r) for r in reqs), 3):
            for c, r in zip(conns, reqs):
                if off < len(r):
                    c.send(r[off:off + 3])
            time.sleep(0.002)
        for i, c in enumerate(conns):
            st, h, body = c.response()
            check(st == 200 and h["x-corr-id"] == "split-%d-%d" % (i, rnd), (i, st, h))
        time.sleep(0.2)
    for c in conns:
        c.close()


def test_bodies_in_pieces_after_idle():
    srv, put = start_body_sink()
    conns = idle_conns(srv, 40)
    body = bytes(range(256)) * 80  # 20 KiB: more than the room behind a head
    for i, c in enumerate(conns):
        c.send(put + b"X-Corr-ID: body-%d\r\nContent-Length: %d\r\n\r\n" % (i, len(body)))
    for off in range(0, len(body), 4096):
        for c in conns:
            c.send(body[off:off + 4096])
    for i, c in enumerate(conns):
        st, h, _ = c.response()  # the whole body is read and stored (201 new, 200 again)
        check(st in (200, 201) and h["x-corr-id"] == "body-%d" % i, (i, st, h))
        c.send(request("/healthz", "after-%d" % i))
        st, h, _ = c.response()
        check(st == 200 and h["x-corr-id"] == "after-%d" % i, (i, st, h))
    for c in conns:
        c.close()


if __name__ == "__main__":
    run_tests(globals())
