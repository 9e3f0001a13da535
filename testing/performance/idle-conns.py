#!/usr/bin/python3
"""What an idle keep-alive connection costs a running omnigate, in RSS.

Opens N connections to URL, sends one `GET /healthz` on each (keep-alive),
reads the whole response, keeps every connection open, waits --settle
seconds and prints one JSON line:

  {"conns": N, "rss_kib_before": B, "rss_kib_after": A, "per_idle_conn_bytes": P, ...}

where P = (A - B) KiB / N, RSS read from /proc/PID/status. Before the
baseline is taken, --warmup connections each do one request and close, so
one-time costs (the first request on each worker) are not charged to the
idle connections.

Exit status: 0, or 1 when P is over --max-bytes, or 2 when fewer than N
connections could be opened and held (refused with 503, closed, timed out).
The tool raises its own RLIMIT_NOFILE soft limit to the hard limit; the
server needs max_connections and its own descriptor limit above N.

  testing/performance/idle-conns.py http://127.0.0.1:9080 $(pidof omnigate) -n 10000
"""
import argparse
import json
import resource
import socket
import sys
import time
import urllib.parse

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: idle-conns\r\n\r\n"


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    if want == resource.RLIM_INFINITY:  # the kernel caps descriptors at fs.nr_open
        with open("/proc/sys/fs/nr_open") as f:
            want = int(f.read())
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def read_response(s):
    """Read one response; returns (status, lowercased head text). Raises on EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise EOFError("closed before a response")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    text = head.decode("latin-1").lower()
    status = int(text.split(None, 2)[1])
    length = 0
    for line in text.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip() == "content-length":
            length = int(v)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise EOFError("closed inside a response body")
        body += chunk
    return status, text


def open_idle(host, port, n, batch, timeout):
    """n connections, each after one keep-alive request answered 200.
    Returns (sockets held, list of error strings)."""
    held, errors = [], []
    while len(held) < n and len(errors) < 10:
        group = []
        try:
            for _ in range(min(batch, n - len(held))):
                group.append(socket.create_connection((host, port), timeout=timeout))
            for s in group:
                s.sendall(REQUEST)
            for s in group:
                status, head = read_response(s)
                if status != 200 or "\r\nconnection: close" in head:
                    raise RuntimeError("answer %d%s" % (status, " (close)" if "close" in head else ""))
                held.append(s)
        except (OSError, EOFError, RuntimeError, ValueError) as e:
            errors.append("after %d connections: %s" % (len(held), e))
            for s in group:
                if s not in held:
                    s.close()
    return held, errors


def still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="service URL of a running omnigate, http://HOST:PORT")
    ap.add_argument("pid", type=int, help="its process id (RSS is read from /proc)")
    ap.add_argument("-n", "--conns", type=int, default=10000)
    ap.add_argument("--max-bytes", type=int, default=1024,
                    help="fail when an idle connection costs more (default 1024)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before measuring")
    ap.add_argument("--warmup", type=int, default=64)
    ap.add_argument("--batch", type=int, default=250, help="connections opened at once")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    if a.conns < 1:
        ap.error("--conns must be at least 1")

    u = urllib.parse.urlsplit(a.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    limit = raise_nofile()
    if limit != resource.RLIM_INFINITY and limit < a.conns + 32:
        print("idle-conns: RLIMIT_NOFILE %d is too low for %d connections" % (limit, a.conns),
              file=sys.stderr)
        return 2

    warm, errors = open_idle(host, port, a.warmup, a.batch, a.timeout)
    for s in warm:
        s.close()
    time.sleep(0.3)
    before = rss_kib(a.pid)
    held, more = open_idle(host, port, a.conns, a.batch, a.timeout)
    errors += more
    time.sleep(a.settle)
    after = rss_kib(a.pid)
    open_now = sum(1 for s in held if still_open(s))
    per_conn = round((after - before) * 1024 / open_now) if open_now else None
    out = {"conns": open_now, "rss_kib_before": before, "rss_kib_after": after,
           "per_idle_conn_bytes": per_conn, "max_bytes": a.max_bytes}
    if errors:
        out["errors"] = errors
    print(json.dumps(out), flush=True)
    for s in held:
        s.close()
    if open_now < a.conns:
        print("idle-conns: held %d of %d connections" % (open_now, a.conns), file=sys.stderr)
        return 2
    return 1 if per_conn > a.max_bytes else 0


if __name__ == "__main__":
    sys.exit(main())
