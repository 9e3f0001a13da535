"""omnigate behind a load balancer (docs/OPERATIONS.md "Behind a load
balancer"): the client address a trusted proxy forwards keys anonymous rate
buckets, an untrusted one's is ignored; SIGTERM with drain_delay keeps
serving while /readyz is 503, then drains; the shipped HAProxy
configuration is valid, and a real HAProxy in front of two replicas passes
X-Corr-ID through and takes a replica out on SIGTERM without a failed
request.
"""
from http.client import HTTPConnection
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

from harness import *
from profiles import KEYFILE, mint

HAPROXY = "/usr/sbin/haproxy"
# A policy that lets anonymous clients search: an anonymous route to limit.
POLICY = os.path.join(ROOT, "testing", "policy", "tenant-feed-deny.json")
CFG = os.path.join(ROOT, "deploy", "haproxy", "omnigate.cfg")


def anon(srv, xff=None):
    h = {"X-Forwarded-For": xff} if xff else {}
    return http("GET", srv.url + "/v1/search?q=user-0&limit=2", headers=h, timeout=5)[0]


def test_forwarded_client_keys_anonymous_buckets_only_from_trusted_proxies():
    srv = start_omnigate("--demo", "--tenant-rate", "1/s", "--tenant-burst", "2",
                         "--trusted-proxies", "10.9.0.0/16, 127.0.0.1", "--policy-file", POLICY)
    a = [anon(srv, "198.51.100.1, 203.0.113.1") for _ in range(6)]
    check(a.count(429) >= 3, "client a was never limited: %r" % a)
    b = anon(srv, "198.51.100.1, 203.0.113.2")
    check(b != 429, "client b shares client a's bucket: the forwarded address was not used")
    # A header that is not an address leaves the proxy's own address.
    check([anon(srv, "unknown") for _ in range(4)].count(429) >= 1)
    srv.stop()

    # The peer (127.0.0.1) is not trusted: the header is ignored, every
    # request is the peer's.
    srv = start_omnigate("--demo", "--tenant-rate", "1/s", "--tenant-burst", "2",
                         "--trusted-proxies", "10.9.0.0/16", "--policy-file", POLICY)
    codes = [anon(srv, "203.0.113.%d" % i) for i in range(6)]
    check(codes.count(429) >= 3, "an untrusted peer chose its bucket: %r" % codes)


def test_trusted_proxies_refuses_bad_networks():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGATE_")}
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "proxy.example", "10.0.0.0/8,"):
        p = subprocess.run([OMNIGATE, "--check-config", "--trusted-proxies", bad],
                           capture_output=True, text=True, timeout=10, env=env)
        check(p.returncode != 0 and "trusted_proxies" in p.stderr, (bad, p.stderr))


def test_drain_delay_is_unready_first_then_drains():
    srv = start_omnigate("--demo", "--drain-delay", "600ms")
    check(http("GET", srv.admin_url + "/readyz")[0] == 200)
    t0 = time.time()
    srv.signal(signal.SIGTERM)
    deadline = time.time() + 2
    while http("GET", srv.admin_url + "/readyz")[0] != 503 and time.time() < deadline:
        time.sleep(0.01)
    check(time.time() - t0 < 0.3, "/readyz did not turn 503 at once")
    # Still serving, new connections and keep-alive alike, during the delay.
    conn = HTTPConnection("127.0.0.1", srv.port, timeout=3)
    for _ in range(2):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        check(r.status == 200 and (r.getheader("connection") or "").lower() != "close",
              (r.status, r.getheaders()))
    conn.close()
    check(srv.proc.poll() is None)
    srv.proc.wait(5)
    took = time.time() - t0
    check(srv.proc.returncode == 0 and took >= 0.6, "exit %r after %.2f s"
          % (srv.proc.returncode, took))
    text = "\n".join(srv.log_lines())
    check('"event":"unready"' in text and '"event":"drain"' in text, "events not logged")


def test_haproxy_config_is_valid():
    check(os.path.exists(HAPROXY), "haproxy is not installed (scripts/bootstrap)")
    p = subprocess.run([HAPROXY, "-c", "-f", CFG], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0, p.stdout + p.stderr)


def haproxy_for(replicas, port, stats):
    """The shipped configuration with loopback replicas and ports."""
    text = open(CFG).read()
    text = re.sub(r"(?m)^\s*server og\d+ .*\n", "", text)
    text = text.replace("bind 10.77.0.2:80", "bind 127.0.0.1:%d" % port)
    text = text.replace("bind 10.77.0.2:8404", "bind 127.0.0.1:%d" % stats)
    lines = "".join("    server og%d 127.0.0.1:%d check port %d\n" % (i + 1, r.port, r.admin)
                    for i, r in enumerate(replicas))
    text = text.replace("    # servers\n", "    # servers\n" + lines)
    fd, path = tempfile.mkstemp(suffix=".cfg")
    os.write(fd, text.encode())
    os.close(fd)
    return path


def test_haproxy_in_front_passes_corr_id_and_drains_a_replica():
    delay = os.environ.get("DRAIN_DELAY", "1500ms")
    reps = [start_omnigate("--demo", "--root-keys", KEYFILE, "--drain-delay", delay,
                           "--trusted-proxies", "127.0.0.1") for _ in range(2)]
    token = {"Authorization": "Bearer " + mint()}
    port, stats = free_port(), free_port()
    cfg = haproxy_for(reps, port, stats)
    hp = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        url = "http://127.0.0.1:%d" % port
        deadline = time.time() + 5
        while time.time() < deadline and http("GET", url + "/healthz")[0] != 200:
            time.sleep(0.05)
        st, hd, _ = http("GET", url + "/healthz", headers={"X-Corr-ID": "trace-42"})
        check(st == 200 and hd.get("x-corr-id") == "trace-42", (st, hd))
        codes, errors, stop = {}, [0], [False]

        def client():
            while not stop[0]:
                try:
                    s = http("GET", url + "/v1/index/clip-1", headers=token, timeout=5)[0]
                    codes[s] = codes.get(s, 0) + 1
                except OSError:
                    errors[0] += 1

        ts = [threading.Thread(target=client) for _ in range(4)]
        for t in ts:
            t.start()
        time.sleep(0.5)
        reps[0].signal(signal.SIGTERM)
        reps[0].proc.wait(10)
        time.sleep(0.3)
        stop[0] = True
        for t in ts:
            t.join()
        total = sum(codes.values()) + errors[0]
        failed = total - codes.get(200, 0)
        print("  %d requests through HAProxy while a replica left: %r, %d connection errors"
              % (total, codes, errors[0]))
        check(total > 50 and failed == 0, "failed requests during the drain: %r %d"
              % (codes, errors[0]))
    finally:
        hp.terminate()
        hp.wait(5)
        os.unlink(cfg)


if __name__ == "__main__":
    run_tests(globals())
