#!/usr/bin/python3
"""soak — omnigate under a steady load below capacity for a long while, then
10 000 idle keep-alive connections.

  soak.py [DURATION] [--rate R] [--build DIR] [--out DIR] [--idle N]
          [--idle-conns PATH] [--publish]

DURATION is seconds or a number with s/m/h (default 10m, at most 2h).

Load phase, for DURATION on one micronode:
  - the hydration mix (hydration.lua: ~80 % views, ~20 % feeds) on 16
    connections and 64 KiB ranges of clip-4 on /v1/o (media-ranges.lua) on
    4 connections, both paced by wrk's delay() hook (pace.lua) to 80 % and
    20 % of R requests per second (default 2000, well below the ~15 000 one
    worker serves closed-loop, so other work on the machine is not crowded);
  - slow clients: 3 that send their request head byte by byte over a quarter
    of head_timeout and read their answer through a 4 KiB receive buffer
    (they must be answered 200/206), and one slow-loris that would take twice
    head_timeout (it must get a clean 408 and a closed connection).
Every second omnigate's RSS and open FDs (/proc), inflight_requests,
requests and errors so far (/metrics) go to OUT/soak.csv.

Verdict (exit 1 on any failure):
  - errors: any wrk socket error or non-2xx, any server answer >= 400 other
    than the loris' expected 408s, any refused connection, any slow client
    not answered as expected;
  - RSS: after warm-up (the first 60 s, or 10 % of shorter runs) the highest
    RSS may exceed RSS at the end of warm-up by at most max(4 MiB, 10 %). A
    steady load holds a steady set of buffers; what moves RSS then is
    allocator arena and page-granularity noise (a few MiB, seen in runs), so
    the bound sits just above it: a leak of 8 bytes per request crosses it in
    10 minutes at 2000 req/s;
  - FDs: at most FD_SLACK more than at the end of warm-up (slow clients and
    the metrics scrape come and go), and once the load has stopped, no more
    than before it started;
  - idle connections: idle-conns.py (beside this file, or --idle-conns)
    opens N (default 10 000) keep-alive connections, each after one
    GET /healthz, against the same server after the load, and the RSS they
    add must be at most 1024 bytes per connection (10 000 under 25 MiB with
    room to spare).

Writes OUT/soak.csv, OUT/soak.json (summary, in perf.py's result style) and
OUT/soak.svg (RSS and FDs over time, gnuplot); --publish copies the SVG and
the summary to docs/perf/.
"""
import argparse
import csv
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib  # noqa: E402
from perf import load_of  # noqa: E402

MAX_SECONDS = 2 * 3600
HYDRATION_CONNS, MEDIA_CONNS = 16, 4
HYDRATION_SHARE = 0.8
HEAD_TIMEOUT = 10.0
SLOW_CLIENTS = 3
FD_SLACK = SLOW_CLIENTS + 1 + 4  # slow clients, the loris, scrapes and margin
RSS_SLACK_KIB, RSS_SLACK_SHARE = 4096, 0.10
IDLE_MAX_BYTES = 1024
SERVER_FLAGS = ("--head-timeout", "%gs" % HEAD_TIMEOUT, "--max-connections", "20000")


def parse_duration(text):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError("duration: seconds, or a number with s, m or h: %r" % text)
    secs = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not 10 <= secs <= MAX_SECONDS:
        raise argparse.ArgumentTypeError("duration %gs: from 10 s to %d s (2 h)" % (secs, MAX_SECONDS))
    return secs


# --- slow clients --------------------------------------------------------------

