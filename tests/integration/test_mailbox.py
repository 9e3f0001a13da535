"""The mailbox over HTTP on the real binary, in both profiles: send, receive
with leases, ack (unknown and foreign ids answered and changing nothing),
lease expiry and redelivery, idempotency keys (the same id again; another
body under one key is 409), long-poll (a parked receiver gets a message
within milliseconds of its send; a thousand parked receivers hold no
downstream slot; hang-ups are forgotten; beyond mailbox_parked_max a
receive that would wait is 503), dead letters and redrive, channel stats on
the admin listener and as metrics with a bounded channel label, capability
scopes and policy refusing before any downstream call, and one rendering of
a body in views, feeds and receives."""
import json
import os
import socket
import tempfile
import threading
import time

from harness import *
from oap_client import APP_MAILBOX, OapClient
from profiles import KEYFILE, TMP, metrics_text, mint, profile_tests, start_profile

MAILBOX = "mailbox.read,mailbox.write,feed.read,view.read"


def tok(tenant="demo"):
    return mint(tenant=tenant, scope=MAILBOX)


def send(p, ch, body, token, ctype="application/json", key=None):
    h = {"Content-Type": ctype}
    if key:
        h["Idempotency-Key"] = key
    return p.get("/v1/mailbox/" + ch, token=token, method="POST", body=body, headers=h)


def recv(p, ch, token, q="", timeout=10):
    return p.get("/v1/mailbox/%s%s" % (ch, q), token=token, timeout=timeout)


def post(p, path, doc, token):
    return p.get(path, token=token, method="POST", body=json.dumps(doc).encode(),
                 headers={"Content-Type": "application/json"})


def round_trip(prof):
    p = start_profile(prof)
    a = tok()
    st, _, d = send(p, "jobs", b'{"n": [1, 2]}', a)
    check(st == 201 and d == {"id": 1, "duplicate": False}, (st, d))
    st, _, d = send(p, "jobs", b"\x00\x01binary", a, ctype="application/octet-stream")
    check(st == 201 and d["id"] == 2, (st, d))
    st, _, d = recv(p, "jobs", a, "?max=10&lease=1s")
    check(st == 200 and [m["id"] for m in d["messages"]] == [1, 2], (st, d))
    m1, m2 = d["messages"]
    check(m1["body"] == {"n": [1, 2]} and m1["deliveries"] == 1 and m1["lease_until_ms"] > 0, m1)
    check(m2["type"] == "application/octet-stream" and m2["encoding"] == "base64", m2)
    # Leased: invisible to other receivers until acked or the lease ends.
    st, _, d = recv(p, "jobs", a)
    check(st == 200 and d["messages"] == [], d)
    # Another tenant's ack of a leased id, and an unknown id: answered, nothing changes.
    st, _, d = post(p, "/v1/mailbox/jobs/ack", {"ids": [1, 99]}, tok("other"))
    check(st == 200 and d == {"acked": 0, "unknown": [99], "foreign": [1], "not_leased": []}, d)
    st, _, d = post(p, "/v1/mailbox/jobs/ack", {"ids": [1]}, a)
    check(st == 200 and d["acked"] == 1, d)
    # The unacked one comes back when its lease ends, delivered twice.
    time.sleep(1.1)
    st, _, d = recv(p, "jobs", a)
    check([(m["id"], m["deliveries"]) for m in d["messages"]] == [(2, 2)], d)
    st, _, d = post(p, "/v1/mailbox/jobs/ack", {"ids": [2]}, a)
    check(d["acked"] == 1, d)
    st, _, d = recv(p, "jobs", a)
    check(d["messages"] == [], "an acked message came back: %r" % d)
    # Errors: bad ids, bad channel, bad durations, no scope.
    check(post(p, "/v1/mailbox/jobs/ack", {"ids": "x"}, a)[0] == 400)
    check(recv(p, "bad%20name", a)[0] == 400)
    check(recv(p, "jobs", a, "?lease=soon")[0] == 400)
    check(recv(p, "jobs", a, "?wait=10m")[0] == 400)
    check(recv(p, "jobs", mint(scope="feed.read"))[0] == 403)
    st, _, d = send(p, "jobs", b"not json", a)
    check(st == 400, "a body that says JSON must be JSON: %d" % st)
    if p.macro:  # the service counts the new ops under their own names
        post(p, "/v1/mailbox/jobs/nack", {"ids": [1]}, a)
        text = metrics_text(p.subs["mailbox"].admin_url)
        check((metric_value(text, "substrate_requests_total", {"op": "nack"}) or 0) >= 1,
              "nack not counted by name")


