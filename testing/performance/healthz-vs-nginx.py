#!/usr/bin/python3
"""omnigate's /healthz against nginx `return 200`: the cost of the HTTP shell.

  healthz-vs-nginx.py [--seconds 8] [--conns 64] [--workers 1] [--rounds 3]
                      [--build DIR] [--json FILE] [--publish]

Both servers run with the same worker count, request logging off on both
(omnigate --log-level warn writes no request lines; nginx access_log off),
pinned to the same CPUs (perflib: servers on CPU 0, wrk on the others), and
are loaded by the same plain wrk (one thread, keep-alive, no Lua) in
alternating rounds: omnigate, nginx, then nginx, omnigate, ... For each run
it records req/s, p50/p99 and the server's CPU per request (utime + stime of
every server process from /proc, over the run). It prints the medians,
their ratios, and the median of each round's own ratio (paired: the two
runs of a round share the machine's state), writes every run to
build/perf/healthz-vs-nginx.json, and with --publish copies that to
docs/perf/ for render-docs.py.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib  # noqa: E402

NGINX_CONF = """worker_processes %(workers)d;
daemon off;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:%(port)d reuseport;
        location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
"""


def tree_cpu_seconds(pid):
    """CPU seconds of pid and its direct children (nginx's workers)."""
    total = perflib.cpu_seconds(pid)
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        kids = []
    for k in kids:
        try:
            total += perflib.cpu_seconds(k)
        except OSError:
            pass
    return total


def plain_wrk(url, seconds, conns):
    """wrk without a Lua script: req/s, p50/p99 (ms), requests, errors."""
    r = subprocess.run(["wrk", "-t1", "-c%d" % conns, "-d%gs" % seconds, "--latency", url],
                       capture_output=True, text=True, timeout=seconds + 60,
                       preexec_fn=perflib.pin(perflib.LOAD_CPUS))
    out = r.stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        return float(m.group(1)) * unit[m.group(2)] if m else None
    reqs = int(re.search(r"^\s*(\d+) requests in", out, re.M).group(1))
    errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs += int(m.group(1)) if m else 0
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": pct(50), "p99_ms": pct(99), "requests": reqs, "errors": errs}


def measure(name, pid, url, seconds, conns):
    c0 = tree_cpu_seconds(pid)
    w = plain_wrk(url, seconds, conns)
    c1 = tree_cpu_seconds(pid)
    w["cpu_us_per_req"] = 1e6 * (c1 - c0) / max(w["requests"], 1)
    w["server"] = name
    print("%-9s %9.0f req/s  p50 %.3f ms  p99 %.3f ms  cpu %.2f us/req  errors %d" % (
        name, w["rps"], w["p50_ms"], w["p99_ms"], w["cpu_us_per_req"], w["errors"]),
        file=sys.stderr, flush=True)
    return w


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--build", default=os.environ.get("OG_BUILD", "build"))
    p.add_argument("--json", default=os.path.join(perflib.ROOT, "build", "perf", "healthz-vs-nginx.json"))
    p.add_argument("--publish", action="store_true")
    a = p.parse_args()
    if not shutil.which("nginx") or not shutil.which("wrk"):
        sys.exit("healthz-vs-nginx: needs nginx and wrk (scripts/bootstrap installs both)")

    tmp = tempfile.mkdtemp(prefix="og-vs-nginx-")
    procs = []
    try:
        og_port, og_admin, ng_port = perflib.free_port(), perflib.free_port(), perflib.free_port()
        og_bin = os.path.join(a.build, "omnigate")
        # nginx has no rate limit here: omnigate's bucket is on but never reached.
        og = subprocess.Popen([og_bin, "--bind", "127.0.0.1:%d" % og_port,
                               "--admin", "127.0.0.1:%d" % og_admin, "--workers", str(a.workers),
                               "--log-level", "warn"] + perflib.unreached_rate(og_bin),
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "og.log"), "w"),
                              preexec_fn=perflib.pin(perflib.SERVER_CPUS))
        procs.append(og)
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"workers": a.workers, "tmp": tmp, "port": ng_port})
        ng = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(tmp, "nginx.log"), "w"),
                              preexec_fn=perflib.pin(perflib.SERVER_CPUS))
        procs.append(ng)
        perflib.wait_port(og_port, og)
        perflib.wait_port(ng_port, ng)
        servers = {"omnigate": (og.pid, "http://127.0.0.1:%d/healthz" % og_port),
                   "nginx": (ng.pid, "http://127.0.0.1:%d/healthz" % ng_port)}
        for name, (pid, url) in servers.items():
            plain_wrk(url, 1, 8)
        runs = {"omnigate": [], "nginx": []}
        for i in range(a.rounds):
            order = ("omnigate", "nginx") if i % 2 == 0 else ("nginx", "omnigate")
            for name in order:
                pid, url = servers[name]
                runs[name].append(measure(name, pid, url, a.seconds, a.conns))
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {n: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}
           for n, rs in runs.items()}
    ratio = {"rps": med["omnigate"]["rps"] / med["nginx"]["rps"],
             "cpu_us_per_req": med["omnigate"]["cpu_us_per_req"] / med["nginx"]["cpu_us_per_req"]}
    # Paired: the two runs of one round are back to back, so they share the
    # machine's state; the median of the rounds' ratios drifts less than the
    # ratio of the medians when the host's speed moves between rounds.
    paired = {k: statistics.median(o[k] / n[k] for o, n in zip(runs["omnigate"], runs["nginx"]))
              for k in ("rps", "cpu_us_per_req")}
    res = {"commit": perflib.git_commit(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "config": {"seconds": a.seconds, "conns": a.conns, "workers": a.workers, "rounds": a.rounds,
                      "wrk": "wrk -t1 --latency, no script", "pinned": perflib.SERVER_CPUS is not None,
                      "logging": "off on both"},
           "runs": runs, "median": med, "ratio": ratio, "paired_ratio": paired,
           "errors": sum(r["errors"] for rs in runs.values() for r in rs)}
    print("\n%-9s %10s %9s %9s %12s" % ("median", "req/s", "p50 ms", "p99 ms", "CPU us/req"))
    for n in ("omnigate", "nginx"):
        m = med[n]
        print("%-9s %10.0f %9.3f %9.3f %12.2f" % (n, m["rps"], m["p50_ms"], m["p99_ms"], m["cpu_us_per_req"]))
    print("omnigate/nginx: %.2fx the throughput, %.2fx the CPU per request; errors %d" % (
        ratio["rps"], ratio["cpu_us_per_req"], res["errors"]))
    print("paired (median of the rounds' ratios): %.2fx the throughput, %.2fx the CPU per request" % (
        paired["rps"], paired["cpu_us_per_req"]))
    perflib.save_result(res, a.json, "healthz-vs-nginx" if a.publish else None)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