class SlowClients:
    """Threads that talk to the server slowly until stop(). .ok counts
    answered requests, .clean_408 the loris' timeouts, .failures what went
    wrong (each one an error)."""

    def __init__(self, port, token, media_addr, media_size):
        self.port, self.stop_ev, self.lock = port, threading.Event(), threading.Lock()
        self.ok = self.clean_408 = 0
        self.loris_since = None  # when the loris' current head started
        self.failures = []
        rest = "Host: soak\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n" % token
        self.heads = [
            "GET /v1/view/user-%03d HTTP/1.1\r\n" + rest,
            "GET /v1/feed/user-%03d?limit=3 HTTP/1.1\r\n" + rest,
            "GET /v1/o/" + media_addr + " HTTP/1.1\r\nRange: bytes=%d-%d\r\n" + rest,
        ]
        self.media_size = media_size
        self.threads = [threading.Thread(target=self._slow, args=(i,), daemon=True)
                        for i in range(SLOW_CLIENTS)]
        self.threads.append(threading.Thread(target=self._loris, daemon=True))

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(HEAD_TIMEOUT * 3)

    def errors(self):
        with self.lock:
            return len(self.failures)

    def expected_408(self):
        """408s the server may have sent the loris: those it read, and one
        more while its current head is past head_timeout."""
        with self.lock:
            t = self.loris_since
            return self.clean_408 + (t is not None and time.time() - t > HEAD_TIMEOUT - 1)

    def _fail(self, what):
        with self.lock:
            self.failures.append(what)

    def _connect(self, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(HEAD_TIMEOUT * 3)
        s.connect(("127.0.0.1", self.port))
        return s

    def _request(self, n):
        kind = n % 3
        if kind < 2:
            return self.heads[kind] % (n % 200), (200,)
        first = (n * 65536 * 7) % (self.media_size - 65536)
        return self.heads[2] % (first, first + 65535), (206,)

    def _slow(self, i):
        n = i
        while not self.stop_ev.is_set():
            head, want = self._request(n)
            n += SLOW_CLIENTS
            gap = HEAD_TIMEOUT / 4 / len(head)
            try:
                with self._connect(rcvbuf=4096) as s:
                    for b in head.encode():
                        s.send(bytes((b,)))
                        time.sleep(gap)
                    status, body = read_slowly(s)
                if status not in want:
                    self._fail("slow client: %d for %s" % (status, head.split("\r\n", 1)[0]))
                else:
                    with self.lock:
                        self.ok += 1
            except (OSError, ValueError) as e:
                self._fail("slow client: %s for %s" % (e, head.split("\r\n", 1)[0]))

    def _loris(self):
        """A head that would take 2 x head_timeout: the server must answer 408 and close."""
        n = 0
        while not self.stop_ev.is_set():
            head, _ = self._request(n)
            n += 1
            gap = 2 * HEAD_TIMEOUT / len(head)
            t0 = self.loris_since = time.time()
            try:
                with self._connect() as s:
                    status = None
                    for b in head.encode():
                        s.send(bytes((b,)))
                        if wait_readable(s, gap):
                            status, _ = read_slowly(s)
                            break
                if status != 408:
                    self._fail("slow-loris: %s after %.1fs" % (status or "no answer", time.time() - t0))
                else:
                    with self.lock:
                        self.clean_408 += 1
            except (OSError, ValueError) as e:
                self._fail("slow-loris: %s after %.1fs" % (e, time.time() - t0))
            self.loris_since = None


def wait_readable(s, seconds):
    s.settimeout(seconds)
    try:
        return len(s.recv(1, socket.MSG_PEEK)) >= 0
    except socket.timeout:
        return False
    finally:
        s.settimeout(HEAD_TIMEOUT * 3)


def read_slowly(s):
    """Read a whole Connection: close answer 1 KiB every 5 ms; (status, bytes)."""
    out = b""
    while True:
        chunk = s.recv(1024)
        if not chunk:
            break
        out += chunk
        time.sleep(0.005)
    if not out.startswith(b"HTTP/1.1 "):
        raise ValueError("no answer" if not out else "not HTTP: %r" % out[:40])
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    if m and int(m.group(1)) != len(body):
        raise ValueError("short body: %d of %s bytes" % (len(body), m.group(1).decode()))
    return int(out[9:12]), body


# --- sampling ------------------------------------------------------------------

def server_counts(samples, expected_408):
    """(requests, errors) from /metrics: every answer, and answers >= 400
    (less the loris' expected 408s) plus refused connections."""
    requests = errors = n408 = 0
    for labels, v in samples.get("http_requests_total", []):
        requests += v
        status = labels.get("status", "")
        if not (status.isdigit() and int(status) < 400):
            errors += v
        if status == "408":
            n408 += v
    errors -= min(n408, expected_408)
    errors += perflib.metric_sum(samples, "connections_refused_total")
    return int(requests), int(errors)


def sample(st, t0, base_requests, slow):
    pid = st.pids[0]
    m = perflib.scrape(st.admin)
    requests, errors = server_counts(m, slow.expected_408())
    return {"t": round(time.time() - t0, 1), "rss_kib": perflib.rss_kib(pid),
            "fds": perflib.open_fds(pid),
            "inflight": int(perflib.metric_sum(m, "inflight_requests")),
            "requests": requests - base_requests, "errors": errors + slow.errors()}


def load_phase(st, seconds, rate):
    """Runs the load for `seconds`, sampling every second; returns (rows,
    the samples when wrk has finished and when the slow clients have too,
    wrk results, slow)."""
    runs = {}

    def drive(name, scenario, conns, share):
        url, script, env, args, headers = load_of(st, scenario)
        env["PACE_MS"] = "%g" % (conns * 1000.0 / (rate * share))
        runs[name] = perflib.wrk(url, script, seconds, conns, env=env, args=args, headers=headers)

    token = st.token()
    addr, size = st.object_of("clip-4", token)
    slow = SlowClients(st.port, token, addr, size)
    base_requests, _ = server_counts(perflib.scrape(st.admin), 0)
    drivers = [threading.Thread(target=drive, args=a, daemon=True) for a in (
        ("hydration", "hydration-micronode", HYDRATION_CONNS, HYDRATION_SHARE),
        ("media", "range-64k", MEDIA_CONNS, 1 - HYDRATION_SHARE))]
    t0 = time.time()
    for d in drivers:
        d.start()
    slow.start()
    rows = []
    while True:
        time.sleep(max(0.0, t0 + len(rows) + 1 - time.time()))
        if not all(d.is_alive() for d in drivers):
            break  # only samples under the whole load
        rows.append(sample(st, t0, base_requests, slow))
        r = rows[-1]
        if len(rows) % 10 == 0:
            print("soak: %5.0fs rss %d KiB fds %d inflight %d requests %d errors %d" % (
                r["t"], r["rss_kib"], r["fds"], r["inflight"], r["requests"], r["errors"]),
                file=sys.stderr, flush=True)
    for d in drivers:
        d.join()
    done = sample(st, t0, base_requests, slow)
    slow.stop()  # lets each finish its request: the loris may take head_timeout
    final = sample(st, t0, base_requests, slow)
    missing = {"hydration", "media"} - set(runs)
    if missing:
        raise RuntimeError("wrk run(s) failed: %s" % ", ".join(sorted(missing)))
    return rows, done, final, runs, slow


def settled_fds(pid, want, timeout=5.0):
    """Open FDs once they drop to `want` (closing clients take a moment), or after timeout."""
    deadline = time.time() + timeout
    while perflib.open_fds(pid) > want and time.time() < deadline:
        time.sleep(0.1)
    return perflib.open_fds(pid)


def idle_check(st, script, n):
    """idle-conns.py against the running server: its JSON line, or {"error": ...}."""
    if not os.path.exists(script):
        return {"error": "%s not found" % script}
    r = subprocess.run([sys.executable, script, st.url, str(st.pids[0]), "-n", str(n),
                        "--max-bytes", str(IDLE_MAX_BYTES)],
                       capture_output=True, text=True, timeout=600)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    return {"error": "idle-conns.py exited %d: %s" % (r.returncode, r.stderr.strip()[-300:])}


# --- verdict, files, plot --------------------------------------------------------

def judge(rows, warm_s, fds_before, fds_after):
    after = [r for r in rows if r["t"] >= warm_s] or rows[-1:]
    w = after[0]
    top = max(after, key=lambda r: r["rss_kib"])
    rss_bound = max(RSS_SLACK_KIB, RSS_SLACK_SHARE * w["rss_kib"])
    fds_top = max(r["fds"] for r in after)
    fails = []
    if top["rss_kib"] - w["rss_kib"] > rss_bound:
        fails.append(("rss", "RSS grew %d KiB after warm-up (bound %d KiB): %d KiB at %.0fs, %d at %.0fs"
                      % (top["rss_kib"] - w["rss_kib"], rss_bound, w["rss_kib"], w["t"],
                         top["rss_kib"], top["t"])))
    if fds_top - w["fds"] > FD_SLACK:
        fails.append(("fds", "open FDs grew by %d after warm-up (bound %d)"
                      % (fds_top - w["fds"], FD_SLACK)))
    if fds_after > fds_before:
        fails.append(("fds", "open FDs %d after the load, %d before it" % (fds_after, fds_before)))
    # Least-squares slope of RSS after warm-up: a trend the bound may not catch yet.
    n = len(after)
    slope = 0.0
    if n > 2:
        mt = sum(r["t"] for r in after) / n
        mr = sum(r["rss_kib"] for r in after) / n
        den = sum((r["t"] - mt) ** 2 for r in after)
        slope = 60 * sum((r["t"] - mt) * (r["rss_kib"] - mr) for r in after) / den if den else 0.0
    return {"rss_kib": {"start": rows[0]["rss_kib"], "warm": w["rss_kib"], "end": rows[-1]["rss_kib"],
                        "max": max(r["rss_kib"] for r in rows), "bound_growth": int(rss_bound),
                        "slope_kib_per_min": round(slope, 1)},
            "fds": {"before": fds_before, "start": rows[0]["fds"], "warm": w["fds"],
                    "max": max(r["fds"] for r in rows), "end": rows[-1]["fds"], "after": fds_after,
                    "bound_growth": FD_SLACK}}, fails


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["t", "rss_kib", "fds", "inflight", "requests", "errors"])
        wr.writeheader()
        wr.writerows(rows)


