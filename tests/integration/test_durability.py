"""Durability of the macronode mailbox and index (omnigate-substrate
--data-dir DIR --no-amnesia): what was acknowledged survives kill -9 of the
service under load and a restart on the same directory and port. Every
message answered 201 is there (or was acked), no message whose ack was
answered comes back, ids keep growing past every id ever issued, idempotency
keys still deduplicate (over OAP/1, and end to end through omnigate's
HTTP mailbox route); index names keep their last acknowledged manifest;
the same holds when the log is compacted in the background, with the fsync
policies that skip the fsync, and after a torn last record. Also: the flags
and their checks, /readyz and /metrics saying whether a service is
amnesiac."""
import json
import os
import random
import subprocess
import tempfile
import threading
import time

from harness import *
from oap_client import APP_INDEX, APP_MAILBOX, OapClient, mailbox_messages

CHANNELS = ["orders", "news", "audit"]  # audit is never acked: it fills up to its depth cap


def durable(role, data, *extra, port=None, admin=None):
    return start_substrate(role, "--data-dir", data, "--no-amnesia", *extra, port=port,
                           admin=admin)


def kill9(srv):
    srv.proc.kill()
    srv.proc.wait()


def restart(srv, role, data, *extra):
    return durable(role, data, *extra, port=srv.port, admin=srv.admin)


def metrics(srv):
    return http("GET", srv.admin_url + "/metrics")[2].decode()


