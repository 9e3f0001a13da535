"""The reference downstream services (build/omnigate-substrate) over real
TCP and Unix sockets: HELLO, every op of every role, multiplexing, the
inflight cap, credit-paced streams with a slow reader (bounded RSS), request
streams, every invalid frame class, fault injection, the admin endpoint."""
import json
import os
import random
import socket
import struct
import tempfile
import threading
import time

from harness import *
from oap_client import *

TMP = tempfile.mkdtemp(prefix="substrate-")


def unix_path(name):
    return os.path.join(TMP, "%s-%d.sock" % (name, random.randrange(1 << 30)))


def start(role, *extra, unix=None):
    args = list(extra)
    if unix:
        args += ["--listen", "unix:" + unix]
    srv = start_substrate(role, *args)
    if unix:
        deadline = time.time() + 5
        while not os.path.exists(unix) and time.time() < deadline:
            time.sleep(0.02)
    return srv


def clients(srv, unix):
    """One client per transport."""
    out = [("tcp", OapClient.tcp(srv.port))]
    if unix:
        out.append(("unix", OapClient.unix(unix)))
    return out


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def alive(srv):
    check(srv.proc.poll() is None, "service died: %s" % srv.proc.returncode)
    c = OapClient.tcp(srv.port)
    code, _ = c.hello()
    c.close()
    check(code == 200, "HELLO after error: %d" % code)


def metrics(srv):
    st, _, body = http("GET", srv.admin_url + "/metrics")
    check(st == 200, "metrics %d" % st)
    return body.decode()


# ------------------------------------------------------------------ HELLO


def test_hello_tcp_and_unix():
    path = unix_path("hello")
    srv = start("storage", unix=path)
    for name, c in clients(srv, path):
        code, lim = c.hello()
        check(code == 200, "%s hello %d" % (name, code))
        check(lim["max_frame"] == 1048576 and lim["max_inflight"] == 64, lim)
        check(1 in lim["versions"], lim)
        c.close()


def test_bad_hello_is_typed_error():
    srv = start("index")
    c = OapClient.tcp(srv.port)
    c.send(encode(REQ, APP_HELLO, 5, b"{\"max_frame\":1}"))
    frames = c.read_until_close()
    check(len(frames) == 1, frames)
    check(frames[0].flags == RESP | END and frames[0].code == 400 and frames[0].corr == 5)
    check(frames[0].data()[0]["error"] == "bad_hello", frames[0].data())
    alive(srv)


# ------------------------------------------------------------------- roles


def test_many_answers_batched_overflowing_and_queued():
    # 600 gets sent at once are answered in a few loop turns: 16 KiB bodies
    # are copied into the connection's batch (which passes its 256 KiB bound
    # and is flushed early), 20 KiB bodies are written on their own after the
    # batch. The client reads nothing until every request is sent, through a
    # small receive buffer, and ~11 MiB of answers do not fit the socket's
    # buffers, so the service's writes come up short and go through libuv's
    # queue. Every answer must arrive whole and match.
    srv = start("storage")
    c = OapClient.tcp(srv.port)
    c.hello()
    small, large = os.urandom(16 * 1024), os.urandom(20 * 1024)
    addrs = {}
    for body in (small, large):
        code, h, _ = c.call(APP_STORAGE, {"op": "put"}, body)
        check(code == 201, (code, h))
        addrs[h["obj"]] = body
    c.close()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.connect(("127.0.0.1", srv.port))
    c = OapClient(s)
    c.hello()
    order = [list(addrs)[i % 2] for i in range(600)]
    wire, corrs = b"", []
    for a in order:
        corr = c.corr()
        corrs.append(corr)
        wire += encode(REQ, APP_STORAGE, corr, data_payload({"op": "get", "obj": a}))
    c.send(wire)
    time.sleep(0.3)  # the service has answered into a full socket by now
    for corr, a in zip(corrs, order):
        code, h, got = c.response(corr)
        check(code == 200 and got == addrs[a], (corr, code, h, len(got)))
    c.close()
    alive(srv)


