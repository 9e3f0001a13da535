"""The mailbox over HTTP on the real binary, in both profiles: send, receive
with leases, ack (unknown and foreign ids answered and changing nothing),
lease expiry and redelivery, idempotency keys (the same id again; another
body under one key is 409), long-poll (a parked receiver gets a message
within milliseconds of its send; a thousand parked receivers hold no
downstream slot; hang-ups are forgotten), dead letters and redrive, channel
stats on the admin listener, and one rendering of a body in views, feeds
and receives."""
import json
import os
import socket
import threading
import time

from harness import *
from profiles import metrics_text, mint, start_profile

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


def test_parked_receivers_hold_no_slots_and_hang_ups_are_forgotten__micronode():
    p = start_profile("micronode", "--max-connections", "4000")
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
    st, h, body = http("GET", p.og.admin_url + path, timeout=5)
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


if __name__ == "__main__":
    run_tests(globals())
