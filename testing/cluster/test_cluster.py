"""Scale-out scenarios on a real topology (testing/cluster/up.sh): 3
omnigate replicas behind HAProxy, 3 substrate nodes per service, each in
its own network namespace; a paced client through HAProxy counts every
non-2xx and every connection error.

  rolling restart   each replica in turn gets SIGTERM and is started
                    again: 0 failed requests
  node loss         kill -9 one of 3 storage nodes: views stay 200, every
                    replica takes it out within 2 s, and back after it
                    returns
  slow node         one index node 200 ms late: with hedging to another
                    endpoint, the view p99 stays within 2x the healthy p99
                    (floored at 5 ms: below that it measures the scheduler)

Skipped (exit 77, with the reason) where the cluster cannot run: not root,
no ip netns, no haproxy. Numbers are printed for the record;
testing/performance/cluster.sh measures the same scenarios at length.
"""
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Load, down, summary, up  # noqa: E402
from harness import check, run_tests  # noqa: E402

# Hedging after 20 ms, and a retry budget that lets one index node in
# three be slow: hedges draw on it.
ARGS = "--hedge-after 20ms --retry-budget-percent 50"
C = None


def cluster():
    global C
    if C is None:
        C = up(3, 3, ARGS)
    return C


def test_rolling_restart_loses_no_request():
    c = cluster()
    # A quarter writes: HAProxy replays no write, so only the drain (unready
    # first, in-flight finished) keeps them from failing.
    load = Load(c, rate=150, put_every=4)
    time.sleep(1.0)
    took = []
    for k in range(len(c.replicas)):
        name = "og%d" % (k + 1)
        t0 = time.time()
        c.ctl("stop", name)        # SIGTERM: unready, drain, exit
        c.ctl("start", name)
        ip = c.replicas[k]
        c.wait("%s ready" % name, lambda: c.status("http://%s:9090/readyz" % ip) == 200, 10)
        c.wait("%s UP in HAProxy" % name, lambda: name in c.haproxy_up(), 10)
        took.append(round(time.time() - t0, 2))
    time.sleep(0.5)
    load.stop()
    s = summary(load.rows)
    print("  rolling restart of 3 replicas: %r; each out and back in %r s" % (s, took), flush=True)
    check(s["errors"] == 0, "failed requests during the rolling restart: %r" % s)
    check(s["requests"] > 300, "too little load: %r" % s)


def test_storage_node_killed_views_stay_200_and_it_comes_back():
    c = cluster()
    load = Load(c, rate=150)
    time.sleep(1.0)
    t_kill = time.time()
    c.ctl("kill", "storage2")
    c.wait("storage2 out on every replica",
           lambda: all(v == 0 for v in c.endpoint_healthy("storage", 1)), 5)
    out = time.time() - t_kill
    time.sleep(1.5)
    t_start = time.time()
    c.ctl("start", "storage2")
    ip = c.node_ip("storage", 1)
    c.wait("storage2 listening", lambda: c.status("http://%s:7100/healthz" % ip) == 200, 5)
    c.seed()
    c.wait("storage2 back on every replica",
           lambda: all(v == 1 for v in c.endpoint_healthy("storage", 1)), 10)
    back = time.time() - t_start
    time.sleep(1.0)
    load.stop()
    during = summary(load.window(t_kill, t_start))
    s = summary(load.rows)
    bad = [r for r in load.rows if not (r[1] == 200 and r[3])]
    print("  kill -9 of 1 of 3 storage nodes: %r; out of service on every replica %.2f s "
          "after the kill, back %.2f s after its restart (seed included); %d views not whole, "
          "spread over %.2f s" % (s, out, back, len(bad),
                                  (bad[-1][0] - bad[0][0]) if bad else 0.0), flush=True)
    check(during["requests"] > 100, "too little load: %r" % during)
    check(s["errors"] == 0, "views failed: %r" % s)
    check(len(bad) <= 3, "views lost parts: %r" % s)
    check(out < 2.0, "the dead node stayed in service %.2f s" % out)


# Below a few ms a p99 on this 2-core shared machine measures the
# scheduler, not the service: the healthy p99 is floored here. A hedge that
# went back to the slow node, or a balancer that kept sending to it, puts
# the p99 at 20-200 ms, far above either bound.
P99_FLOOR_MS = 5.0


def test_slow_index_node_is_hedged_around():
    c = cluster()
    load = Load(c, rate=200)
    time.sleep(4.5)
    a = time.time()
    healthy = summary(load.window(a - 4.0, a))
    slow = c.node_ip("index", 0)
    urllib.request.urlopen(urllib.request.Request(
        "http://%s:7100/faults?latency_ms=200" % slow, method="POST"), timeout=2).read()
    time.sleep(0.5)
    b = time.time()
    time.sleep(4.0)
    during = summary(load.window(b, time.time()))
    urllib.request.urlopen(urllib.request.Request(
        "http://%s:7100/faults?latency_ms=0" % slow, method="POST"), timeout=2).read()
    load.stop()
    hedges = sum(c.replica_metric(ip, "hedged_requests_total",
                                  {"service": "index", "outcome": "won"}) or 0
                 for ip in c.replicas)
    print("  one index node 200 ms late: healthy %r, slow %r; index hedges won %d"
          % (healthy, during, hedges), flush=True)
    check(during["errors"] == 0 and during["partial"] == 0, "views failed: %r" % during)
    bound = 2 * max(healthy["p99_ms"], P99_FLOOR_MS)
    check(during["p99_ms"] <= bound, "p99 %.1f ms with a slow node, over %.1f ms (2x healthy)"
          % (during["p99_ms"], bound))


def test_zz_down_removes_everything():
    cluster()
    down()
    left = os.popen("ip netns list | grep -c '^ogc-'; ip link show ogc-br0 2>/dev/null | wc -l")
    counts = [int(x) for x in left.read().split()]
    check(counts == [0, 0], "down.sh left namespaces or the bridge: %r" % counts)
    check(not os.path.exists(os.environ.get("OG_CLUSTER_DIR", "/tmp/og-cluster")))


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        down()
