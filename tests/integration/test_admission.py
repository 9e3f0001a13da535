"""Admission under overload (src/admit/) on the real binary: rate buckets
(429 quota with a Retry-After that is right, RateLimit headers, accuracy over
10 s, per-tenant isolation), refusal at the head before any body byte, the
per-class fair queues (weights, hang-ups, expired waits, queued time taken
from the downstream budget) and degraded mode (writes shed while a
downstream is down, accepted again once it is back)."""
import os
import signal
import socket
import threading
import time

from harness import *
from profiles import KEYFILE, mint, start_body_sink, start_profile, start_substrate, write_keyfile
from test_http_basics import Conn, error_body

POLICY = os.path.join(ROOT, "testing", "policy", "tenant-feed-deny.json")


def get_status(url, headers=None, timeout=5):
    st, h, _ = http("GET", url, headers=headers or {}, timeout=timeout)
    return st, h


def test_burst_then_429_with_a_retry_after_that_is_right():
    srv = start_omnigate("--rate", "1/s", "--rate-burst", "3", "--workers", "1")
    codes = [get_status(srv.url + "/healthz")[0] for _ in range(5)]
    check(codes[:3] == [200, 200, 200] and codes[3:] == [429, 429], codes)
    st, h, body = http("GET", srv.url + "/healthz")
    error_body(body, "quota")
    check(h["retry-after"] == "1", h)
    check(h["ratelimit-policy"] == '"instance";q=3;w=3', h)
    check(h["ratelimit"] == '"instance";r=0;t=1', h)
    t0 = time.time()
    time.sleep(0.3)
    check(get_status(srv.url + "/healthz")[0] == 429, "a retry before Retry-After succeeded")
    time.sleep(max(0, t0 + 1.05 - time.time()))
    check(get_status(srv.url + "/healthz")[0] == 200, "a retry after Retry-After failed")
    m = metrics_of(srv)
    check(metric_value(m, "rate_limited_total", {"scope": "instance"}) >= 3, "not counted")
    check(metric_value(m, "rejected_total", {"reason": "quota"}) >= 3)
    # The admin listener is exempt: an operator can always look.
    check(get_status(srv.admin_url + "/healthz")[0] == 200)


def metrics_of(srv):
    st, _, body = http("GET", srv.admin_url + "/metrics")
    check(st == 200)
    return body.decode()


def test_twice_the_rate_for_ten_seconds_admits_the_rate():
    # 50/s with a burst of 10, on two workers; the client paces 100/s on two
    # connections. (A burst of 1 would waste part of an interval at every
    # late arrival, as any full token bucket does: the burst absorbs the
    # client's jitter.) Expected: the rate over the run plus the burst.
    srv = start_omnigate("--rate", "50/s", "--rate-burst", "10", "--workers", "2")
    conns = [Conn(srv.port) for _ in range(2)]
    ok = 0
    t0 = time.time()
    n = 0
    while time.time() - t0 < 10.0:
        c = conns[n % 2]
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        st, _, _ = c.response()
        ok += st == 200
        n += 1
        time.sleep(max(0, t0 + n / 100.0 - time.time()))
    took = time.time() - t0
    want = 50 * took + 10
    check(n >= 950, "the client did not reach twice the rate: %d in %.1fs" % (n, took))
    check(abs(ok - want) <= 0.05 * want, "admitted %d, expected %.0f ±5%%" % (ok, want))
    print("   rate accuracy: %d sent, %d admitted in %.2fs at 50/s (%.2f%% off)"
          % (n, ok, took, 100.0 * (ok - want) / want))


def test_one_tenant_flooding_leaves_another_alone():
    p = start_profile("micronode", "--tenant-rate", "5/s", "--tenant-burst", "5")
    a, b = mint(tenant="tenant-a"), mint(tenant="tenant-b")
    codes_a = [p.get("/v1/index/clip-1", token=a)[0] for _ in range(30)]
    check(codes_a.count(200) <= 6 and codes_a.count(429) >= 24, codes_a)
    st, h, d = p.get("/v1/index/clip-1", token=a)
    check(st == 429 and d["error"] == "quota" and h["ratelimit"].startswith('"tenant";r=0;'), h)
    codes_b = [p.get("/v1/index/clip-1", token=b)[0] for _ in range(5)]
    check(codes_b == [200] * 5, "tenant b was limited by tenant a: %r" % codes_b)
    # Anonymous requests are keyed by the client address.
    check(p.metric("rate_limited_total", {"scope": "tenant"}) >= 25)