def test_half_closed_client_gets_every_answer():
    # Over 64 KiB of requests (more than one read buffer) then the client's
    # FIN: the service reads them and the EOF in one loop turn, and the
    # answers batched in that turn are still written before it closes.
    srv = start("index")
    c = OapClient.tcp(srv.port)
    c.hello()
    code, h, _ = c.call(APP_INDEX, {"op": "put", "name": "half-close"}, b'{"v":1}')
    check(code in (200, 201), (code, h))
    corrs, wire = [], b""
    def one(corr, pad=0):
        hdr = b'{"op":"resolve","name":"half-close"}' + b" " * pad
        return encode(REQ, APP_INDEX, corr, data_payload(hdr))

    size = len(one(1))
    while len(wire) + 2 * size <= 64 * 1024:
        corr = c.corr()
        corrs.append(corr)
        wire += one(corr)
    corr = c.corr()  # the last frame is padded so the requests fill one read buffer exactly
    corrs.append(corr)
    wire += one(corr, 64 * 1024 - len(wire) - size)
    check(len(wire) == 64 * 1024, len(wire))
    c.send(wire)
    c.s.shutdown(socket.SHUT_WR)
    for corr in corrs:
        code, h, body = c.response(corr)
        check(code == 200 and body == b'{"v":1}', (corr, code, h, body))
    c.close()
    alive(srv)


def test_storage_ops_tcp_and_unix():
    path = unix_path("storage")
    srv = start("storage", unix=path)
    for name, c in clients(srv, path):
        c.hello()
        body = ("%s object " % name).encode() * 100
        code, h, _ = c.call(APP_STORAGE, {"op": "put"}, body)
        check(code == 201, (name, code, h))
        addr, size = h["obj"], h["size"]
        check(addr.startswith("b3:") and size == len(body), h)
        code, h, _ = c.call(APP_STORAGE, {"op": "put", "expect": addr}, body)
        check(code == 200, (code, h))
        code, h, _ = c.call(APP_STORAGE, {"op": "has", "obj": addr})
        check(code == 200 and h["size"] == len(body), h)
        code, h, got = c.call(APP_STORAGE, {"op": "get", "obj": addr})
        check(code == 200 and got == body, (code, h))
        check(h == {"obj": addr, "size": len(body), "off": 0, "len": len(body)}, h)
        code, h, got = c.call(APP_STORAGE, {"op": "get", "obj": addr, "off": 10, "len": 20})
        check(code == 206 and got == body[10:30] and h["off"] == 10 and h["len"] == 20, h)
        code, h, _ = c.call(APP_STORAGE, {"op": "get", "obj": addr, "off": len(body) + 1})
        check(code == 416 and h["error"] == "range_not_satisfiable", (code, h))
        missing = "b3:" + "0" * 64
        code, h, _ = c.call(APP_STORAGE, {"op": "has", "obj": missing})
        check(code == 404 and h["error"] == "not_found", h)
        code, h, _ = c.call(APP_STORAGE, {"op": "put", "expect": missing}, b"zz")
        check(code == 400 and h["error"] == "mismatch", h)
        code, h, _ = c.call(APP_STORAGE, {"op": "has", "obj": addr, "deadline_ms": 0})
        check(code == 504, (code, h))
        # Application errors keep the connection open.
        corr = c.request(APP_STORAGE, b"{not json")
        code, h, _ = c.response(corr)
        check(code == 400 and h["error"] == "bad_request", h)
        code, h, _ = c.call(APP_INDEX, {"op": "resolve", "name": "x"})
        check(code == 400 and "wrong app" in h["reason"], h)
        code, h, _ = c.call(APP_STORAGE, {"op": "has", "obj": addr})
        check(code == 200, "connection still usable")
        c.close()
    m = metrics(srv)
    check(metric_value(m, "substrate_requests_total", {"op": "get", "code": "206"}) == 2, m)
    check(metric_value(m, "substrate_storage_objects") == 2, m)


