"""Admission as an operator sees it, on the real binary: degraded mode
entered because queue headroom fell under degraded_headroom (/readyz key
queue_headroom, writes shed, reads served, left after degraded_hold without
flapping), and because a reload failed; class weights and rates changed by
SIGHUP; the tenant bucket table at more tenants than it holds."""
import json
import os
import signal
import tempfile
import threading
import time

from harness import *
from profiles import mint, start_profile
from test_http_basics import Conn

POLICY = os.path.join(ROOT, "testing", "policy", "tenant-feed-deny.json")
SEARCH = "/v1/search?q=user-0&limit=2"


def degraded_events(srv):
    """The degraded-mode log lines, in order: "enter" or "leave"."""
    return ["enter" if j["msg"].startswith("entering") else "leave"
            for j in srv.log_json() if j.get("event") == "degraded"]


def wait_for(fn, timeout, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def test_queue_headroom_degrades_and_recovers_without_flapping__macronode():
    # One slot, queues of 3 per class on one worker (9 places): under 50 %
    # free is 5 or more waiting. Four anonymous and two authed clients keep
    # 4 or 5 waiting: the count moves across the threshold as each search
    # (100 ms) ends and its client asks again. The authed queue keeps a
    # place for the reads below.
    p = start_profile("macronode", "--workers", "1", "--inflight-max", "1", "--queue-max", "3",
                      "--queue-wait", "10s", "--request-timeout", "10s",
                      "--degraded-headroom", "50", "--degraded-hold", "1s", "--policy-file", POLICY)
    p.faults("index", latency_ms=100)
    check(p.readyz()[0] == 200 and p.metric("degraded_mode") == 0)
    stop = [False]

    def client(token):
        while not stop[0]:
            if p.get(SEARCH, token=token, timeout=15)[0] != 200:
                time.sleep(0.02)

    seen = []  # (time, degraded, causes) from /admin/degraded every 20 ms

    def watch():
        while not stop[1]:
            doc = json.loads(http("GET", p.og.admin_url + "/admin/degraded", timeout=3)[2])
            seen.append((time.time(), doc["degraded"], doc["causes"]))
            time.sleep(0.02)

    stop.append(False)
    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client, args=(t,))
               for t in [""] * 4 + [p.token] * 2]
    for t in threads:
        t.start()
    try:
        st_doc = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(p.readyz()), 5)
        check(st_doc and "queue_headroom" in st_doc[1]["missing"],
              "/readyz did not fail on queue headroom: %r" % (st_doc,))
        check(wait_for(lambda: p.metric("degraded_mode") == 1, 1), "not degraded")
        st, _, d = http("GET", p.og.admin_url + "/admin/degraded", timeout=3)
        check(b"queue_headroom" in d, d)
        st, h, d = p.get("/v1/o", method="PUT", body=os.urandom(100))
        check(st == 503 and d["error"] == "degraded" and int(h["retry-after"]) >= 1, (st, h, d))
        # Reads are not shed by degraded mode: they queue and are served.
        reads = [p.get("/v1/index/clip-1", timeout=15) for _ in range(4)]
        check(any(r[0] == 200 for r in reads), [r[:1] + r[2:] for r in reads])
        check(all(r[0] != 503 or r[2]["error"] == "busy" for r in reads), reads)
        time.sleep(2.0)  # load around the threshold, longer than degraded_hold
    finally:
        stop[0] = True
        for t in threads:
            t.join()
    check(wait_for(lambda: p.readyz()[0] == 200, 2), "queue_headroom never cleared")
    check(wait_for(lambda: p.metric("degraded_mode") == 0, 4, step=0.05), "never left degraded mode")
    time.sleep(0.1)
    stop[1] = True
    watcher.join()
    # The cause came and went while loaded (the count crossed the
    # threshold); the mode did not follow it.
    flips = sum(1 for a, b in zip(seen, seen[1:]) if bool(a[2]) != bool(b[2]))
    on = [i for i, x in enumerate(seen) if x[1]]
    check(on and all(seen[i][1] for i in range(on[0], on[-1] + 1)),
          "degraded mode went off and on again while loaded")
    last_cause = max(x[0] for x in seen if x[2])
    left = min(x[0] for x in seen[on[-1]:] if not x[1])
    check(left - last_cause >= 0.95, "left degraded mode %.2fs after its cause cleared: "
          "degraded_hold is 1s" % (left - last_cause))
    check(degraded_events(p.og) == ["enter", "leave"],
          "degraded mode flapped: %r" % degraded_events(p.og))
    print("   queue_headroom cause changed %d times under load; degraded mode once" % flips)
    st, _, _ = p.get("/v1/o", method="PUT", body=os.urandom(100))
    check(st in (200, 201), "writes still shed after recovery: %d" % st)
    check_admission_metrics(p.metrics())


def error_codes():
    """Every error code of OG_ERRORS (src/core/status.h)."""
    import re
    with open(os.path.join(ROOT, "src", "core", "status.h")) as f:
        return re.findall(r'X\(\w+, \d+, "(\w+)"', f.read())


