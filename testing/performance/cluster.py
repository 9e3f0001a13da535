#!/usr/bin/python3
"""The scale-out scenarios with numbers (testing/performance/cluster.sh).

Each scenario runs on a fresh cluster (testing/cluster/up.sh) with a paced
client through HAProxy (testing/cluster/cluster.py's Load: keep-alive
connections, every non-2xx and connection error counted, views whose
parts failed counted as partial), and reports three windows: before the
event, during it, after it.

  rolling   3 replicas x 3 nodes: SIGTERM each replica in turn, restart it,
            wait until HAProxy has it UP again
  node-loss 3 x 3: kill -9 one storage node, restart it after HOLD s and
            seed it; time until every replica has it out of service, and
            back in
  slow      3 x 3, hedge_after 20 ms: one index node 200 ms late for HOLD s
  scale     1, 2, 4 replicas x 2 nodes: RATE req/s for SCALE_S s; CPU
            seconds of the replicas (utime + stime from /proc) per request,
            and the same net of their idle background (measured IDLE_S s
            before the load)

Usage: cluster.py [--publish] [--quick]
  --quick    shorter windows (a smoke run)
  --publish  also write docs/perf/cluster.json
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "testing", "cluster"))
from cluster import STATE, Load, down, summary, up  # noqa: E402

QUICK = "--quick" in sys.argv[1:]
WIN = 2.0 if QUICK else 5.0      # before / after windows, seconds
HOLD = 2.0 if QUICK else 5.0     # a node stays dead or slow this long
RATE = 200                       # scenario load, req/s through HAProxy
SCALE_RATE = 300                 # scale load, req/s
SCALE_S = 4.0 if QUICK else 10.0
IDLE_S = 2.0 if QUICK else 5.0   # idle background measured before the scale load
ARGS = "--hedge-after 20ms --retry-budget-percent 50"


def phases(load, marks):
    """marks: [(name, t0, t1)] -> {name: summary}."""
    return {n: summary(load.window(a, b)) for n, a, b in marks}


def post(url):
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=2).read()


def rolling():
    c = up(3, 3, ARGS)
    load = Load(c, rate=RATE)
    time.sleep(WIN + 0.5)
    t1 = time.time()
    each = []
    for k in range(3):
        name = "og%d" % (k + 1)
        t = time.time()
        c.ctl("stop", name)
        c.ctl("start", name)
        c.wait(name, lambda: c.status("http://%s:9090/readyz" % c.replicas[k]) == 200, 10)
        c.wait(name, lambda: name in c.haproxy_up(), 10)
        each.append(round(time.time() - t, 2))
    t2 = time.time()
    time.sleep(WIN)
    load.stop()
    down()
    return {"phases": phases(load, [("before", t1 - WIN, t1), ("during", t1, t2),
                                    ("after", t2, t2 + WIN)]),
            "replica_out_and_back_s": each}


def node_loss():
    c = up(3, 3, ARGS)
    load = Load(c, rate=RATE)
    time.sleep(WIN + 0.5)
    t1 = time.time()
    c.ctl("kill", "storage2")
    c.wait("out", lambda: all(v == 0 for v in c.endpoint_healthy("storage", 1)), 10)
    out_s = time.time() - t1
    time.sleep(max(0.0, HOLD - out_s))
    t2 = time.time()
    c.ctl("start", "storage2")
    ip = c.node_ip("storage", 1)
    c.wait("listening", lambda: c.status("http://%s:7100/healthz" % ip) == 200, 5)
    c.seed()
    c.wait("back", lambda: all(v == 1 for v in c.endpoint_healthy("storage", 1)), 10)
    back_s = time.time() - t2
    t3 = time.time()
    time.sleep(WIN)
    load.stop()
    bad = [r for r in load.rows if not (r[1] == 200 and r[3])]
    down()
    return {"phases": phases(load, [("before", t1 - WIN, t1), ("during", t1, t3),
                                    ("after", t3, t3 + WIN)]),
            "out_of_service_s": round(out_s, 2), "back_after_restart_s": round(back_s, 2),
            "not_whole": len(bad),
            "not_whole_span_s": round(bad[-1][0] - bad[0][0], 2) if bad else 0.0}


def slow():
    c = up(3, 3, ARGS)
    load = Load(c, rate=RATE)
    time.sleep(WIN + 0.5)
    node = c.node_ip("index", 0)
    t1 = time.time()
    post("http://%s:7100/faults?latency_ms=200" % node)
    time.sleep(HOLD)
    t2 = time.time()
    post("http://%s:7100/faults?latency_ms=0" % node)
    time.sleep(WIN)
    load.stop()
    won = sum(c.replica_metric(ip, "hedged_requests_total",
                               {"service": "index", "outcome": "won"}) or 0 for ip in c.replicas)
    down()
    return {"phases": phases(load, [("before", t1 - WIN, t1), ("during", t1, t2),
                                    ("after", t2, t2 + WIN)]),
            "index_hedges_won": int(won)}


def cpu_s(pids):
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        with open("/proc/%d/stat" % p) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / float(hz)


def scale():
    rows = []
    for n in (1, 2, 4):
        c = up(n, 2, ARGS)
        pids = [int(open(os.path.join(STATE, "og%d.pid" % (k + 1))).read()) for k in range(n)]
        # The replicas' background with no request: HAProxy's checks, the
        # endpoint probes, pool ticks.
        idle0 = cpu_s(pids)
        time.sleep(IDLE_S)
        idle = (cpu_s(pids) - idle0) / IDLE_S
        warm = Load(c, rate=SCALE_RATE, threads=8)
        time.sleep(1.0)
        warm.stop()
        cpu0 = cpu_s(pids)
        load = Load(c, rate=SCALE_RATE, threads=8)
        time.sleep(SCALE_S)
        load.stop()
        cpu1 = cpu_s(pids)
        s = summary(load.rows)
        s["replicas"] = n
        s["req_per_s"] = round(s["requests"] / SCALE_S, 1)
        s["cpu_s"] = round(cpu1 - cpu0, 3)
        s["cpu_us_per_req"] = round(1e6 * (cpu1 - cpu0) / max(1, s["requests"]), 1)
        s["idle_cpu_s_per_s"] = round(idle, 4)
        s["net_cpu_us_per_req"] = round(1e6 * (cpu1 - cpu0 - idle * SCALE_S) /
                                        max(1, s["requests"]), 1)
        rows.append(s)
        down()
    return rows


def main():
    if "--help" in sys.argv[1:]:
        print(__doc__)
        return 0
    down()
    out = {"commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cpus": os.cpu_count(),
           "config": {"rate": RATE, "window_s": WIN, "hold_s": HOLD, "scale_rate": SCALE_RATE,
                      "scale_s": SCALE_S, "replica_args": ARGS, "workers_per_replica": 1},
           "loadavg_before": os.getloadavg()[0]}
    try:
        out["rolling"] = rolling()
        print("rolling restart:", json.dumps(out["rolling"]), flush=True)
        out["node_loss"] = node_loss()
        print("node loss:", json.dumps(out["node_loss"]), flush=True)
        out["slow"] = slow()
        print("slow node:", json.dumps(out["slow"]), flush=True)
        out["scale"] = scale()
        print("scale:", json.dumps(out["scale"]), flush=True)
    finally:
        down()
    out["loadavg_after"] = os.getloadavg()[0]
    os.makedirs(os.path.join(ROOT, "build", "perf"), exist_ok=True)
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    with open(os.path.join(ROOT, "build", "perf", "cluster.json"), "w") as f:
        f.write(text)
    if "--publish" in sys.argv[1:]:
        with open(os.path.join(ROOT, "docs", "perf", "cluster.json"), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