def test_a_refused_put_is_answered_before_its_body():
    srv, put = start_body_sink("--rate", "1/m", "--rate-burst", "1")
    check(get_status(srv.url + "/healthz")[0] == 200)  # the one token
    for expect in (b"", b"Expect: 100-continue\r\n"):
        c = Conn(srv.port)
        t0 = time.time()
        c.send(put + expect + b"Content-Length: %d\r\n\r\n" % (1 << 20))  # no body byte sent
        st, h, body = c.response()
        check(st == 429 and time.time() - t0 < 1.0, (st, h))
        check(h.get("connection") == "close", "the unread body must close: %r" % h)
        check(int(h["retry-after"]) > 1, "a 1/m bucket asks for more than a second: %r" % h)
        error_body(body, "quota")
        check(c.closed(2.0))


def test_queue_waits_and_takes_the_wait_from_the_budget__macronode():
    # One slot; storage answers in 600 ms. The second view waits ~600 ms for
    # the slot, so only ~400 ms of its 1 s budget are left downstream: it
    # ends in a timeout at about 1 s, not in a 200 at about 1.2 s.
    p = start_profile("macronode", "--inflight-max", "1", "--request-timeout", "1s",
                      "--queue-wait", "5s")
    p.faults("storage", latency_ms=600)
    out = {}

    def one(name):
        t0 = time.time()
        st, _, d = p.get("/v1/view/" + name, timeout=5)
        out[name] = (st, time.time() - t0, d)

    t1 = threading.Thread(target=one, args=("user-001",))
    t1.start()
    time.sleep(0.1)
    one("user-002")
    t1.join()
    check(out["user-001"][0] == 200, out["user-001"])
    st, took, d = out["user-002"]
    check(st == 504 and took < 1.15, "queued time not taken from the budget: %r" % (out["user-002"],))
    line = [j for j in p.og.log_json() if j.get("corr_id") == d["corr_id"]]
    check(line and line[0]["class"] == "authed" and line[0]["queue_ms"] >= 400, line)
    m = p.metrics()
    check(metric_value(m, "admission_wait_seconds_count", {"class": "authed"}) >= 1, "wait not observed")


def test_an_expired_wait_is_busy_with_retry_after__macronode():
    p = start_profile("macronode", "--inflight-max", "1", "--queue-wait", "200ms")
    p.faults("storage", latency_ms=800)
    t1 = threading.Thread(target=lambda: p.get("/v1/view/user-001", timeout=5))
    t1.start()
    time.sleep(0.1)
    t0 = time.time()
    st, h, d = p.get("/v1/view/user-002", timeout=5)
    took = time.time() - t0
    check(st == 503 and d["error"] == "busy" and 0.15 <= took < 0.6, (st, d, took))
    check(int(h["retry-after"]) >= 1, h)
    t1.join()
    # Log lines carry the class, the queue wait and the reason: the expired
    # wait's, and a degraded refusal's.
    line = [j for j in p.og.log_json() if j.get("corr_id") == d["corr_id"]]
    check(line and line[0]["class"] == "authed" and line[0]["reason"] == "busy"
          and 200 <= line[0]["queue_ms"] < 600, line)
    http("PUT", p.og.admin_url + "/admin/degraded", timeout=3)
    st, _, d = p.get("/v1/o", method="PUT", body=b"x")
    check(st == 503, (st, d))
    line = [j for j in p.og.log_json() if j.get("corr_id") == d["corr_id"]]
    check(line and line[0]["class"] == "authed" and line[0]["reason"] == "degraded", line)