def test_index_ops_tcp_and_unix():
    path = unix_path("index")
    srv = start("index", unix=path)
    for name, c in clients(srv, path):
        m1 = json.dumps({"parts": {"hero": name}}).encode()
        code, h, _ = c.call(APP_INDEX, {"op": "put", "name": "%s/home" % name}, m1)
        check(code == 201 and h["created"] is True, h)
        code, h, _ = c.call(APP_INDEX, {"op": "put", "name": "%s/home" % name}, m1)
        check(code == 200 and h["created"] is False, h)
        c.call(APP_INDEX, {"op": "put", "name": "%s/about" % name}, b"{}")
        code, h, body = c.call(APP_INDEX, {"op": "resolve", "name": "%s/home" % name})
        check(code == 200 and body == m1, (code, body))
        code, h, body = c.call(APP_INDEX, {"op": "search", "prefix": name + "/", "limit": 10})
        check(code == 200, code)
        check(json.loads(body) == {"names": ["%s/about" % name, "%s/home" % name],
                                   "more": False}, body)
        code, h, _ = c.call(APP_INDEX, {"op": "resolve", "name": "nope"})
        check(code == 404, code)
        code, h, _ = c.call(APP_INDEX, {"op": "put", "name": "bad"}, b"[1]")
        check(code == 400, code)
        code, h, _ = c.call(APP_INDEX, {"op": "search", "prefix": "a"})
        check(code == 400, "limit is required")
        c.close()
    check(metric_value(metrics(srv), "substrate_index_names") == 4)


def test_mailbox_ops_tcp_and_unix():
    path = unix_path("mailbox")
    srv = start("mailbox", unix=path)
    for name, c in clients(srv, path):
        ch = "chan-" + name
        code, h, _ = c.call(APP_MAILBOX, {"op": "send", "channel": ch}, b"\x00one")
        check(code == 201 and h == {"id": 1, "duplicate": False}, h)
        code, h, _ = c.call(APP_MAILBOX, {"op": "send", "channel": ch, "key": "k"}, b"two")
        check(code == 201 and h["id"] == 2, h)
        code, h, _ = c.call(APP_MAILBOX, {"op": "send", "channel": ch, "key": "k"}, b"two")
        check(code == 200 and h == {"id": 2, "duplicate": True}, h)
        code, h, body = c.call(APP_MAILBOX, {"op": "peek", "channel": ch, "max": 10})
        msgs = mailbox_messages(body)
        check(code == 200 and [m["id"] for m in msgs] == [2, 1], msgs)
        code, h, body = c.call(APP_MAILBOX, {"op": "recv", "channel": ch, "max": 10,
                                             "lease_ms": 60000})
        msgs = mailbox_messages(body)
        check(code == 200 and h["count"] == 2, h)
        check([m["body"] for m in msgs] == [b"\x00one", b"two"], msgs)
        check(all(m["deliveries"] == 1 for m in msgs), msgs)
        code, h, body = c.call(APP_MAILBOX, {"op": "recv", "channel": ch, "max": 10})
        check(mailbox_messages(body) == [], "leased messages are invisible")
        code, h, _ = c.call(APP_MAILBOX, {"op": "ack", "channel": ch, "ids": [1, 2]})
        check(code == 200 and h["acked"] == 2, h)
        code, h, _ = c.call(APP_MAILBOX, {"op": "ack", "channel": "none", "ids": [1]})
        check(code == 404, code)
        code, h, _ = c.call(APP_MAILBOX, {"op": "recv", "channel": ch, "max": "1"})
        check(code == 400, code)
        c.close()


# ---------------------------------------------------------- multiplexing


def test_multiplex_100_on_one_connection():
    srv = start("storage")
    c = OapClient.tcp(srv.port)
    c.hello()
    objs = []
    for i in range(10):
        body = os.urandom(4096 + i)
        code, h, _ = c.call(APP_STORAGE, {"op": "put"}, body)
        objs.append((h["obj"], body))
    want = {}
    out = b""
    for i in range(100):
        corr = 1000 + i
        addr, body = objs[i % 10]
        want[corr] = body
        out += encode(REQ, APP_STORAGE, corr, data_payload({"op": "get", "obj": addr}))
    c.send(out)  # 100 requests in flight before reading anything
    got = {}
    for _ in range(100):
        f = c.read_frame()
        check(f is not None and f.flags == RESP and f.code == 200, f)
        got[f.corr] = f.data()[1]
    check(got == want, "responses matched by corr_id")