def test_round_trip__micronode():
    round_trip("micronode")


def test_round_trip__macronode():
    round_trip("macronode")


def test_idempotency_keys__micronode():
    p = start_profile("micronode")
    a = tok()
    st, _, d = send(p, "pay", b'{"amount": 5}', a, key="order-17")
    check(st == 201 and d["duplicate"] is False, d)
    st, _, d2 = send(p, "pay", b'{"amount": 5}', a, key="order-17")
    check(st == 200 and d2 == {"id": d["id"], "duplicate": True}, d2)
    st, _, d3 = send(p, "pay", b'{"amount": 6}', a, key="order-17")
    check(st == 409 and d3["error"] == "conflict", (st, d3))
    st, _, r = recv(p, "pay", a, "?max=10")
    check(len(r["messages"]) == 1, "one message stored: %r" % r)
    st, _, d = send(p, "pay", b"{}", a, key="x" * 256)
    check(st == 400, st)


def test_long_poll_wakes_on_send__micronode():
    p = start_profile("micronode")
    a = tok()
    out = {}

    def receiver():
        t0 = time.time()
        out["r"] = recv(p, "lp", a, "?wait=2s")
        out["t"] = time.time()
        out["took"] = out["t"] - t0

    t = threading.Thread(target=receiver)
    t.start()
    time.sleep(0.2)
    t_send = time.time()
    send(p, "lp", b'"hello"', a)
    t.join()
    st, _, d = out["r"]
    check(st == 200 and [m["body"] for m in d["messages"]] == ["hello"], d)
    lag = out["t"] - t_send
    check(lag < 0.1, "woken %.0f ms after the send" % (lag * 1000))
    print("   long-poll: answered %.1f ms after the send" % (lag * 1000))
    # Nothing arrives: an empty list when the wait ends.
    t0 = time.time()
    st, _, d = recv(p, "quiet", a, "?wait=300ms")
    took = time.time() - t0
    check(st == 200 and d["messages"] == [] and 0.28 <= took < 1.0, (st, d, took))