def test_a_client_that_hangs_up_leaves_the_queue__macronode():
    p = start_profile("macronode", "--inflight-max", "1", "--queue-max", "1", "--workers", "1",
                      "--queue-wait", "5s")
    p.faults("storage", latency_ms=700)
    held = threading.Thread(target=lambda: p.get("/v1/view/user-001", timeout=5))
    held.start()
    time.sleep(0.1)
    s = socket.create_connection(("127.0.0.1", p.og.port))
    s.sendall(b"GET /v1/view/user-002 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
              + p.token.encode() + b"\r\n\r\n")
    deadline = time.time() + 2
    while time.time() < deadline and p.metric("fq_queue_depth", {"class": "authed"}) != 1:
        time.sleep(0.02)
    check(p.metric("fq_queue_depth", {"class": "authed"}) == 1, "not queued")
    s.close()
    deadline = time.time() + 2
    while time.time() < deadline and p.metric("fq_queue_depth", {"class": "authed"}) != 0:
        time.sleep(0.02)
    check(p.metric("fq_queue_depth", {"class": "authed"}) == 0, "the hang-up kept its place")
    # The place is free: a third request queues (not 503 queue full) and is served.
    st, _, d = p.get("/v1/view/user-003", timeout=5)
    check(st == 200, (st, d))
    held.join()


def internal_keys():
    """A key file with k1 (authed capabilities) and k2, named by
    --internal-key-ids k2 so that capabilities minted with it are internal;
    (path, an internal token)."""
    keys = os.path.join(os.path.dirname(KEYFILE), "k1k2.keys")
    secret1 = open(KEYFILE).read().split("=")[1].strip()
    internal_keyfile, _ = write_keyfile("k2only.keys", key_id="k2")
    secret2 = open(internal_keyfile).read().split("=")[1].strip()
    fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("k1 = %s\nk2 = %s\n" % (secret1, secret2))
    return keys, mint(keyfile=keys, key_id="k2")