def test_inflight_cap_answers_429():
    srv = start("index", "--latency-ms", "400")
    c = OapClient.tcp(srv.port)
    out = b"".join(encode(REQ, APP_INDEX, i, data_payload({"op": "resolve", "name": "n"}))
                   for i in range(1, 71))
    c.send(out)
    codes = {}
    for _ in range(70):
        f = c.read_frame()
        codes[f.corr] = f.code
    busy = [k for k, v in codes.items() if v == 429]
    check(len(busy) == 6 and sorted(busy) == list(range(65, 71)), codes)
    check(sum(1 for v in codes.values() if v == 404) == 64, codes)


def test_answers_in_any_order():
    """A slow (stalled by latency) request does not hold back a later one."""
    srv = start("mailbox", "--latency-ms", "300", "--jitter-ms", "0")
    c = OapClient.tcp(srv.port)
    c.request(APP_MAILBOX, {"op": "peek", "channel": "a", "max": 1}, corr=1)
    http("POST", srv.admin_url + "/faults?latency_ms=0")
    c.request(APP_MAILBOX, {"op": "peek", "channel": "a", "max": 1}, corr=2)
    first = c.read_frame()
    second = c.read_frame()
    check((first.corr, second.corr) == (2, 1), (first, second))


# --------------------------------------------------------------- streams


def test_stream_8mib_slow_reader_bounded_rss():
    srv = start("storage", "--mem-cap", "128M")
    c = OapClient.tcp(srv.port)
    c.hello()
    blob = os.urandom(8 << 20)
    code, h, _ = c.put_stream(APP_STORAGE, {"op": "put"}, blob)
    check(code == 201 and h["size"] == len(blob), (code, h))
    addr = h["obj"]
    base = rss_kib(srv.proc.pid)

    # Without credit the service stops after the initial 4 frames.
    corr = c.request(APP_STORAGE, {"op": "get", "obj": addr})
    c.s.settimeout(0.5)
    early = []
    try:
        while True:
            f = c.read_frame()
            early.append(f)
    except socket.timeout:
        pass
    c.s.settimeout(10)
    check(len(early) == INITIAL_CREDIT, "frames without credit: %d" % len(early))
    check(early[0].flags == RESP | START, early[0])
    hdr, first = early[0].data()
    check(hdr["size"] == len(blob), hdr)
    parts = [first] + [f.payload for f in early[1:]]
    peak = base
    done = False
    while not done:
        c.send(credit_frame(APP_STORAGE, corr, 2))
        time.sleep(0.01)
        for _ in range(2):
            f = c.read_frame()
            check(f.corr == corr and f.flags & RESP and f.code == 200, f)
            parts.append(f.payload)
            if f.flags & END:
                done = True
                break
        peak = max(peak, rss_kib(srv.proc.pid))
    got = b"".join(parts)
    check(got == blob, "8 MiB intact")
    check(all(len(p) <= 65536 for p in parts), "chunks ≤ 64 KiB")
    grew = (peak - base) / 1024.0
    check(grew < 32, "RSS grew %.1f MiB while streaming" % grew)
    m = metrics(srv)
    check(metric_value(m, "substrate_streams_total") >= 1, m)
    check(metric_value(m, "substrate_inflight") == 0, m)


def test_range_get_streams_and_small_ones_do_not():
    srv = start("storage")
    c = OapClient.tcp(srv.port)
    blob = os.urandom(300000)
    code, h, _ = c.put_stream(APP_STORAGE, {"op": "put"}, blob)
    addr = h["obj"]
    frames = []
    code, h, got = c.response(c.request(APP_STORAGE, {"op": "get", "obj": addr, "off": 1000,
                                                      "len": 200000}),
                              on_frame=frames.append)
    check(code == 206 and got == blob[1000:201000] and len(frames) >= 3, (code, len(frames)))
    corr = c.request(APP_STORAGE, {"op": "get", "obj": addr, "off": 5, "len": 65000})
    f = c.read_frame()
    check(f.corr == corr and f.flags == RESP and f.data()[1] == blob[5:65005], f)