def check_admission_metrics(text):
    """The metrics of admission (issue: fq_inflight, fq_queue_depth,
    admission_wait_seconds, rejected_total, rate_limited_total,
    readyz_degraded), each with its type and labels, after a loaded run."""
    promtool_check(text)
    types = dict(l.split()[2:4] for l in text.splitlines() if l.startswith("# TYPE "))
    for name, kind in (("fq_inflight", "gauge"), ("fq_queue_depth", "gauge"),
                       ("admission_wait_seconds", "histogram"), ("rejected_total", "counter"),
                       ("rate_limited_total", "counter"), ("readyz_degraded", "gauge"),
                       ("degraded_mode", "gauge")):
        check(types.get(name) == kind, "%s: %r" % (name, types.get(name)))
    for k in ("anon", "authed"):
        check(metric_value(text, "admission_wait_seconds_count", {"class": k}) > 0, k)
        check(metric_value(text, "admission_wait_seconds_bucket", {"class": k, "le": "+Inf"}) > 0)
    for k in ("anon", "authed", "internal"):
        for name in ("fq_inflight", "fq_queue_depth"):
            check(metric_value(text, name, {"class": k}) is not None, (name, k))
    for scope in ("instance", "tenant"):
        check(metric_value(text, "rate_limited_total", {"scope": scope}) is not None, scope)
    codes = error_codes()
    check(len(codes) >= 20 and "quota" in codes and "degraded" in codes, codes)
    for code in codes:
        check(metric_value(text, "rejected_total", {"reason": code}) is not None, code)
    check(metric_value(text, "rejected_total", {"reason": "busy"}) > 0)
    check(metric_value(text, "rejected_total", {"reason": "degraded"}) >= 1)


def write(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.replace(path + ".new", path)


def test_a_failed_reload_degrades_until_a_good_one__macronode():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "og.ini")
    write(path, "[limits]\nheader_max = 16KiB\n")
    p = start_profile("macronode", "--config", path, "--degraded-hold", "300ms")
    check(p.get("/v1/o", method="PUT", body=b"x" * 10)[0] in (200, 201))
    write(path, "[limits]\nheader_max = banana\n")
    p.og.signal(signal.SIGHUP)
    check(wait_for(lambda: p.metric("degraded_mode") == 1, 3), "a failed reload did not degrade")
    st, _, doc = http("GET", p.og.admin_url + "/admin/degraded", timeout=3)
    check(b'"last_reload"' in doc, doc)
    st, h, d = p.get("/v1/o", method="PUT", body=b"x" * 10)
    check(st == 503 and d["error"] == "degraded" and "retry-after" in h, (st, d))
    check(p.get("/v1/index/clip-1")[0] == 200, "reads stopped after a failed reload")
    write(path, "[limits]\nheader_max = 8KiB\n")
    p.og.signal(signal.SIGHUP)
    check(wait_for(lambda: p.metric("degraded_mode") == 0, 3), "a good reload did not end it")
    check(p.get("/v1/o", method="PUT", body=b"x" * 10)[0] in (200, 201))


def statuses(port, path, n, headers=b""):
    """n pipelined GETs on one connection: their statuses, in order."""
    c = Conn(port)
    req = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n"
    c.send(req * n)
    out = [c.response() for _ in range(n)]
    c.close()
    return out


def test_sighup_changes_rates():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "og.ini")
    write(path, "[limits]\nrate = 1/m\n")
    # --rate-burst (a flag the reload keeps) stops the harness turning the
    # instance rate off, so the file's rate is the one in force.
    srv = start_omnigate("--config", path, "--rate-burst", "3", "--workers", "1")
    codes = [r[0] for r in statuses(srv.port, "/healthz", 5)]
    check(codes == [200] * 3 + [429] * 2, codes)
    st, h, _ = statuses(srv.port, "/healthz", 1)[0]
    check(st == 429 and int(h["retry-after"]) > 1, h)
    # Instance bucket off, tenant bucket on: 2 per client address.
    write(path, "[limits]\nrate = 0\ntenant_rate = 1/m\ntenant_burst = 2\n")
    srv.signal(signal.SIGHUP)
    check(wait_for(lambda: any(j.get("event") == "reload" for j in srv.log_json()), 3), "no reload")
    out = statuses(srv.port, "/healthz", 4)
    check([r[0] for r in out] == [200, 200, 429, 429], [r[:2] for r in out])
    check(out[2][1]["ratelimit-policy"].startswith('"tenant";q=2;'), out[2][1])
    # The instance bucket back on (it starts full, whatever it held before
    # it was turned off), tenant bucket off again.
    write(path, "[limits]\nrate = 10/s\n")
    srv.signal(signal.SIGHUP)
    check(wait_for(lambda: sum(j.get("event") == "reload" for j in srv.log_json()) == 2, 3))
    codes = [r[0] for r in statuses(srv.port, "/healthz", 5)]
    check(codes == [200] * 3 + [429] * 2, "reloaded rates not in force: %r" % codes)
    # Raised from 1/m while drained: empty at the reload, then refilled at
    # the new rate (a token every 100 ms), not minutes in debt.
    write(path, "[limits]\nrate = 1/m\n")
    srv.signal(signal.SIGHUP)
    check(wait_for(lambda: sum(j.get("event") == "reload" for j in srv.log_json()) == 3, 3))
    statuses(srv.port, "/healthz", 4)  # drains the bucket at 1/m
    write(path, "[limits]\nrate = 10/s\n")
    srv.signal(signal.SIGHUP)
    check(wait_for(lambda: sum(j.get("event") == "reload" for j in srv.log_json()) == 4, 3))
    time.sleep(0.4)
    codes = [r[0] for r in statuses(srv.port, "/healthz", 3)]
    check(codes == [200] * 3, "a raised rate kept the old debt: %r" % codes)
    check(srv.proc.poll() is None)