def test_backlogged_classes_share_by_weight__macronode():
    # Every class keeps 6 requests waiting for one slot (index answers in
    # 15 ms); served shares over the window must follow 1 : 5 : 10.
    keys, internal = internal_keys()
    p = start_profile("macronode", "--inflight-max", "1", "--workers", "1", "--queue-max", "32",
                      "--queue-wait", "30s", "--request-timeout", "30s", "--policy-file", POLICY,
                      "--internal-key-ids", "k2", keyfile=keys)
    p.faults("index", latency_ms=15)
    tokens = {"anon": "", "authed": p.token, "internal": internal}
    stop = time.time() + 7.0

    def client(klass):
        while time.time() < stop:
            p.get("/v1/search?q=user-0&limit=2", token=tokens[klass], timeout=40)

    threads = [threading.Thread(target=client, args=(k,)) for k in tokens for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    before = {k: p.metric("fq_admitted_total", {"class": k}) for k in tokens}
    time.sleep(4.0)
    after = {k: p.metric("fq_admitted_total", {"class": k}) for k in tokens}
    for t in threads:
        t.join()
    served = {k: after[k] - before[k] for k in tokens}
    total = sum(served.values())
    check(total >= 80, "too few served to judge: %r" % served)
    for k, w in (("anon", 1), ("authed", 5), ("internal", 10)):
        share, want = served[k] / total, w / 16.0
        check(abs(share - want) <= 0.1 * want + 1.0 / total,
              "%s share %.3f, want %.3f (served %r)" % (k, share, want, served))
    print("   served in 4 s: %r" % served)


def test_anon_flood_does_not_starve_authed_and_internal__macronode():
    keys, internal = internal_keys()
    p = start_profile("macronode", "--inflight-max", "4", "--workers", "1", "--queue-max", "16",
                      "--queue-wait", "2s", "--policy-file", POLICY, "--internal-key-ids", "k2",
                      keyfile=keys)
    p.faults("index", latency_ms=20)  # about 200 searches/s through 4 slots
    stop = time.time() + 4.0
    anon = []

    def flood(i):
        while time.time() < stop:
            anon.append(p.get("/v1/search?q=user-0&limit=2", token="", timeout=5)[0])

    flooders = [threading.Thread(target=flood, args=(i,)) for i in range(32)]
    for t in flooders:
        t.start()
    time.sleep(0.5)
    ok = {"authed": 0, "internal": 0}
    total = dict(ok)
    while time.time() < stop - 0.3:
        for k, token in (("authed", p.token), ("internal", internal)):
            st = p.get("/v1/search?q=user-0&limit=2", token=token, timeout=5)[0]
            ok[k] += st == 200
            total[k] += 1
    for t in flooders:
        t.join()
    check(anon.count(503) > 0, "anon was never shed: the flood did not overload")
    for k in ok:
        check(total[k] >= 20 and ok[k] >= 0.99 * total[k],
              "%s %d of %d under an anon flood" % (k, ok[k], total[k]))
    check(p.metric("fq_admitted_total", {"class": "internal"}) >= total["internal"],
          "the internal requests were not admitted as internal")


def test_degraded_mode_sheds_writes_and_ends__macronode():
    p = start_profile("macronode", "--degraded-hold", "500ms")
    body = os.urandom(1000)
    st, _, _ = p.get("/v1/o", method="PUT", body=body)
    check(st in (200, 201), st)
    port = p.subs["mailbox"].port
    p.subs["mailbox"].proc.send_signal(signal.SIGKILL)
    p.subs["mailbox"].proc.wait(5)
    deadline = time.time() + 5
    while time.time() < deadline and p.readyz()[0] != 503:
        time.sleep(0.05)
    check(p.readyz()[0] == 503, "readyz stayed 200 with mailbox down")
    deadline = time.time() + 1  # degraded mode follows readiness within its 25 ms period
    while time.time() < deadline and p.metric("degraded_mode") != 1:
        time.sleep(0.01)
    st, h, d = p.get("/v1/o", method="PUT", body=os.urandom(1000))
    check(st == 503 and d["error"] == "degraded" and "retry-after" in h, (st, d))
    st, _, d = p.get("/v1/view/user-007")
    check(st == 200 and d["complete"] is False, "reads must keep serving: %r" % ((st, d),))
    check(p.metric("degraded_mode") == 1)
    st, _, d = http_json("GET", p.og.admin_url + "/admin/degraded")
    check(d["degraded"] is True and "downstream_health" in d["causes"], d)
    # Back on the same address: writes are accepted again once it is healthy.
    p.subs["mailbox"] = start_substrate("mailbox", "--listen", "127.0.0.1:%d" % port)
    p.wait_ready(timeout=8)
    deadline = time.time() + 5
    while time.time() < deadline:
        st, _, d = p.get("/v1/o", method="PUT", body=os.urandom(1000))
        if st in (200, 201):
            break
        time.sleep(0.1)
    check(st in (200, 201), "writes still shed after recovery: %r" % ((st, d),))
    check(p.metric("degraded_mode") == 0)


def test_operator_degraded_mode__macronode():
    p = start_profile("macronode", "--degraded-hold", "200ms")
    st, _, d = http_json("PUT", p.og.admin_url + "/admin/degraded")
    check(st == 200 and d == {"degraded": True, "causes": ["operator"]}, d)
    st, _, d = p.get("/v1/o", method="PUT", body=b"x" * 10)
    check(st == 503 and d["error"] == "degraded", (st, d))
    check(p.get("/v1/index/clip-1")[0] == 200)
    st, _, d = http_json("DELETE", p.og.admin_url + "/admin/degraded")
    check(st == 200 and d["causes"] == [], d)
    deadline = time.time() + 3
    while time.time() < deadline and p.get("/v1/o", method="PUT", body=b"x" * 10)[0] == 503:
        time.sleep(0.05)
    check(p.get("/v1/o", method="PUT", body=b"x" * 10)[0] in (200, 201), "hold never ended")


def http_json(method, url):
    import json
    st, h, body = http(method, url, timeout=5)
    return st, h, json.loads(body)


if __name__ == "__main__":
    run_tests(globals())
