"""The cluster up.sh made, seen from Python: its addresses, its processes
(ctl.sh), metrics, and a paced client that counts every answer.

Used by the scenario tests (test_*.py, `make cluster-test`) and by
testing/performance/cluster.sh.
"""
import http.client
import os
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import check, metric_value  # noqa: E402

STATE = os.environ.get("OG_CLUSTER_DIR", "/tmp/og-cluster")
SKIP = 77


def up(replicas, per_service, replica_args="", env=None):
    """Run up.sh; returns the Cluster, or exits 77 (with up.sh's message)
    when the cluster cannot run here."""
    e = dict(os.environ, OG_CLUSTER_DIR=STATE, OG_REPLICA_ARGS=replica_args, **(env or {}))
    p = subprocess.run([os.path.join(HERE, "up.sh"), str(replicas), str(per_service)],
                       capture_output=True, text=True, env=e, timeout=120)
    if p.returncode == SKIP:
        print(p.stdout.strip(), flush=True)
        sys.exit(SKIP)
    check(p.returncode == 0, "up.sh failed: %s %s" % (p.stdout, p.stderr))
    return Cluster()


def down():
    subprocess.run([os.path.join(HERE, "down.sh")], capture_output=True,
                   env=dict(os.environ, OG_CLUSTER_DIR=STATE), timeout=60)


class Cluster:
    def __init__(self):
        env = {}
        with open(os.path.join(STATE, "cluster.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                env[k] = v.strip('"')
        self.url = env["OG_URL"]
        self.host = self.url.split("//")[1].split(":")[0]
        self.stats = env["OG_HAPROXY_STATS"]
        self.replicas = env["OG_REPLICAS"].split()
        self.sets = {r: env["OG_" + r.upper()].split(",") for r in ("index", "storage", "mailbox")}
        self.token = open(env["OG_TOKEN_FILE"]).read().strip()

    # ---- processes
    def ctl(self, cmd, name):
        p = subprocess.run([os.path.join(HERE, "ctl.sh"), cmd, name], capture_output=True,
                           text=True, env=dict(os.environ, OG_CLUSTER_DIR=STATE), timeout=60)
        check(p.returncode == 0, "ctl %s %s: %s" % (cmd, name, p.stdout + p.stderr))

    def node_ip(self, role, i):
        return self.sets[role][i].split("//")[1].split(":")[0]

    def seed(self):
        p = subprocess.run([os.path.join(ROOT, "build", "omnigate"), "seed", "--index",
                            ",".join(self.sets["index"]), "--storage",
                            ",".join(self.sets["storage"]), "--mailbox",
                            ",".join(self.sets["mailbox"])],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "seed: %s" % p.stderr)

    # ---- HTTP
    def get_text(self, url, timeout=2):
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()

    def status(self, url, timeout=2):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return 0

    def replica_metric(self, ip, name, labels=None):
        try:
            return metric_value(self.get_text("http://%s:9090/metrics" % ip), name, labels)
        except OSError:
            return None

    def endpoint_healthy(self, role, i):
        """The endpoint's downstream_endpoint_healthy on every replica."""
        return [self.replica_metric(ip, "downstream_endpoint_healthy",
                                    {"service": role, "endpoint": self.sets[role][i]})
                for ip in self.replicas]

    def haproxy_up(self):
        """Replica names HAProxy has UP."""
        csv = self.get_text(self.stats + "/stats;csv")
        return [l.split(",")[1] for l in csv.splitlines()
                if l.startswith("omnigate,og") and ",UP," in l]

    def wait(self, what, fn, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if fn():
                return time.time() - t0
            time.sleep(0.02)
        raise AssertionError("%s: not within %.1f s" % (what, timeout))


class Load:
    """Paced clients through HAProxy: `threads` keep-alive connections,
    `rate` requests per second in all, views of the demo users; with
    put_every = k, every k-th request is instead a PUT /v1/o of a small new
    object (a write: HAProxy never replays it, so a connection a replica
    drops under it is an error the client sees). Every answer is kept as
    (t, status, seconds, complete); a connection error is status 0; a
    write's "complete" is its 201."""

    def __init__(self, c, rate=150, threads=4, path="/v1/view/user-%03d", put_every=0):
        self.c, self.rate, self.path, self.put_every = c, rate, path, put_every
        self.stop_flag = False
        self.rows = []
        self.lock = threading.Lock()
        self.t0 = time.time()
        self.threads = [threading.Thread(target=self.run, args=(k, threads))
                        for k in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, k, n):
        host = self.c.host
        conn = None
        interval = n / float(self.rate)
        nxt = time.time() + k * interval / n
        i = k
        hdr = {"Authorization": "Bearer " + self.c.token}
        while not self.stop_flag:
            now = time.time()
            if now < nxt:
                time.sleep(nxt - now)
            nxt += interval
            t = time.time()
            st, complete = 0, False
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, 80, timeout=5)
                if self.put_every and i % self.put_every == 0:
                    conn.request("PUT", "/v1/o", body=b"object %d %f" % (i, t), headers=hdr)
                    r = conn.getresponse()
                    r.read()
                    st = r.status
                    complete = st == 201
                else:
                    conn.request("GET", self.path % (i % 10), headers=hdr)
                    r = conn.getresponse()
                    body = r.read()
                    st = r.status
                    complete = st == 200 and b'"complete":true' in body
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.rows.append((t, st, time.time() - t, complete))
            i += n

    def stop(self):
        self.stop_flag = True
        for t in self.threads:
            t.join()
        return self

    def mark(self):
        return time.time()

    def window(self, a=None, b=None):
        with self.lock:
            return [r for r in self.rows if (a is None or r[0] >= a) and (b is None or r[0] < b)]


def summary(rows):
    """requests, errors (non-2xx or no answer), partial views, p50, p99 ms."""
    lat = sorted(r[2] for r in rows)
    n = len(rows)

    def pct(p):
        return round(lat[min(n - 1, int(p * n))] * 1000, 1) if n else None
    return {"requests": n, "errors": sum(1 for r in rows if not 200 <= r[1] < 300),
            "partial": sum(1 for r in rows if r[1] == 200 and not r[3]),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}