def test_sighup_changes_class_weights__macronode():
    # Weights 1 (anon) : 5 (authed) by default; after a reload, 5 : 1. Both
    # classes stay backlogged on one slot; the served shares must follow.
    d = tempfile.mkdtemp()
    path = os.path.join(d, "og.ini")
    write(path, "[limits]\nweight_anon = 1\nweight_authed = 5\n")
    p = start_profile("macronode", "--config", path, "--inflight-max", "1", "--workers", "1",
                      "--queue-max", "32", "--queue-wait", "30s", "--request-timeout", "30s",
                      "--policy-file", POLICY)
    p.faults("index", latency_ms=15)
    tokens = {"anon": "", "authed": p.token}
    stop = [False]

    def client(token):
        while not stop[0]:
            p.get(SEARCH, token=token, timeout=40)

    def shares(seconds):
        before = {k: p.metric("fq_admitted_total", {"class": k}) for k in tokens}
        time.sleep(seconds)
        after = {k: p.metric("fq_admitted_total", {"class": k}) for k in tokens}
        served = {k: after[k] - before[k] for k in tokens}
        total = sum(served.values())
        check(total >= 50, "too few served to judge: %r" % served)
        return {k: served[k] / total for k in tokens}, served

    threads = [threading.Thread(target=client, args=(tokens[k],)) for k in tokens for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        first, n1 = shares(2.5)
        write(path, "[limits]\nweight_anon = 5\nweight_authed = 1\n")
        p.og.signal(signal.SIGHUP)
        check(wait_for(lambda: any(j.get("event") == "reload" for j in p.og.log_json()), 3))
        time.sleep(0.5)
        second, n2 = shares(2.5)
    finally:
        stop[0] = True
        for t in threads:
            t.join()
    for got, want, served in ((first, {"anon": 1 / 6, "authed": 5 / 6}, n1),
                              (second, {"anon": 5 / 6, "authed": 1 / 6}, n2)):
        total = sum(served.values())
        for k in tokens:
            check(abs(got[k] - want[k]) <= 0.1 * want[k] + 1.0 / total,
                  "%s share %.3f, want %.3f (served %r)" % (k, got[k], want[k], served))
    print("   served before the reload %r, after %r" % (n1, n2))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_tenant_table_holds_more_tenants_than_it_has_room_for():
    # 16 slots (the minimum); 2000 anonymous clients, told apart by a
    # trusted proxy's X-Forwarded-For, each send their burst of 2 and one
    # more. Each newcomer finds its own bucket: the first two 200, the
    # third 429, whatever the table held before.
    srv = start_omnigate("--tenant-rate", "1/m", "--tenant-burst", "2", "--tenant-table-max", "16",
                         "--trusted-proxies", "127.0.0.0/8", "--workers", "2")

    def client(i):
        xff = b"X-Forwarded-For: 10.%d.%d.%d\r\n" % (i >> 16 & 255, i >> 8 & 255, i & 255)
        return [r[0] for r in statuses(srv.port, "/healthz", 3, xff)]

    rss0 = None
    bad = []
    for i in range(1, 2001):
        codes = client(i)
        if codes != [200, 200, 429]:
            bad.append((i, codes))
        if i == 200:
            rss0 = rss_kib(srv.proc.pid)
    check(not bad, "tenants not given a bucket of their own: %d of 2000, first %r"
          % (len(bad), bad[:5]))
    # A tenant evicted long ago comes back to a fresh bucket.
    check(client(1) == [200, 200, 429], "an evicted tenant did not get a fresh bucket")
    grew = rss_kib(srv.proc.pid) - rss0
    check(grew < 2048, "RSS grew by %d KiB over 1800 more tenants" % grew)
    m = http("GET", srv.admin_url + "/metrics")[2].decode()
    check(metric_value(m, "rate_limited_total", {"scope": "tenant"}) >= 2001, "not counted")
    check(srv.proc.poll() is None)


if __name__ == "__main__":
    run_tests(globals())
