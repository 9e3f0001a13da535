"""Downstream endpoint sets (DESIGN §2, docs/OPERATIONS.md "Endpoint sets"):
several substrate processes per service on loopback, one omnigate that
names them as a set. Failover when a node dies, ejection and readmission,
a storage 404 tried on the other endpoints, hedges to another endpoint,
readiness and degraded mode per service, `omnigate seed` on every endpoint.
"""
import json
import os
import signal
import subprocess
import threading
import time

from harness import *
from oap_client import APP_STORAGE, OapClient
from profiles import KEYFILE, auth, metrics_text, mint

ROLES = ("index", "storage", "mailbox")


class Cluster:
    """n substrates per role, seeded, and one omnigate naming them."""

    def __init__(self, n, *og_extra, sub_extra=None, seed=True):
        self.n = dict(n) if isinstance(n, dict) else {r: n for r in ROLES}
        self.subs = {r: [start_substrate(r, *(sub_extra or {}).get(r, []))
                         for _ in range(self.n[r])] for r in ROLES}
        if seed:
            self.seed()
        args = []
        for r in ROLES:
            args += ["--" + r, ", ".join(self.addr(s) for s in self.subs[r])]
        self.og = start_omnigate(*args, "--root-keys", KEYFILE, "--health-interval", "200ms",
                                 "--health-timeout", "300ms", *og_extra)
        self.token = mint()

    @staticmethod
    def addr(s):
        return "oap://127.0.0.1:%d" % s.port

    def seed(self):
        """omnigate seed with every endpoint."""
        args = [OMNIGATE, "seed"]
        for r in ROLES:
            args += ["--" + r, ",".join(self.addr(s) for s in self.subs[r])]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "seed failed: %s %s" % (out.stdout, out.stderr))
        return json.loads(out.stdout)

    def get(self, path, **kw):
        st, hd, body = http("GET", self.og.url + path, headers=auth(self.token), **kw)
        try:
            return st, hd, json.loads(body)
        except ValueError:
            return st, hd, body

    def metrics(self):
        return metrics_text(self.og.admin_url)

    def ep(self, name, role, s):
        return metric_value(self.metrics(), name, {"service": role, "endpoint": self.addr(s)})

    def wait_metric(self, name, role, s, want, timeout):
        """Seconds until the endpoint's gauge reads want (fails after timeout)."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.ep(name, role, s) == want:
                return time.time() - t0
            time.sleep(0.02)
        raise AssertionError("%s{%s %s} never %r: %r" % (name, role, self.addr(s), want,
                                                           self.ep(name, role, s)))

    def wait_ready(self, timeout=5):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if http("GET", self.og.admin_url + "/readyz", timeout=2)[0] == 200:
                return
            time.sleep(0.02)
        raise AssertionError("never ready")

    def restart(self, role, i, *extra):
        old = self.subs[role][i]
        self.subs[role][i] = start_substrate(role, *extra, port=old.port, admin=old.admin)
        return self.subs[role][i]


class Load:
    """Views from a few threads until stopped: counts every status and every
    connection error."""

    def __init__(self, c, threads=4, path=lambda i: "/v1/view/user-%03d" % (i % 10)):
        self.c, self.path, self.stop_flag = c, path, False
        self.codes, self.errors, self.lat = {}, 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, k):
        i = k
        while not self.stop_flag:
            t0 = time.time()
            try:
                st, _, d = self.c.get(self.path(i), timeout=5)
                ok = st == 200 and (not isinstance(d, dict) or d.get("complete", True) is True)
                with self.lock:
                    key = st if ok or st != 200 else "partial"
                    self.codes[key] = self.codes.get(key, 0) + 1
                    self.lat.append(time.time() - t0)
            except OSError:
                with self.lock:
                    self.errors += 1
            i += 4

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join()
        return self

    @property
    def total(self):
        return sum(self.codes.values()) + self.errors

    @property
    def failed(self):
        return self.total - self.codes.get(200, 0)


def test_seed_loads_every_endpoint():
    c = Cluster({"index": 2, "storage": 3, "mailbox": 1}, seed=False)
    out = c.seed()
    check(out["storage"]["endpoints"] == 3 and out["index"]["endpoints"] == 2, out)
    puts = [metric_value(metrics_text(s.admin_url), "substrate_requests_total",
                         {"op": "put", "code": "201"}) for s in c.subs["storage"]]
    check(puts[0] and puts[0] == out["storage"]["ops"] and len(set(puts)) == 1,
          "every storage endpoint got every object: %r of %r" % (puts, out["storage"]))
    # The flag may be repeated instead of a comma list; an empty entry is refused.
    args = [OMNIGATE, "seed", "--index", c.addr(c.subs["index"][0]), "--index",
            c.addr(c.subs["index"][1]), "--storage", c.addr(c.subs["storage"][0]) + ",",
            "--mailbox", c.addr(c.subs["mailbox"][0])]
    bad = subprocess.run(args, capture_output=True, text=True, timeout=30)
    check(bad.returncode == 2 and "empty entry" in bad.stderr, bad.stderr)
    c.wait_ready()
    for i in range(10):
        st, _, d = c.get("/v1/view/user-%03d" % i)
        check(st == 200 and d["complete"] is True, (st, d))


def test_config_rejects_bad_sets():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGATE_")}
    for bad in ("oap://127.0.0.1:1,", "oap://127.0.0.1:1, oap://127.0.0.1:1",
                "oap://127.0.0.1:1 oap://127.0.0.1:2"):
        p = subprocess.run([OMNIGATE, "--check-config", "--storage", bad], capture_output=True,
                           text=True, timeout=10, env=env)
        check(p.returncode != 0 and "storage" in p.stderr, (bad, p.returncode, p.stderr))
    p = subprocess.run([OMNIGATE, "--check-config", "--storage",
                        "oap://127.0.0.1:1, oap://127.0.0.1:2,unix:/tmp/x.sock"],
                       capture_output=True, text=True, timeout=10, env=env)
    check(p.returncode == 0, p.stderr)


def test_node_killed_views_stay_200_then_readmitted():
    c = Cluster(3, "--eject-after", "3")
    c.wait_ready()
    for s in c.subs["storage"]:
        c.wait_metric("downstream_endpoint_healthy", "storage", s, 1, 5)
    load = Load(c)
    time.sleep(0.5)
    victim = c.subs["storage"][1]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    t_down = c.wait_metric("downstream_endpoint_healthy", "storage", victim, 0, 5)
    time.sleep(1.0)
    during = load.total
    c.restart("storage", 1)
    c.seed()  # it came back empty (amnesia); index puts are idempotent
    t_up = c.wait_metric("downstream_endpoint_healthy", "storage", c.subs["storage"][1], 1, 10)
    time.sleep(0.5)
    load.stop()
    print("  node loss: %d views, %d failed (%r), out of service after %.2f s, back %.2f s "
          "after restart" % (load.total, load.failed, load.codes, t_down, t_up))
    check(load.total > 50 and during > 20, "too little load: %d" % load.total)
    # Attempts in flight on the node when it died are retried on another one.
    check(load.failed <= 2, "views failed during the node loss: %r errors %d"
          % (load.codes, load.errors))
    check(t_down < 2.0, "the dead node stayed in service %.2f s" % t_down)
    text = open(c.og.logpath).read()
    check("downstream_endpoint_down" in text and "downstream_endpoint_up" in text,
          "transitions not logged")
    # The restarted node serves again.
    ok = metric_value(c.metrics(), "downstream_endpoint_attempts_total",
                      {"service": "storage", "endpoint": c.addr(c.subs["storage"][1]),
                       "outcome": "ok"})
    check(ok and ok > 0, "no attempt on the restarted node: %r" % ok)


def test_failing_node_is_ejected_then_readmitted():
    c = Cluster({"index": 1, "storage": 3, "mailbox": 1}, "--eject-after", "3",
                "--eject-base", "800ms", "--eject-max-percent", "34")
    c.wait_ready()
    bad = c.subs["storage"][0]
    # HELLO is never faulted: the probe passes, only the calls fail (503).
    http("POST", bad.admin_url + "/faults?error_rate=1.0", timeout=3)
    t0 = time.time()
    for i in range(40):
        st, _, d = c.get("/v1/view/user-%03d" % (i % 10))
        check(st == 200 and d["complete"] is True, "view %d: %d %r" % (i, st, d))
        if c.ep("downstream_endpoint_ejected", "storage", bad) == 1:
            break
    t_eject = time.time() - t0
    check(c.ep("downstream_endpoint_ejected", "storage", bad) == 1, "never ejected")
    check(c.ep("downstream_endpoint_healthy", "storage", bad) == 0, "ejected but healthy")
    check(c.ep("downstream_endpoint_ejections_total", "storage", bad) == 1)
    # Max share 34 % of 3 = one endpoint: a second failing node stays in.
    second = c.subs["storage"][1]
    http("POST", second.admin_url + "/faults?error_rate=1.0", timeout=3)
    for i in range(20):
        c.get("/v1/view/user-%03d" % (i % 10))
    check(c.ep("downstream_endpoint_ejected", "storage", second) == 0,
          "more than the max share ejected")
    http("POST", second.admin_url + "/faults?error_rate=0", timeout=3)
    http("POST", bad.admin_url + "/faults?error_rate=0", timeout=3)
    t_back = c.wait_metric("downstream_endpoint_healthy", "storage", bad, 1, 3)
    print("  ejected after %.2f s; back in service %.2f s later" % (t_eject, t_back))
    check("downstream_ejected" in open(c.og.logpath).read(), "ejection not logged")
    # Served again once back.
    before = c.ep("downstream_endpoint_attempts_total", "storage", bad) or 0
    for i in range(30):
        st, _, _ = c.get("/v1/view/user-%03d" % (i % 10))
        check(st == 200)
    after = metric_value(c.metrics(), "downstream_endpoint_attempts_total",
                         {"service": "storage", "endpoint": c.addr(bad), "outcome": "ok"})
    check(after and after > 0, "readmitted node takes no calls")


def test_storage_404_falls_through_to_other_endpoints():
    c = Cluster({"index": 1, "storage": 3, "mailbox": 1})
    c.wait_ready()
    # One object on one node only: PUT straight to it.
    body = b"only on node two " * 100
    oc = OapClient.tcp(c.subs["storage"][2].port)
    oc.hello()
    code, h, _ = oc.call(APP_STORAGE, {"op": "put"}, body)
    oc.close()
    check(code in (200, 201), "put %d %r" % (code, h))
    obj = h["obj"]
    for i in range(30):
        st, hd, got = http("GET", c.og.url + "/v1/o/" + obj, headers=auth(c.token))
        check(st == 200 and got == body, "read %d: %d" % (i, st))
    st, _, _ = http("HEAD", c.og.url + "/v1/o/" + obj, headers=auth(c.token))
    check(st == 200, "HEAD %d" % st)
    # A real miss is still a 404, after every endpoint said so.
    def misses():
        return [metric_value(metrics_text(s.admin_url), "substrate_requests_total",
                             {"code": "404"}) or 0 for s in c.subs["storage"]]
    before = misses()
    st, _, d = c.get("/v1/o/b3:" + "0" * 64)
    check(st == 404 and d["error"] == "not_found", "miss %d %r" % (st, d))
    after = misses()
    check([a - b for a, b in zip(after, before)] == [1, 1, 1],
          "the miss was not asked of every endpoint once: %r -> %r" % (before, after))


def test_404_fall_through_asks_each_usable_endpoint_once():
    # With one endpoint ejected, a miss is asked of the two others once
    # each and answered 404: not bounced between them until the deadline.
    c = Cluster({"index": 1, "storage": 3, "mailbox": 1}, "--eject-after", "2",
                "--eject-base", "30s")
    c.wait_ready()
    bad = c.subs["storage"][2]
    http("POST", bad.admin_url + "/faults?error_rate=1.0", timeout=3)
    for i in range(20):
        c.get("/v1/view/user-%03d" % (i % 10))
        if c.ep("downstream_endpoint_ejected", "storage", bad) == 1:
            break
    check(c.ep("downstream_endpoint_ejected", "storage", bad) == 1, "never ejected")

    def asked():
        return [metric_value(metrics_text(s.admin_url), "substrate_requests_total",
                             {"code": "404"}) or 0 for s in c.subs["storage"]]
    before = asked()
    t0 = time.time()
    st, _, d = c.get("/v1/o/b3:" + "1" * 64)
    took = time.time() - t0
    after = asked()
    check(st == 404 and took < 1.0, "miss: %d %r after %.2f s" % (st, d, took))
    check([a - b for a, b in zip(after, before)] == [1, 1, 0],
          "the miss was not asked once of each usable endpoint: %r -> %r" % (before, after))


def test_hedge_goes_to_another_endpoint():
    c = Cluster({"index": 2, "storage": 1, "mailbox": 1}, "--hedge-after", "30ms",
                "--retry-budget-percent", "100")
    c.wait_ready()
    slow = c.subs["index"][0]
    http("POST", slow.admin_url + "/faults?latency_ms=400", timeout=3)
    lat = []
    for i in range(40):
        t0 = time.time()
        st, _, d = c.get("/v1/index/user-%03d" % (i % 10))
        lat.append(time.time() - t0)
        check(st == 200, (st, d))
    lat.sort()
    won = metric_value(c.metrics(), "hedged_requests_total",
                       {"service": "index", "outcome": "won"}) or 0
    print("  index p50 %.0f ms, max %.0f ms with one node 400 ms late; hedges won %d"
          % (lat[20] * 1000, lat[-1] * 1000, won))
    # A hedge that went back to the slow node would wait 400 ms too.
    check(lat[-1] < 0.3, "a slow attempt was not saved by a hedge elsewhere: %.3f s" % lat[-1])


def test_retry_goes_to_another_endpoint():
    # One retry, no ejection: a retry that went back to the failing node
    # would fail the part (about half of them, by chance, if it could).
    c = Cluster({"index": 1, "storage": 2, "mailbox": 1}, "--retry-max", "1",
                "--retry-budget-percent", "100", "--eject-after", "0")
    c.wait_ready()
    http("POST", c.subs["storage"][0].admin_url + "/faults?error_rate=1.0", timeout=3)
    bad = 0
    for i in range(40):
        st, _, d = c.get("/v1/view/user-%03d" % (i % 10))
        bad += not (st == 200 and d["complete"] is True)
    injected = metric_value(metrics_text(c.subs["storage"][0].admin_url),
                            "substrate_faults_injected_total", {"kind": "error"}) or 0
    check(injected >= 10, "the failing node was hardly asked: %r" % injected)
    check(bad == 0, "%d of 40 views lost a part: a retry went back to the failing node" % bad)


def test_readyz_and_degraded_per_service():
    c = Cluster({"index": 2, "storage": 1, "mailbox": 1})
    c.wait_ready()
    a, b = c.subs["index"]
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    c.wait_metric("downstream_endpoint_healthy", "index", a, 0, 3)
    st, _, d = http("GET", c.og.admin_url + "/readyz", timeout=3)
    check(st == 200, "one index endpoint left is ready: %d %r" % (st, d))
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait()
    c.wait_metric("downstream_endpoint_healthy", "index", b, 0, 3)
    st, _, d = http("GET", c.og.admin_url + "/readyz", timeout=3)
    check(st == 503 and "downstream_health_ok" in d.decode(), (st, d))
    deadline = time.time() + 3
    while time.time() < deadline:
        st, _, d = http("PUT", c.og.url + "/v1/o", body=b"x", headers=auth(c.token))
        if st == 503:
            break
        time.sleep(0.05)
    check(st == 503 and b"degraded" in d, "writes not shed with no index endpoint: %d %r"
          % (st, d))
    c.restart("index", 1)
    c.wait_metric("downstream_endpoint_healthy", "index", c.subs["index"][1], 1, 5)
    c.wait_ready(5)


def test_endpoint_metrics_bounded_and_valid():
    c = Cluster({"index": 2, "storage": 2, "mailbox": 1})
    c.wait_ready()
    text = c.metrics()
    promtool_check(text)
    series = [l for l in text.splitlines() if l.startswith("downstream_endpoint_healthy{")]
    check(len(series) == 5, "one series per configured endpoint: %r" % series)


if __name__ == "__main__":
    run_tests(globals())