class Ledger:
    """What clients were told, and what they may or may not have been told
    (requests in flight when the service died)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}          # (channel, id) -> body, answered 201
        self.keys = {}          # (channel, key) -> id, answered 201
        self.acked = set()      # (channel, id), ack answered 200
        self.maybe_acked = set()  # (channel, id), ack sent, no answer
        self.max_id = {}        # channel -> highest id answered


def sender(port, ledger, stop, n):
    c = OapClient.tcp(port, timeout=5)
    c.hello()
    i, run = 0, os.urandom(4).hex()
    try:
        while not stop.is_set():
            ch = CHANNELS[i % len(CHANNELS)]
            key = "k-%s-%d-%d" % (run, n, i) if i % 4 == 1 else None
            body = b"message %d of sender %d " % (i, n) + os.urandom(8).hex().encode()
            hdr = {"op": "send", "channel": ch}
            if key:
                hdr["key"] = key
            code, h, _ = c.call(APP_MAILBOX, hdr, body)
            if code == 201:
                with ledger.lock:
                    ledger.sent[(ch, h["id"])] = body
                    ledger.max_id[ch] = max(ledger.max_id.get(ch, 0), h["id"])
                    if key:
                        ledger.keys[(ch, key)] = h["id"]
            i += 1
    except (OSError, ConnectionError, ValueError):
        pass  # the service died under us
    finally:
        c.close()


def acker(port, ledger, stop):
    """Receives and acks on all channels but the last, which only grows."""
    c = OapClient.tcp(port, timeout=5)
    c.hello()
    try:
        while not stop.is_set():
            for ch in CHANNELS[:-1]:
                code, _, body = c.call(APP_MAILBOX, {"op": "recv", "channel": ch, "max": 5,
                                                     "lease_ms": 60000})
                if code != 200:
                    continue
                ids = [m["id"] for m in mailbox_messages(body)]
                if not ids:
                    continue
                with ledger.lock:
                    ledger.maybe_acked.update((ch, i) for i in ids)
                code, _, _ = c.call(APP_MAILBOX, {"op": "ack", "channel": ch, "ids": ids})
                if code == 200:
                    with ledger.lock:
                        ledger.acked.update((ch, i) for i in ids)
    except (OSError, ConnectionError, ValueError):
        pass
    finally:
        c.close()


def load_then_kill(srv, ledger, seconds, senders=3):
    stop = threading.Event()
    ts = [threading.Thread(target=sender, args=(srv.port, ledger, stop, n)) for n in range(senders)]
    ts.append(threading.Thread(target=acker, args=(srv.port, ledger, stop)))
    for t in ts:
        t.start()
    time.sleep(seconds)
    kill9(srv)  # under load: requests are in flight
    stop.set()
    for t in ts:
        t.join(10)


def drain(port):
    """Every live message per channel: {(channel, id): body}, leasing them
    all (recv until empty)."""
    c = OapClient.tcp(port)
    c.hello()
    out = {}
    for ch in CHANNELS:
        while True:
            code, _, body = c.call(APP_MAILBOX, {"op": "recv", "channel": ch, "max": 100,
                                                 "lease_ms": 600000})
            check(code == 200, code)
            msgs = mailbox_messages(body)
            if not msgs:
                break
            for m in msgs:
                check((ch, m["id"]) not in out, "id %s/%d delivered twice" % (ch, m["id"]))
                out[(ch, m["id"])] = m["body"]
    c.close()
    return out


def verify(port, ledger):
    live = drain(port)
    with ledger.lock:
        for (ch, i), body in ledger.sent.items():
            if (ch, i) in ledger.maybe_acked or (ch, i) in ledger.acked:
                continue
            check((ch, i) in live, "message %s/%d was answered 201 and is gone" % (ch, i))
            check(live[(ch, i)] == body, "message %s/%d came back changed" % (ch, i))
        for (ch, i) in ledger.acked:
            check((ch, i) not in live, "message %s/%d was acked and came back" % (ch, i))
        top = dict(ledger.max_id)
        keys = dict(ledger.keys)
    for (ch, i) in live:
        top[ch] = max(top.get(ch, 0), i)
    c = OapClient.tcp(port)
    c.hello()
    for ch in CHANNELS:
        # Room for one more on a channel at its depth cap; acks go on working.
        oldest = sorted(i for (x, i) in live if x == ch)[:5]
        if oldest:
            code, h, _ = c.call(APP_MAILBOX, {"op": "ack", "channel": ch, "ids": oldest})
            check(code == 200 and h["acked"] == len(oldest), (code, h))
            with ledger.lock:
                ledger.acked.update((ch, i) for i in oldest)
        code, h, _ = c.call(APP_MAILBOX, {"op": "send", "channel": ch}, b"after restart")
        check(code == 201 and h["id"] > top.get(ch, 0),
              "%s: new id %r not past %d" % (ch, h, top.get(ch, 0)))
        with ledger.lock:
            ledger.sent[(ch, h["id"])] = b"after restart"
            ledger.max_id[ch] = h["id"]
    # Idempotency keys answered before the crash still name their message.
    for (ch, key), i in random.sample(sorted(keys.items()), min(20, len(keys))):
        code, h, _ = c.call(APP_MAILBOX, {"op": "send", "channel": ch, "key": key}, b"retry")
        check(code in (200, 409) and h.get("id", i) == i,
              "key %s/%s: %d %r (was id %d)" % (ch, key, code, h, i))
    c.close()
    return live


def test_acked_messages_survive_kill9_under_load():
    data = tempfile.mkdtemp(prefix="og-durable-")
    ledger = Ledger()
    srv = durable("mailbox", data)
    for cycle in range(3):
        load_then_kill(srv, ledger, random.uniform(0.4, 1.0))
        check(len(ledger.sent) > 50, "too little load to mean anything: %d" % len(ledger.sent))
        srv = restart(srv, "mailbox", data)
        verify(srv.port, ledger)
        m = metrics(srv)
        check(metric_value(m, "substrate_log_replayed_records_total") > 0, "replayed")
    check(ledger.acked, "acks were tested")
    srv.stop()


def test_http_201_through_omnigate_survives_kill9():
    # End to end: omnigate's 201 on POST /v1/mailbox/{channel} comes from the
    # durable mailbox's 201, so it too means the message is on disk; omnigate
    # finds the restarted service again. (Four HTTP clients rarely kill the
    # service inside a write's few microseconds: the OAP/1 tests above, with
    # thousands of sends a second, are the ones that catch an early answer.)
    from profiles import mint, start_profile
    data = tempfile.mkdtemp(prefix="og-http-")
    p = start_profile("macronode", sub_extra={"mailbox": ["--data-dir", data, "--no-amnesia"]})
    token = mint(scope="mailbox.read,mailbox.write")
    acked, lock, stop = {}, threading.Lock(), threading.Event()

    def client(n):
        i = 0
        while not stop.is_set():
            body = json.dumps({"client": n, "i": i}).encode()
            try:
                st, _, d = p.get("/v1/mailbox/durable-http", token=token, method="POST",
                                 body=body, headers={"Content-Type": "application/json"})
            except OSError:
                st = 0
            if st == 201:
                with lock:
                    acked[d["id"]] = json.loads(body)
            i += 1

    ts = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in ts:
        t.start()
    time.sleep(random.uniform(0.5, 1.0))
    kill9(p.subs["mailbox"])
    time.sleep(0.2)  # sends meet a mailbox that is down: none is answered 201
    stop.set()
    for t in ts:
        t.join(10)
    check(len(acked) > 20, "too little load: %d" % len(acked))
    p.subs["mailbox"] = restart(p.subs["mailbox"], "mailbox", data)
    got, deadline = {}, time.time() + 10
    while time.time() < deadline:
        st, _, d = p.get("/v1/mailbox/durable-http?max=100&lease=60s", token=token)
        if st != 200:
            time.sleep(0.05)  # omnigate reconnecting to the restarted service
            continue
        if not d["messages"]:
            break
        for m in d["messages"]:
            check(m["id"] not in got, "id %d twice" % m["id"])
            got[m["id"]] = m["body"]
    for i, body in sorted(acked.items()):
        check(got.get(i) == body, "message %d was answered 201 over HTTP and is gone" % i)


def test_compaction_under_load_then_kill9():
    data = tempfile.mkdtemp(prefix="og-compact-")
    ledger = Ledger()
    srv = durable("mailbox", data, "--compact-bytes", "16KiB")
    stop = threading.Event()
    ts = [threading.Thread(target=sender, args=(srv.port, ledger, stop, n)) for n in range(3)]
    ts.append(threading.Thread(target=acker, args=(srv.port, ledger, stop)))
    for t in ts:
        t.start()
    deadline = time.time() + 20
    while time.time() < deadline:
        if (metric_value(metrics(srv), "substrate_log_compactions_total") or 0) >= 3:
            break
        time.sleep(0.05)
    check(metric_value(metrics(srv), "substrate_log_compactions_total") >= 3, "no compaction")
    check(metric_value(metrics(srv), "substrate_log_compaction_failures_total") == 0)
    time.sleep(random.uniform(0, 0.2))
    kill9(srv)
    stop.set()
    for t in ts:
        t.join(10)
    files = sorted(os.listdir(data))
    check(len([f for f in files if f.startswith("snap.") and f != "snap.tmp"]) <= 2, files)
    srv = restart(srv, "mailbox", data, "--compact-bytes", "16KiB")
    verify(srv.port, ledger)
    m = metrics(srv)
    check(metric_value(m, "substrate_log_snapshot_bytes") > 0, "started from a snapshot")
    files = sorted(os.listdir(data))
    check(len([f for f in files if f.startswith("snap.")]) == 1 and "snap.tmp" not in files,
          "older files pruned at start: %r" % files)
    srv.stop()


def index_kill_cycles(prefix, cycles, *extra):
    """Writers put names (each name replaced as its version grows) while
    the index service is killed with -9 at a random point, cycles times,
    each time restarted on the same directory: every name whose put was
    answered holds that manifest, or the one whose put was in flight when
    the service died (it may have reached the disk unanswered)."""
    data = tempfile.mkdtemp(prefix=prefix)
    srv = durable("index", data, *extra)
    acked, inflight, lock = {}, {}, threading.Lock()
    for cycle in range(cycles):
        stop = threading.Event()

        def writer(n):
            c = OapClient.tcp(srv.port, timeout=5)
            c.hello()
            v = 0
            try:
                while not stop.is_set():
                    name = "w%d-name-%d" % (n, v % 40)  # names are replaced as v wraps
                    manifest = json.dumps({"writer": n, "cycle": cycle, "v": v}).encode()
                    with lock:
                        inflight[name] = manifest
                    code, _, _ = c.call(APP_INDEX, {"op": "put", "name": name}, manifest)
                    if code in (200, 201):
                        with lock:
                            acked[name] = manifest
                    v += 1
            except (OSError, ConnectionError, ValueError):
                pass
            finally:
                c.close()

        ts = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        for t in ts:
            t.start()
        time.sleep(random.uniform(0.8, 1.5))
        kill9(srv)
        stop.set()
        for t in ts:
            t.join(10)
        check(len(acked) > 20, "too little load: %d" % len(acked))
        srv = restart(srv, "index", data, *extra)
        c = OapClient.tcp(srv.port)
        c.hello()
        for name, manifest in sorted(acked.items()):
            code, _, got = c.call(APP_INDEX, {"op": "resolve", "name": name})
            check(code == 200, "cycle %d, %s: %d after restart" % (cycle, name, code))
            check(got in (manifest, inflight[name]),
                  "cycle %d, %s: %r, acked %r (in flight %r)"
                  % (cycle, name, got, manifest, inflight[name]))
            inflight[name] = acked[name] = got  # what the next cycle starts from
        c.close()
        check(metric_value(metrics(srv), "substrate_index_names") >= len(acked))
    srv.stop()


def test_index_names_survive_kill9_and_compaction():
    index_kill_cycles("og-index-", 2, "--compact-bytes", "8KiB")


def test_index_names_survive_repeated_kill9_from_the_log_alone():
    # No compaction: every restart replays the whole log, which grows by
    # a torn tail or none at each kill.
    index_kill_cycles("og-index-log-", 3)


def test_policies_without_fsync_survive_kill9():
    # The write happens before the answer, and the kernel keeps written
    # pages when the process dies: kill -9 loses nothing (a power loss
    # could, docs/OPERATIONS.md).
    for policy in ("batch", "none"):
        data = tempfile.mkdtemp(prefix="og-%s-" % policy)
        ledger = Ledger()
        srv = durable("mailbox", data, "--fsync", policy)
        load_then_kill(srv, ledger, 0.4, senders=2)
        srv = restart(srv, "mailbox", data, "--fsync", policy)
        verify(srv.port, ledger)
        fsyncs = metric_value(metrics(srv), "substrate_log_fsyncs_total")
        if policy == "none":
            check(fsyncs == 0, "no fsync with --fsync none: %r" % fsyncs)
        srv.stop()


def test_torn_last_record_is_cut_at_restart():
    data = tempfile.mkdtemp(prefix="og-torn-")
    srv = durable("mailbox", data)
    c = OapClient.tcp(srv.port)
    c.hello()
    ids = [c.call(APP_MAILBOX, {"op": "send", "channel": "news"}, b"m%d" % i)[1]["id"]
           for i in range(10)]
    c.close()
    kill9(srv)
    log = sorted(f for f in os.listdir(data) if f.startswith("log."))[-1]
    with open(os.path.join(data, log), "ab") as f:
        f.write(b"\x40\x00\x00\x00\x12\x34\x56\x78\x03half a rec")  # a write cut short
    srv = restart(srv, "mailbox", data)
    c = OapClient.tcp(srv.port)
    c.hello()
    code, _, body = c.call(APP_MAILBOX, {"op": "peek", "channel": "news", "max": 100})
    got = sorted(m["id"] for m in mailbox_messages(body))
    check(got == ids, got)
    code, h, _ = c.call(APP_MAILBOX, {"op": "send", "channel": "news"}, b"next")
    check(code == 201 and h["id"] == 11, h)
    c.close()
    check(metric_value(metrics(srv), "substrate_log_truncated_bytes") == 19, metrics(srv))
    check(any("torn record" in json.dumps(j) for j in srv.log_json()), srv.log_lines())
    srv.stop()


def test_flags_readyz_and_metrics():
    def refused(*args):
        port, admin = free_port(), free_port()
        p = subprocess.run([SUBSTRATE, "--listen", "127.0.0.1:%d" % port,
                            "--admin", "127.0.0.1:%d" % admin] + list(args),
                           capture_output=True, text=True, timeout=10)
        return p.returncode, p.stderr

    data = tempfile.mkdtemp(prefix="og-flags-")
    for args, words in [
        (["--role", "mailbox", "--data-dir", data], "needs --no-amnesia"),
        (["--role", "index", "--no-amnesia"], "needs --data-dir"),
        (["--role", "mailbox", "--data-dir", data, "--no-amnesia", "--fsync", "sometimes"],
         "always, batch or none"),
        (["--role", "mailbox", "--fsync", "none"], "--fsync and --compact-bytes"),
        (["--role", "storage", "--data-dir", data, "--no-amnesia", "--compact-bytes", "1M"],
         "--fsync and --compact-bytes"),
        (["--role", "index", "--data-dir", data, "--no-amnesia", "--compact-bytes", "0"],
         "bad --compact-bytes"),
    ]:
        rc, err = refused(*args)
        check(rc == 2 and words in err, (args, rc, err))

    ram = start_substrate("mailbox")
    st, _, body = http("GET", ram.admin_url + "/readyz")
    check(st == 200 and json.loads(body) == {"ready": True, "amnesia": True}, body)
    check(metric_value(metrics(ram), "substrate_amnesia") == 1)
    check(metric_value(metrics(ram), "substrate_log_bytes") is None, "no log, no log metrics")

    srv = durable("mailbox", data)
    st, _, body = http("GET", srv.admin_url + "/readyz")
    check(st == 200 and json.loads(body) == {"ready": True, "amnesia": False}, body)
    m = metrics(srv)
    check(metric_value(m, "substrate_amnesia") == 0)
    promtool_check(m, "durable substrate metrics")
    c = OapClient.tcp(srv.port)
    c.hello()
    check(c.call(APP_MAILBOX, {"op": "send", "channel": "c"}, b"x")[0] == 201)
    c.close()
    m = metrics(srv)
    check(metric_value(m, "substrate_log_fsyncs_total") >= 1, m)
    check(metric_value(m, "substrate_log_fsync_seconds_count") >= 1, m)
    check(metric_value(m, "substrate_log_records_total") == 1, m)
    check(metric_value(m, "substrate_log_waiting") == 0, m)

    # One process per directory; one role per directory.
    rc, err = refused("--role", "mailbox", "--data-dir", data, "--no-amnesia")
    check(rc == 1 and "another process" in err, (rc, err))
    srv.stop()
    port, admin = free_port(), free_port()
    p = subprocess.run([SUBSTRATE, "--role", "index", "--listen", "127.0.0.1:%d" % port,
                        "--data-dir", data, "--no-amnesia"],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 1 and "not this service's file" in p.stderr, (p.returncode, p.stderr))


if __name__ == "__main__":
    run_tests(globals())