def parked_receivers(prof):
    # No polls in macronode: a poll is a call of its own, and this test is
    # about what waiting costs.
    p = start_profile(prof, "--max-connections", "4000", "--mailbox-poll-interval", "0")
    a = tok()
    pid = p.og.proc.pid
    rss0 = int([l for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS")][0].split()[1])
    head = ("GET /v1/mailbox/crowd?wait=20s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
            % a).encode()
    socks = []
    for i in range(1000):
        s = socket.create_connection(("127.0.0.1", p.og.port))
        s.sendall(head)
        socks.append(s)
        if i % 50 == 49:  # in waves: the in-process mailbox takes 64 calls at once
            deadline = time.time() + 5
            while time.time() < deadline and p.metric("mailbox_parked_receivers") < i + 1:
                time.sleep(0.01)
    deadline = time.time() + 10
    while time.time() < deadline and p.metric("mailbox_parked_receivers") != 1000:
        time.sleep(0.05)
    m = p.metrics()
    check(metric_value(m, "mailbox_parked_receivers") == 1000, "parked: %r"
          % metric_value(m, "mailbox_parked_receivers"))
    check((metric_value(m, "downstream_inflight", {"service": "mailbox"}) or 0) == 0,
          "parked receivers hold downstream slots")
    if p.macro:  # nor a call at the service
        sm = metrics_text(p.subs["mailbox"].admin_url)
        check(metric_value(sm, "substrate_inflight") == 0, "the service holds parked calls")
    rss1 = int([l for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS")][0].split()[1])
    per = (rss1 - rss0) * 1024 / 1000
    print("   1000 parked receivers: %.1f KiB each (RSS %d -> %d KiB)" % (per / 1024, rss0, rss1))
    check(per < 64 * 1024, "%.0f bytes per parked receiver" % per)
    # One message wakes one receiver.
    send(p, "crowd", b'{"go": 1}', a)
    deadline = time.time() + 5
    while time.time() < deadline and p.metric("mailbox_parked_receivers") != 999:
        time.sleep(0.02)
    check(p.metric("mailbox_parked_receivers") == 999, "one send, one wake")
    for s in socks:
        s.close()
    deadline = time.time() + 5
    while time.time() < deadline and p.metric("mailbox_parked_receivers") != 0:
        time.sleep(0.05)
    check(p.metric("mailbox_parked_receivers") == 0, "hang-ups left receivers parked: %r"
          % p.metric("mailbox_parked_receivers"))


profile_tests(globals(), "parked_receivers_hold_no_slots_and_hang_ups_are_forgotten",
              parked_receivers)


def test_dead_letters_and_redrive__micronode():
    p = start_profile("micronode", "--mailbox-max-deliveries", "2")
    a = tok()
    send(p, "dlq", b'{"poison": true}', a)
    for _ in range(2):
        st, _, d = recv(p, "dlq", a, "?lease=200ms")
        check(len(d["messages"]) == 1, d)
        time.sleep(0.25)
    st, _, d = recv(p, "dlq", a)
    check(d["messages"] == [], "a message past max_deliveries was delivered again: %r" % d)
    st, _, d = p.get("/v1/mailbox/dlq/dead", token=a)
    check(st == 200 and [m["body"] for m in d["messages"]] == [{"poison": True}], d)
    st, _, s = http_json_admin(p, "/admin/mailbox/dlq")
    check(s["dead"] == 1 and s["depth"] == 0, s)
    st, _, d = p.get("/v1/mailbox/dlq/dead/redrive", token=a, method="POST", body=b"")
    check(st == 200 and d == {"redriven": 1}, d)
    st, _, d = recv(p, "dlq", a)
    check([m["deliveries"] for m in d["messages"]] == [1], "redriven as new: %r" % d)
    # nack releases at once; lease extends.
    mid = d["messages"][0]["id"]
    st, _, d = post(p, "/v1/mailbox/dlq/nack", {"ids": [mid]}, a)
    check(d["done"] == 1, d)
    st, _, d = recv(p, "dlq", a, "?lease=300ms")
    check(len(d["messages"]) == 1, d)
    st, _, d = post(p, "/v1/mailbox/dlq/lease", {"ids": [mid], "lease_ms": 5000}, a)
    check(d["done"] == 1, d)
    time.sleep(0.4)
    st, _, d = recv(p, "dlq", a)
    check(d["messages"] == [], "the extended lease ended early: %r" % d)


def http_json_admin(p, path):
    return http_json_admin_url(p.og.admin_url, path)


def http_json_admin_url(url, path):
    st, h, body = http("GET", url + path, timeout=5)
    return st, h, json.loads(body)


def test_feed_view_and_receive_render_a_body_alike__micronode():
    p = start_profile("micronode")
    a = tok()
    send(p, "render", b'[1, 2]', a)
    st2, h, raw = http("GET", p.og.url + "/v1/feed/render?limit=1",
                       headers={"Authorization": "Bearer " + a})
    check(b'"body":[1, 2]' in raw, "the feed re-serialised the body: %r" % raw[:200])
    st, h, raw = http("GET", p.og.url + "/v1/mailbox/render",
                      headers={"Authorization": "Bearer " + a})
    check(b'"body":[1, 2]' in raw, raw[:200])


def test_channel_stats_on_the_admin_listener__macronode():
    p = start_profile("macronode")
    a = tok()
    for i in range(3):
        send(p, "ops", b'{"i": %d}' % i, a)
    recv(p, "ops", a, "?max=1")
    st, _, s = http_json_admin(p, "/admin/mailbox/ops")
    check(st == 200 and s["depth"] == 3 and s["leased"] == 1 and s["next_id"] == 4, s)
    check(s["oldest_age_ms"] >= 0, s)
    st, _, body = http("GET", p.og.admin_url + "/admin/mailbox/none", timeout=5)
    check(st == 404, st)
    # The admin loop's downstream handle does not keep the process from exiting.
    t0 = time.time()
    p.og.proc.send_signal(15)
    p.og.proc.wait(10)
    check(p.og.proc.returncode == 0 and time.time() - t0 < 5, (p.og.proc.returncode, time.time() - t0))


# ---- channel stats as metrics ---------------------------------------------

def series(text, family):
    """{channel: value} of a family's samples."""
    out = {}
    for line in text.splitlines():
        if line.startswith(family + "{channel=\""):
            head, _, val = line.rpartition(" ")
            name = head[len(family) + len('{channel="'):-2]
            out[name] = float(val)  # the names used here need no unescaping
    return out


def channel_metrics(prof):
    """Channels with known depth, leased and dead counts, more of them than
    the K that get a label: the K holding the most messages are named, the
    rest summed under _other (a channel named _other too), totals beside,
    and promtool passes. Micronode: omnigate serves them; macronode: the
    mailbox service does, and omnigate does not."""
    K = 4
    if prof == "micronode":
        og = start_omnigate("--root-keys", KEYFILE, "--mailbox-stats-channels", str(K))
        scrape = og.admin_url
    else:
        sub = start_substrate("mailbox", "--stats-channels", str(K))
        og = start_omnigate("--root-keys", KEYFILE, "--mailbox", "oap://127.0.0.1:%d" % sub.port)
        scrape = sub.admin_url
    a = tok()
    h = {"Authorization": "Bearer " + a, "Content-Type": "application/json"}

    def send_n(ch, n):
        for i in range(n):
            st, _, _ = http("POST", og.url + "/v1/mailbox/" + ch, body=b'{"i": %d}' % i, headers=h)
            check(st == 201, "send %s: %d" % (ch, st))

    def recv_n(ch, q):
        st, _, body = http("GET", og.url + "/v1/mailbox/%s?%s" % (ch, q), headers=h)
        check(st == 200, "recv %s: %d" % (ch, st))
        return json.loads(body)["messages"]

    t0 = time.time()
    send_n("big", 9)
    check(len(recv_n("big", "max=2&lease=60s")) == 2)
    send_n("mid", 5)
    send_n("dead", 3)
    for _ in range(5):  # max_deliveries 5 (both profiles' default)
        check(len(recv_n("dead", "max=3&lease=100ms")) == 3)
        time.sleep(0.15)
    send_n("two", 2)
    send_n("_other", 6)
    for i in range(20):
        send_n("c-%02d" % i, 1)
    # 25 channels; the top 4 by messages held: big 9, mid 5, dead 3 (dead), two 2.
    text = metrics_text(scrape)
    promtool_check(text, "%s with %d channels" % (prof, 25))
    age_bound = time.time() - t0 + 1
    depth = series(text, "mailbox_channel_depth")
    check(depth == {"big": 9, "mid": 5, "dead": 0, "two": 2, "_other": 26}, depth)
    check(series(text, "mailbox_channel_leased") ==
          {"big": 2, "mid": 0, "dead": 0, "two": 0, "_other": 0}, text)
    check(series(text, "mailbox_channel_dead") ==
          {"big": 0, "mid": 0, "dead": 3, "two": 0, "_other": 0}, text)
    ages = series(text, "mailbox_channel_oldest_age_seconds")
    check(set(ages) == set(depth) and ages["dead"] == 0, ages)
    check(0.5 < ages["big"] < age_bound and ages["big"] >= ages["mid"] >= ages["two"], ages)
    for fam, want in (("mailbox_channels", 25), ("mailbox_depth", 42), ("mailbox_leased", 2),
                      ("mailbox_dead", 3)):
        check(metric_value(text, fam) == want, "%s: %r" % (fam, metric_value(text, fam)))
    check(metric_value(text, "mailbox_oldest_age_seconds") == ages["big"], text)
    # Exactly K + 1 series per labelled family, whatever the channel count.
    for fam in ("mailbox_channel_depth", "mailbox_channel_leased", "mailbox_channel_dead",
                "mailbox_channel_oldest_age_seconds"):
        n = len([l for l in text.splitlines() if l.startswith(fam + "{")])
        check(n == K + 1, "%s: %d series" % (fam, n))
    # The admin route agrees; a change shows at the next scrape.
    st, _, s = http_json_admin_url(og.admin_url, "/admin/mailbox/big")
    check(s["depth"] == 9 and s["leased"] == 2, s)
    ids = [m["id"] for m in recv_n("mid", "max=5&lease=60s")]
    send_n("c-07", 10)
    text = metrics_text(scrape)
    check(series(text, "mailbox_channel_leased").get("mid") == 5, text)
    depth = series(text, "mailbox_channel_depth")
    check(depth == {"c-07": 11, "big": 9, "mid": 5, "dead": 0, "_other": 27}, depth)
    if prof == "macronode":
        check("mailbox_channel_depth" not in metrics_text(og.admin_url),
              "omnigate shows channel metrics of a mailbox it does not hold")
        # Names the HTTP routes refuse can still reach the service over
        # OAP/1: the label value is escaped and promtool still passes.
        c = OapClient.tcp(sub.port)
        c.hello()
        for i in range(20):
            code, _, _ = c.call(APP_MAILBOX, {"op": "send", "channel": 'we"ird\\ ch'}, b"x")
            check(code == 201, code)
        c.close()
        text = metrics_text(scrape)
        promtool_check(text, "a quoted channel name")
        check('mailbox_channel_depth{channel="we\\"ird\\\\ ch"} 20' in text, text)


profile_tests(globals(), "channel_metrics_bounded_labels", channel_metrics)



# ---- parked receivers: the cap ---------------------------------------------

def test_parked_max_refuses_a_receive_that_would_wait__micronode():
    """mailbox_parked_max is per worker: with one worker and a cap of 3, a
    fourth receive that would wait is refused 503 busy at once; one that
    need not wait (a message is there, or no wait) is served; a hang-up
    makes room again."""
    og = start_omnigate("--demo", "--root-keys", KEYFILE, "--mailbox-parked-max", "3", workers=1)
    a = tok()
    h = {"Authorization": "Bearer " + a}

    def parked():
        return metric_value(metrics_text(og.admin_url), "mailbox_parked_receivers")

    head = ("GET /v1/mailbox/full?wait=20s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n\r\n"
            % a).encode()
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", og.port))
        s.sendall(head)
        socks.append(s)
    deadline = time.time() + 5
    while time.time() < deadline and parked() != 3:
        time.sleep(0.02)
    check(parked() == 3, "parked: %r" % parked())
    busy0 = metric_value(metrics_text(og.admin_url), "rejected_total", {"reason": "busy"}) or 0
    t0 = time.time()
    st, hd, body = http("GET", og.url + "/v1/mailbox/full?wait=5s", headers=h)
    took = time.time() - t0
    check(st == 503 and json.loads(body)["error"] == "busy" and "retry-after" in hd,
          (st, hd, body))
    check(took < 1, "refused after %.2f s, not at once" % took)
    check(metric_value(metrics_text(og.admin_url), "rejected_total", {"reason": "busy"}) ==
          busy0 + 1)
    check(parked() == 3, "the refused receive parked")
    # No wait, or a message waiting: nothing to park, served.
    st, _, body = http("GET", og.url + "/v1/mailbox/full", headers=h)
    check(st == 200 and json.loads(body)["messages"] == [], (st, body))
    st, _, _ = http("POST", og.url + "/v1/mailbox/other", body=b"{}",
                    headers=dict(h, **{"Content-Type": "application/json"}))
    check(st == 201)
    st, _, body = http("GET", og.url + "/v1/mailbox/other?wait=5s", headers=h)
    check(st == 200 and len(json.loads(body)["messages"]) == 1, (st, body))
    # A hang-up frees a place: the next waiting receive parks and times out empty.
    socks.pop().close()
    deadline = time.time() + 5
    while time.time() < deadline and parked() != 2:
        time.sleep(0.02)
    st, _, body = http("GET", og.url + "/v1/mailbox/full?wait=300ms", headers=h)
    check(st == 200 and json.loads(body)["messages"] == [], (st, body))
    for s in socks:
        s.close()


# ---- scopes and policy before any downstream call ---------------------------

def scopes_before_downstream(prof):
    """A token without mailbox.write gets 403 on send, ack, nack, lease and
    redrive; one without mailbox.read on receive and dead letters; a policy
    denial likewise; none of them reaches the mailbox (omnigate's downstream
    counter, and in macronode the service's own, stay put; no channel is
    created). The control send with the scope does reach it."""
    pol = tempfile.NamedTemporaryFile("w", suffix=".json", dir=TMP, delete=False)
    json.dump({"version": 1, "default_action": "allow", "rules": [
        {"id": "no-mail", "when": {"route": "/v1/mailbox/", "tenant": "blocked-co"},
         "action": "deny", "reason": "mailbox suspended"}]}, pol)
    pol.close()
    p = start_profile(prof, "--policy-file", pol.name)
    read_only, write_only = mint(scope="mailbox.read"), mint(scope="mailbox.write")
    blocked = mint(tenant="blocked-co", scope=MAILBOX)

    def counts():
        n = metric_value(p.metrics(), "downstream_requests_total", {"service": "mailbox"}) or 0
        if p.macro:
            n += metric_value(metrics_text(p.subs["mailbox"].admin_url),
                              "substrate_requests_total") or 0
        return n

    before = counts()
    jh = {"Content-Type": "application/json"}
    for token, method, path, body in (
            (read_only, "POST", "/v1/mailbox/scoped", b'{"a": 1}'),
            (read_only, "POST", "/v1/mailbox/scoped/ack", b'{"ids": [1]}'),
            (read_only, "POST", "/v1/mailbox/scoped/nack", b'{"ids": [1]}'),
            (read_only, "POST", "/v1/mailbox/scoped/lease", b'{"ids": [1], "lease_ms": 1000}'),
            (read_only, "POST", "/v1/mailbox/scoped/dead/redrive", b""),
            (write_only, "GET", "/v1/mailbox/scoped?wait=1s", None),
            (write_only, "GET", "/v1/mailbox/scoped/dead", None),
            (blocked, "POST", "/v1/mailbox/scoped", b'{"a": 1}'),
            (blocked, "GET", "/v1/mailbox/scoped", None)):
        st, _, d = p.get(path, token=token, method=method, body=body, headers=jh)
        check_error_403(st, d, "%s %s" % (method, path))
    check(counts() == before, "refused requests reached the mailbox: %r -> %r"
          % (before, counts()))
    st, _, _ = http("GET", p.og.admin_url + "/admin/mailbox/scoped", timeout=5)
    check(st == 404, "a refused send created the channel: %d" % st)
    st, _, d = p.get("/v1/mailbox/scoped", token=write_only, method="POST", body=b'{"a": 1}',
                     headers=jh)
    check(st == 201, (st, d))
    check(counts() > before, "the control send was not counted")


def check_error_403(st, d, what):
    check(st == 403 and isinstance(d, dict) and d.get("error") == "forbidden",
          "%s: %r %r" % (what, st, d))


profile_tests(globals(), "scopes_and_policy_refuse_before_any_downstream_call",
              scopes_before_downstream)


if __name__ == "__main__":
    run_tests(globals())