PLOT = r"""
set terminal svg size 900,420 dynamic font 'sans,12' background '#ffffff'
set output '%(svg)s'
set datafile separator ','
set title "omnigate soak: %(title)s"
set xlabel 'seconds'
set ylabel 'RSS (MiB)'
set y2label 'open FDs'
set ytics nomirror
set y2tics
set yrange [0:%(rss_top)g]
set y2range [0:%(fds_top)g]
set xrange [0:%(secs)g]
set key below
set grid xtics ytics
set arrow from %(warm)g, graph 0 to %(warm)g, graph 1 nohead dashtype 2 linecolor rgb '#888888'
set label 'end of warm-up' at %(warm)g, graph 0.05 offset 0.5,0 textcolor rgb '#666666'
plot '%(csv)s' every ::1 using 1:($2/1024) axes x1y1 with lines lw 2 lc rgb '#1f77b4' title 'RSS', \
     '%(csv)s' every ::1 using 1:3 axes x1y2 with lines lw 2 lc rgb '#d62728' title 'open FDs'
"""


def plot(rows, csv_path, svg, warm_s, secs, title):
    if not shutil.which("gnuplot"):
        print("soak: gnuplot not found (scripts/bootstrap installs gnuplot-nox); no plot",
              file=sys.stderr)
        return False
    script = PLOT % {"svg": svg, "csv": csv_path, "warm": warm_s, "secs": secs, "title": title,
                     "rss_top": 1.5 * max(r["rss_kib"] for r in rows) / 1024,
                     "fds_top": 2 * max(r["fds"] for r in rows)}
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("duration", nargs="?", type=parse_duration, default=parse_duration("10m"))
    p.add_argument("--rate", type=float, default=2000, help="total paced req/s (default 2000)")
    p.add_argument("--build", default=os.path.join(perflib.ROOT, "build"))
    p.add_argument("--out", default=os.path.join(perflib.ROOT, "build", "perf"))
    p.add_argument("--idle", type=int, default=10000, help="idle connections to hold (0: skip)")
    p.add_argument("--idle-conns", default=os.path.join(perflib.PERF_DIR, "idle-conns.py"),
                   help="the idle-connection measurement tool")
    p.add_argument("--publish", action="store_true", help="copy soak.svg and soak.json to docs/perf/")
    a = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    os.makedirs(a.out, exist_ok=True)
    warm_s = min(60.0, 0.1 * a.duration)
    print("soak: %gs at ~%g req/s (%d%% hydration on %d conns, %d%% 64 KiB ranges on %d conns), "
          "%d slow clients + 1 slow-loris, warm-up %gs, then %d idle connections" % (
              a.duration, a.rate, round(100 * HYDRATION_SHARE), HYDRATION_CONNS,
              round(100 * (1 - HYDRATION_SHARE)), MEDIA_CONNS, SLOW_CLIENTS, warm_s, a.idle),
          file=sys.stderr, flush=True)

    with perflib.Stack(a.build, "micronode", workers=1, extra=SERVER_FLAGS) as st:
        pid = st.pids[0]
        fds_before = perflib.open_fds(pid)
        rows, done, final, runs, slow = load_phase(st, a.duration, a.rate)
        fds_after = settled_fds(pid, fds_before)
        res, fails = judge(rows, warm_s, fds_before, fds_after)
        idle = idle_check(st, a.idle_conns, a.idle) if a.idle else {"skipped": True}

    wrk_errors = sum(w["non2xx"] + w["socket_errors"] for w in runs.values())
    server_errors = final["errors"] - len(slow.failures)
    if wrk_errors or server_errors or slow.failures:
        fails.append(("errors", "errors: wrk %d, server %d, slow clients %d%s" % (
            wrk_errors, server_errors, len(slow.failures),
            (" (first: %s)" % slow.failures[0]) if slow.failures else "")))
    if "error" in idle:
        fails.append(("idle", "idle check did not run: " + idle["error"]))
    elif not idle.get("skipped"):
        if idle["conns"] < a.idle:
            fails.append(("idle", "idle check held %d of %d connections" % (idle["conns"], a.idle)))
        if (idle["per_idle_conn_bytes"] or 0) > IDLE_MAX_BYTES:
            fails.append(("idle", "idle connections cost %d bytes of RSS each (bound %d)" % (
                idle["per_idle_conn_bytes"], IDLE_MAX_BYTES)))
    checks = {c: "fail" if any(f[0] == c for f in fails) else "pass"
              for c in ("errors", "rss", "fds", "idle")}
    if idle.get("skipped"):
        checks["idle"] = "skipped"

    secs, requests = done["t"], done["requests"]
    build = os.path.relpath(os.path.abspath(a.build), perflib.ROOT)
    result = {
        "scenario": "soak",
        "commit": perflib.git_commit(),
        "build": build if not build.startswith("..") else os.path.abspath(a.build),
        "config": {"profile": "micronode", "workers": 1, "seconds": a.duration, "warmup_s": warm_s,
                   "rate_target": a.rate, "hydration_conns": HYDRATION_CONNS,
                   "media_conns": MEDIA_CONNS, "slow_clients": SLOW_CLIENTS, "slow_loris": 1,
                   "server_flags": list(SERVER_FLAGS), "idle_conns": a.idle},
        "rps": round(sum(w["rps"] for w in runs.values()), 1),
        "requests": requests,
        "errors": wrk_errors + server_errors + len(slow.failures),
        "wrk": runs,
        "slow_clients": {"answered": slow.ok, "clean_408": slow.clean_408,
                         "failures": slow.failures[:10]},
        "peak_rss_kib": res["rss_kib"]["max"],
        **res,
        "idle": idle,
        "checks": checks,
        "verdict": "fail" if fails else "pass",
        "failures": [f[1] for f in fails],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    csv_path, json_path, svg = (os.path.join(a.out, "soak." + e) for e in ("csv", "json", "svg"))
    write_csv(rows, csv_path)
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    title = "%gs at %.0f req/s, %s" % (a.duration, result["rps"], result["commit"])
    plotted = plot(rows, csv_path, svg, warm_s, a.duration, title)

    r, fd = result["rss_kib"], result["fds"]
    print("soak: %d requests in %.0fs; wrk %.0f req/s (hydration %.0f, media %.0f); errors %d" % (
        requests, secs, result["rps"], runs["hydration"]["rps"], runs["media"]["rps"], result["errors"]))
    print("soak: slow clients answered %d, slow-loris 408s %d" % (slow.ok, slow.clean_408))
    print("soak: RSS KiB start %d, after warm-up %d, end %d, max %d (bound +%d, slope %+.1f KiB/min)" % (
        r["start"], r["warm"], r["end"], r["max"], r["bound_growth"], r["slope_kib_per_min"]))
    print("soak: FDs before %d, start %d, after warm-up %d, max %d, end %d, after the load %d" % (
        fd["before"], fd["start"], fd["warm"], fd["max"], fd["end"], fd["after"]))
    if idle.get("per_idle_conn_bytes") is not None:
        print("soak: %d idle connections: RSS %d -> %d KiB, %d bytes each (bound %d)" % (
            idle["conns"], idle["rss_kib_before"], idle["rss_kib_after"],
            idle["per_idle_conn_bytes"], IDLE_MAX_BYTES))
    for check, f in fails:
        print("soak: FAIL (%s): %s" % (check, f))
    print("soak: %s; %s, %s%s" % (result["verdict"], json_path, csv_path, ", " + svg if plotted else ""))
    if a.publish:
        docs = os.path.join(perflib.ROOT, "docs", "perf")
        os.makedirs(docs, exist_ok=True)
        shutil.copy(json_path, docs)
        if plotted:
            shutil.copy(svg, docs)
        print("soak: published to %s" % os.path.relpath(docs, perflib.ROOT))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