# --------------------------------------------------------- invalid frames


def expect_typed_error(srv, data, error, offset=None, corr=0, half_close=False, before=0):
    """data → `before` ordinary answers, then one error frame, then close."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    c = OapClient(s, 5)
    c.send(data)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    frames = c.read_until_close()
    check(len(frames) == before + 1, "error frame then close, got %r" % frames)
    f = frames[-1]
    check(f.flags == RESP | END and f.code == 400 and f.corr == corr, f)
    hdr, body = f.data()
    check(hdr["error"] == error, (hdr, error))
    if offset is not None:
        check(hdr["offset"] == offset, (hdr, offset))
    c.close()
    alive(srv)


def test_invalid_frames_typed_error_and_close():
    srv = start("storage")
    good = encode(REQ, APP_STORAGE, 3, data_payload({"op": "has", "obj": "b3:" + "0" * 64}))
    # Truncated, then the client closes its side.
    expect_typed_error(srv, good[:-5], "truncated", len(good) - 5, half_close=True)
    # After one good frame the offsets are stream offsets.
    expect_typed_error(srv, good + good[:20], "truncated", len(good) + 20, half_close=True,
                       before=1)
    expect_typed_error(srv, encode(REQ, 1, 1, b"", length=1048577), "too_large", 0)
    expect_typed_error(srv, encode(REQ, 1, 1, b"", length=37), "bad_len", 0)
    expect_typed_error(srv, encode(REQ, 1, 1, data_payload({"op": "x"}), ver=2),
                       "bad_version", 4)
    expect_typed_error(srv, encode(REQ | 0x100, 1, 1, b""), "bad_flags", 6)
    expect_typed_error(srv, encode(REQ, 1, 1, data_payload({"op": "x"}), cap=b"capx"),
                       "cap_not_start", 28)
    bad_cap = struct.pack(">IHHHH16sHQ", 39, 1, REQ | START, 0, 1, ZERO_TENANT, 100, 1) + b"x"
    expect_typed_error(srv, bad_cap, "cap_len", 28)
    # Garbage DATA header: header_len runs past the payload.
    expect_typed_error(srv, encode(REQ, APP_STORAGE, 9, struct.pack(">H", 200) + b"{}"),
                       "bad_data_hdr", corr=9)
    expect_typed_error(srv, encode(REQ, APP_STORAGE, 9, b"\x00"), "bad_data_hdr", corr=9)
    # Malformed credit grant, and a RESP frame from a client.
    expect_typed_error(srv, encode(CREDIT_FLAGS, APP_STORAGE, 4, b"\0\0\0\0"), "bad_credit",
                       corr=4)
    expect_typed_error(srv, encode(RESP, APP_STORAGE, 6, data_payload({"op": "x"})), "state",
                       corr=6)
    # A second START inside an open request stream.
    first = encode(REQ | START, APP_STORAGE, 8, data_payload({"op": "put"}, b"abc"))
    expect_typed_error(srv, first + first, "state", corr=8, before=1)  # a grant first
    m = metrics(srv)
    check(metric_value(m, "substrate_frame_errors_total") == 13, m)


def test_random_garbage_never_crashes():
    srv = start("mailbox")
    rnd = random.Random(7)
    for i in range(150):
        n = rnd.choice([1, 10, 37, 38, 39, 60, 200, 5000])
        data = bytes(rnd.randrange(256) for _ in range(n))
        if i % 3 == 0:  # plausible header, random rest
            data = encode(rnd.choice([REQ, REQ | START, REQ | END, CREDIT_FLAGS]),
                          rnd.randrange(5), i, data)
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # end of input: the service must answer or close
            while s.recv(65536):
                pass
            s.close()
        except OSError:
            pass
    alive(srv)


# ---------------------------------------------------------------- faults


def test_fault_latency_measurable_and_runtime_change():
    srv = start("index", "--latency-ms", "200")
    c = OapClient.tcp(srv.port)
    t0 = time.time()
    code, _, _ = c.call(APP_INDEX, {"op": "resolve", "name": "a"})
    slow = time.time() - t0
    check(code == 404 and slow >= 0.19, slow)
    st, _, body = http("POST", srv.admin_url + "/faults?latency_ms=0&jitter_ms=0")
    check(st == 200 and json.loads(body)["latency_ms"] == 0, body)
    t0 = time.time()
    c.call(APP_INDEX, {"op": "resolve", "name": "a"})
    check(time.time() - t0 < 0.1, "latency removed at run time")
    st, _, body = http("POST", srv.admin_url + "/faults?latency_ms=50&jitter_ms=100")
    lat = []
    for _ in range(10):
        t0 = time.time()
        c.call(APP_INDEX, {"op": "resolve", "name": "a"})
        lat.append(time.time() - t0)
    check(min(lat) >= 0.049 and max(lat) < 0.3, lat)
    m = metrics(srv)
    check(metric_value(m, "substrate_faults_injected_total", {"kind": "latency"}) == 11, m)


def test_fault_error_rate():
    srv = start("storage", "--error-rate", "1.0")
    c = OapClient.tcp(srv.port)
    for _ in range(5):
        code, h, _ = c.call(APP_STORAGE, {"op": "put"}, b"x")
        check(code == 503 and h["error"] == "injected", (code, h))
    http("POST", srv.admin_url + "/faults?error_rate=0")
    code, h, _ = c.call(APP_STORAGE, {"op": "put"}, b"x")
    check(code == 201, "nothing was stored by the injected errors")
    http("POST", srv.admin_url + "/faults?error_rate=0.5")
    codes = [c.call(APP_STORAGE, {"op": "put"}, b"y")[0] for _ in range(200)]
    n503 = codes.count(503)
    check(60 < n503 < 140, n503)
    m = metrics(srv)
    check(metric_value(m, "substrate_faults_injected_total", {"kind": "error"}) == 5 + n503)


def test_fault_corrupt_copies_bytes():
    srv = start("storage")
    c = OapClient.tcp(srv.port)
    blob = os.urandom(200000)
    _, h, _ = c.put_stream(APP_STORAGE, {"op": "put"}, blob)
    small = b"small object bytes"
    _, hs, _ = c.call(APP_STORAGE, {"op": "put"}, small)
    http("POST", srv.admin_url + "/faults?corrupt_rate=1")
    code, _, got = c.call(APP_STORAGE, {"op": "get", "obj": h["obj"]})
    check(code == 200 and len(got) == len(blob) and got != blob, "served bytes differ")
    diff = sum(1 for a, b in zip(got, blob) if a != b)
    check(diff == 1, diff)
    code, _, got = c.call(APP_STORAGE, {"op": "get", "obj": hs["obj"]})
    check(got != small and len(got) == len(small))
    http("POST", srv.admin_url + "/faults?corrupt_rate=0")
    # The engine's copy was never touched.
    code, _, got = c.call(APP_STORAGE, {"op": "get", "obj": h["obj"]})
    check(got == blob, "stored blob intact")
    m = metrics(srv)
    check(metric_value(m, "substrate_faults_injected_total", {"kind": "corrupt"}) == 2, m)


def test_fault_stall_and_drop():
    srv = start("mailbox", "--stall-rate", "1")
    c = OapClient.tcp(srv.port, timeout=0.5)
    c.request(APP_MAILBOX, {"op": "peek", "channel": "a", "max": 1})
    try:
        f = c.read_frame()
        raise AssertionError("stalled request answered: %r" % f)
    except socket.timeout:
        pass
    check(metric_value(metrics(srv), "substrate_inflight") == 1)
    c.close()
    time.sleep(0.1)
    check(metric_value(metrics(srv), "substrate_inflight") == 0, "freed on close")
    http("POST", srv.admin_url + "/faults?stall_rate=0&drop_rate=1")
    c = OapClient.tcp(srv.port)
    code, _ = c.hello()  # HELLO is never faulted
    c.request(APP_MAILBOX, {"op": "peek", "channel": "a", "max": 1})
    check(c.read_until_close() == [], "connection dropped")
    m = metrics(srv)
    check(metric_value(m, "substrate_faults_injected_total", {"kind": "drop"}) == 1, m)
    check(metric_value(m, "substrate_faults_injected_total", {"kind": "stall"}) == 1, m)


# ----------------------------------------------------------------- admin


def test_admin_endpoints():
    srv = start("index", "--error-rate", "0.25", "--jitter-ms", "5")
    st, _, body = http("GET", srv.admin_url + "/healthz")
    check(st == 200 and json.loads(body) == {"status": "ok"}, body)
    st, _, body = http("GET", srv.admin_url + "/readyz")
    check(st == 200 and json.loads(body)["ready"] is True, body)
    st, _, body = http("GET", srv.admin_url + "/faults")
    f = json.loads(body)
    check(st == 200 and f["error_rate"] == 0.25 and f["jitter_ms"] == 5, f)
    for k in ("latency_ms", "stall_rate", "drop_rate", "corrupt_rate", "injected"):
        check(k in f, k)
    st, _, body = http("POST", srv.admin_url + "/faults?error_rate=2")
    check(st == 400, body)
    st, _, body = http("POST", srv.admin_url + "/faults?nope=1")
    check(st == 400, body)
    st, _, body = http("POST", srv.admin_url + "/faults?error_rate=0&stall_rate=0.5")
    f = json.loads(body)
    check(st == 200 and f["error_rate"] == 0 and f["stall_rate"] == 0.5, f)
    st, _, _ = http("GET", srv.admin_url + "/nothing")
    check(st == 404)
    st, _, _ = http("DELETE", srv.admin_url + "/faults")
    check(st == 405)
    m = metrics(srv)
    for name in ("substrate_inflight", "substrate_connections", "substrate_index_names",
                 "substrate_faults_injected_total"):
        check(metric_value(m, name) is not None, name)
    check("# TYPE substrate_requests_total counter" in m, m)


def test_admin_reads_with_the_http_reader():
    """The admin port reads requests with src/http/h1.c: its limits and
    strictness answer, in the project's error vocabulary, and every role's
    /metrics passes promtool."""
    for role in ("index", "storage", "mailbox"):
        srv = start(role)
        c = OapClient.tcp(srv.port)
        c.hello()
        c.close()
        m = metrics(srv)
        promtool_check(m, "substrate " + role)
        check(metric_value(m, "substrate_requests_total", {"role": role, "op": "hello"}) == 1, m)
    big = b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    out = raw(srv.admin, big)
    check(status_of(out) == 431 and b'{"error":"header_too_large"}' in out, out[:200])
    out = raw(srv.admin, b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")
    check(status_of(out) == 400 and b'{"error":"bad_request"}' in out, out[:200])
    out = raw(srv.admin, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    check(status_of(out) == 200 and b"Connection: close\r\n" in out and out.endswith(b'"ok"}'),
          out)
    out = raw(srv.admin, b"POST /faults?latency_ms=%3" + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    check(status_of(out) == 400 and b"bad fault setting latency_ms" in out, out)
    out = raw(srv.admin, b"POST /faults?latency%5fms=7&&jitter_ms=1 HTTP/1.1\r\nHost: a\r\n"
              b"Content-Length: 3\r\n\r\nabc")
    f = json.loads(out.split(b"\r\n\r\n", 1)[1])
    check(status_of(out) == 200 and f["latency_ms"] == 7 and f["jitter_ms"] == 1, out)
    out = raw(srv.admin, b"POST /faults?latency_ms HTTP/1.1\r\nHost: a\r\n\r\n")
    check(status_of(out) == 400 and b"expected key=value" in out, out)


def test_sigterm_exits_cleanly():
    path = unix_path("term")
    srv = start("storage", unix=path)
    c = OapClient.tcp(srv.port)
    c.hello()
    check(srv.stop() == 0, "exit status")
    check(not os.path.exists(path), "unix socket removed")


if __name__ == "__main__":
    run_tests(globals())
