"""Objects and media over HTTP: PUT /v1/o, GET/HEAD /v1/o/{addr} and
/v1/media/{name} with single ranges, ETags and conditionals (DESIGN §4), real
clients (curl, requests, wrk), bounded memory for a slow reader, the write
timeout for a reader that stops, and integrity aborts against a corrupting
storage service.
"""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time

import requests

from harness import *

TMP = tempfile.mkdtemp(prefix="media-")
KEYS = os.path.join(TMP, "root.keys")
fd = os.open(KEYS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, ("k1 = %s\n" % os.urandom(32).hex()).encode())
os.close(fd)

TOKEN = subprocess.run([OMNIGATE, "mint", "--root-keys", KEYS, "--key-id", "k1", "--tenant",
                        "demo", "--scope", "media.read,object.read,object.write", "--ttl", "1h"],
                       check=True, capture_output=True, text=True).stdout.strip()
AUTH = {"Authorization": "Bearer " + TOKEN}
CACHE_CONTROL = "public, max-age=31536000, immutable"
CLIPS = {"clip-1": 512 << 10, "clip-2": 1 << 20, "clip-3": 2 << 20, "clip-4": 4 << 20}


def b3(data):
    """The address of data, computed by b3sum (an implementation not ours)."""
    out = subprocess.run(["b3sum", "--no-names"], input=data, check=True,
                         capture_output=True).stdout
    return "b3:" + out.decode().strip()


def b3_file(path):
    out = subprocess.run(["b3sum", "--no-names", path], check=True, capture_output=True).stdout
    return "b3:" + out.decode().strip()


def start(*extra, **kw):
    return start_omnigate("--demo", "--root-keys", KEYS, "--log-level", "info", *extra, **kw)


def call(srv, method, path, headers=None, body=None, timeout=30):
    h = dict(AUTH)
    h.update(headers or {})
    return http(method, srv.url + path, body=body, headers=h, timeout=timeout)


def put(srv, data, headers=None):
    return call(srv, "PUT", "/v1/o", headers=headers, body=data)


def stored(srv, addr):
    st, _, _ = call(srv, "HEAD", "/v1/o/" + addr)
    return st


def error_code(body):
    return json.loads(body)["error"]


def raw_response(port, request, timeout=10.0):
    """One request on a fresh socket with Connection: close: (status, headers, body bytes)
    where body is everything after the head, exactly as sent."""
    data = raw(port, request, timeout=timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs, body


def raw_req(method, path, extra=b""):
    return (b"%s %s HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n%sConnection: close\r\n\r\n"
            % (method.encode(), path.encode(), TOKEN.encode(), extra))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def healthy(srv):
    st, _, body = http("GET", srv.url + "/healthz", timeout=5)
    return st == 200 and json.loads(body)["status"] == "ok"


def metric(srv, name, labels=None):
    _, _, body = http("GET", srv.admin_url + "/metrics")
    return metric_value(body.decode(), name, labels)


# ---- PUT --------------------------------------------------------------------

def test_put_get_round_trip():
    srv = start()
    data = os.urandom(300 * 1024 + 7)
    addr = b3(data)
    st, h, body = put(srv, data)
    check(st == 201, (st, body))
    check(json.loads(body)["obj"] == addr, (body, addr))
    check(h["location"] == "/v1/o/" + addr, h)
    check(h["content-type"] == "application/json", h)
    st, h, got = call(srv, "GET", h["location"])
    check(st == 200 and got == data, (st, len(got)))
    check(h["content-length"] == str(len(data)), h)
    check(h["content-type"] == "application/octet-stream", h)
    # Storing the same bytes again: the same address, nothing new created.
    st, h, body = put(srv, data)
    check(st in (200, 201) and json.loads(body)["obj"] == addr, (st, body))
    # A chunked upload stores the same object.
    req = raw_req("PUT", "/v1/o", b"Transfer-Encoding: chunked\r\n")
    st, _, body = raw_response(srv.port, req + b"%x\r\n%s\r\n0\r\n\r\n" % (1000, data[:1000]))
    check(st in (200, 201) and json.loads(body)["obj"] == b3(data[:1000]), (st, body))


def test_put_over_body_cap_stores_nothing():
    srv = start("--body-max", "64KiB")
    data = os.urandom(64 * 1024 + 1)
    addr = b3(data)
    st, _, body = put(srv, data)
    check(st == 413 and error_code(body) == "body_cap", (st, body))
    check(stored(srv, addr) == 404)
    # Chunked, over the cap mid-stream: the same answer, nothing stored.
    req = raw_req("PUT", "/v1/o", b"Transfer-Encoding: chunked\r\n")
    req += b"".join(b"%x\r\n%s\r\n" % (16384, data[i:i + 16384]) for i in range(0, 65536, 16384))
    req += b"1\r\n%s\r\n0\r\n\r\n" % data[65536:]
    st, _, body = raw_response(srv.port, req)
    check(st == 413, (st, body))
    check(stored(srv, addr) == 404)
    # Exactly at the cap is accepted.
    st, _, body = put(srv, data[:65536])
    check(st == 201 and json.loads(body)["obj"] == b3(data[:65536]), (st, body))


def test_put_expect_obj():
    srv = start()
    data = os.urandom(5000)
    other = b3(b"something else")
    st, _, body = put(srv, data, {"X-Expect-Obj": other})
    check(st == 400 and error_code(body) == "bad_request", (st, body))
    check(stored(srv, b3(data)) == 404)
    check(stored(srv, other) == 404)
    for bad in ["b3:xyz", "b3:" + "A" * 64, "sha256:" + "0" * 64, b3(data)[:-1], b3(data) + "0",
                ""]:
        st, _, body = put(srv, data, {"X-Expect-Obj": bad})
        check(st == 400 and error_code(body) == "bad_request", (bad, st, body))
    check(stored(srv, b3(data)) == 404)
    st, _, body = put(srv, data, {"X-Expect-Obj": b3(data)})
    check(st == 201 and json.loads(body)["obj"] == b3(data), (st, body))
    check(stored(srv, b3(data)) == 200)


# ---- GET / HEAD with ranges ---------------------------------------------------

SIZE = 100000


def known_object(srv):
    data = bytes(random.Random(7).getrandbits(8) for _ in range(SIZE))
    st, _, body = put(srv, data)
    check(st in (200, 201), (st, body))
    return data, json.loads(body)["obj"]


RANGES = [  # header, first, last (inclusive)
    ("bytes=0-0", 0, 0),
    ("bytes=0-99", 0, 99),
    ("bytes=1000-1999", 1000, 1999),
    ("bytes=99999-99999", 99999, 99999),  # the last byte
    ("bytes=99999-", 99999, 99999),
    ("bytes=-1", 99999, 99999),
    ("bytes=-100", 99900, 99999),
    ("bytes=50000-", 50000, 99999),
    ("bytes=0-", 0, 99999),
    ("bytes=99990-200000", 99990, 99999),  # last-pos past the end: clamped
    ("bytes=-200000", 0, 99999),  # suffix longer than the object
    ("bytes=0-99999999999999999999999", 0, 99999),  # beyond 64 bits: to the end
    ("Bytes=10-19", 10, 19),
]


def test_single_ranges_get_and_head():
    srv = start()
    data, addr = known_object(srv)
    for rng, a, b in RANGES:
        st, h, body = call(srv, "GET", "/v1/o/" + addr, {"Range": rng})
        check(st == 206, (rng, st))
        check(h["content-range"] == "bytes %d-%d/%d" % (a, b, SIZE), (rng, h))
        check(h["content-length"] == str(b - a + 1), (rng, h))
        check(body == data[a:b + 1], (rng, len(body)))
        check(h["etag"] == '"%s"' % addr and h["accept-ranges"] == "bytes", h)
        check(h["cache-control"] == CACHE_CONTROL, h)
        st, h, body = raw_response(srv.port, raw_req("HEAD", "/v1/o/" + addr,
                                                     b"Range: %s\r\n" % rng.encode()))
        check(st == 206 and body == b"", (rng, st, body[:40]))
        check(h["content-range"] == "bytes %d-%d/%d" % (a, b, SIZE), (rng, h))
        check(h["content-length"] == str(b - a + 1), (rng, h))


def test_whole_object_headers_and_head_has_no_body():
    srv = start()
    data, addr = known_object(srv)
    st, h, body = call(srv, "GET", "/v1/o/" + addr)
    check(st == 200 and body == data)
    check(h["etag"] == '"%s"' % addr, h)
    check(h["accept-ranges"] == "bytes", h)
    check(h["cache-control"] == CACHE_CONTROL, h)
    check("content-range" not in h, h)
    st, h, body = raw_response(srv.port, raw_req("HEAD", "/v1/o/" + addr))
    check(st == 200 and body == b"", (st, body[:40]))
    check(h["content-length"] == str(SIZE) and h["etag"] == '"%s"' % addr, h)
    check(h["accept-ranges"] == "bytes" and h["cache-control"] == CACHE_CONTROL, h)
    # Keep-alive after a HEAD: the next response starts right after the head.
    two = raw(srv.port, raw_req("HEAD", "/v1/o/" + addr).replace(b"Connection: close\r\n", b"")
              + raw_req("GET", "/v1/o/" + addr, b"Range: bytes=0-3\r\n"))
    check(two.count(b"HTTP/1.1 ") == 2 and two.endswith(data[:4]), two[-200:])


def test_unsatisfiable_and_ignored_ranges():
    srv = start()
    data, addr = known_object(srv)
    for rng in ["bytes=100000-", "bytes=100000-100005", "bytes=200000-300000", "bytes=-0",
                "bytes=99999999999999999999999-"]:
        st, h, body = call(srv, "GET", "/v1/o/" + addr, {"Range": rng})
        check(st == 416, (rng, st))
        check(h["content-range"] == "bytes */%d" % SIZE, (rng, h))
        check(error_code(body) == "range_not_satisfiable", body)
        st, h, _ = call(srv, "HEAD", "/v1/o/" + addr, {"Range": rng})
        check(st == 416 and h["content-range"] == "bytes */%d" % SIZE, (rng, st, h))
    # Ignored: bad syntax, b < a, other units, multiple ranges → the whole object.
    for rng in ["bytes=5-4", "items=0-9", "bytes=abc", "bytes=0-1,5-9", "bytes=0-0,-1",
                "bytes=0-1, 200000-", ",".join(["bytes=0-0"] + ["0-0"] * 500)]:
        st, h, body = call(srv, "GET", "/v1/o/" + addr, {"Range": rng})
        check(st == 200 and body == data, (rng, st, len(body)))
        check("content-range" not in h, (rng, h))


def test_conditionals():
    srv = start()
    data, addr = known_object(srv)
    tag = '"%s"' % addr
    path = "/v1/o/" + addr
    for inm in [tag, "W/" + tag, '"x", ' + tag, '"a", W/%s, "b"' % tag, "*"]:
        for method in ("GET", "HEAD"):
            st, h, body = raw_response(srv.port, raw_req(method, path,
                                                         b"If-None-Match: %s\r\n" % inm.encode()))
            check(st == 304 and body == b"", (inm, method, st, body[:40]))
            check(h["etag"] == tag and h["cache-control"] == CACHE_CONTROL, h)
            check("content-length" not in h or h["content-length"] == "0", h)
    # If-None-Match wins over Range.
    st, _, _ = call(srv, "GET", path, {"If-None-Match": tag, "Range": "bytes=0-9"})
    check(st == 304, st)
    for inm in ['"b3:%s"' % ("0" * 64), '"x", "y"', addr]:
        st, _, body = call(srv, "GET", path, {"If-None-Match": inm})
        check(st == 200 and body == data, (inm, st))
    # If-Range: a matching strong ETag → the range; anything else → the whole object.
    st, h, body = call(srv, "GET", path, {"Range": "bytes=10-19", "If-Range": tag})
    check(st == 206 and body == data[10:20] and h["content-range"] == "bytes 10-19/%d" % SIZE)
    for ir in ['"b3:%s"' % ("0" * 64), "W/" + tag, "Wed, 21 Oct 2015 07:28:00 GMT",
               "Fri, 31 Dec 9999 23:59:59 GMT", tag + ', "x"']:
        st, h, body = call(srv, "GET", path, {"Range": "bytes=10-19", "If-Range": ir})
        check(st == 200 and body == data and "content-range" not in h, (ir, st, len(body)))
    # A failed If-Range also cancels a 416.
    st, _, body = call(srv, "GET", path, {"Range": "bytes=200000-", "If-Range": '"nope"'})
    check(st == 200 and body == data, st)


def test_zero_length_object():
    srv = start()
    st, h, body = put(srv, b"")
    addr = b3(b"")
    check(st in (200, 201) and json.loads(body)["obj"] == addr, (st, body))
    st, h, body = raw_response(srv.port, raw_req("GET", "/v1/o/" + addr))
    check(st == 200 and body == b"" and h["content-length"] == "0", (st, h, body))
    check(h["etag"] == '"%s"' % addr, h)
    for rng in ["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0"]:
        st, h, body = call(srv, "GET", "/v1/o/" + addr, {"Range": rng})
        check(st == 416 and h["content-range"] == "bytes */0", (rng, st, h))
    st, _, _ = call(srv, "GET", "/v1/o/" + addr, {"If-None-Match": '"%s"' % addr})
    check(st == 304, st)


def test_unknown_and_malformed_addresses():
    srv = start()
    st, _, body = call(srv, "GET", "/v1/o/" + b3(b"never stored"))
    check(st == 404 and error_code(body) == "not_found", (st, body))
    for bad in ["b3:123", "b3:" + "G" * 64, "x" * 67, "b3:" + "A" * 64]:
        st, _, body = call(srv, "GET", "/v1/o/" + bad)
        check(st == 400 and error_code(body) == "bad_request", (bad, st, body))
    st, _, body = call(srv, "GET", "/v1/media/no-such-clip")
    check(st == 404, (st, body))
    st, _, body = http("GET", srv.url + "/v1/o/" + b3(b""))
    check(st == 401, st)


def test_media_clips():
    srv = start()
    for name, size in CLIPS.items():
        st, h, body = call(srv, "GET", "/v1/media/" + name)
        check(st == 200 and len(body) == size, (name, st, len(body)))
        check(h["content-type"] == "video/mp4", h)
        addr = b3(body)
        check(h["etag"] == '"%s"' % addr, (h, addr))
        check(h["accept-ranges"] == "bytes" and h["cache-control"] == CACHE_CONTROL, h)
        # The same object by address.
        st, h2, body2 = call(srv, "GET", "/v1/o/" + addr)
        check(st == 200 and body2 == body and h2["content-type"] == "application/octet-stream")
        st, h, part = call(srv, "GET", "/v1/media/" + name, {"Range": "bytes=-65536"})
        check(st == 206 and part == body[-65536:], (name, st))
        check(h["content-range"] == "bytes %d-%d/%d" % (size - 65536, size - 1, size), h)
        check(h["content-type"] == "video/mp4", h)
        st, h, hb = raw_response(srv.port, raw_req("HEAD", "/v1/media/" + name))
        check(st == 200 and hb == b"" and h["content-length"] == str(size), (st, h))


# ---- real clients ---------------------------------------------------------------

def test_curl_range_and_resume():
    srv = start()
    auth = ["-H", "Authorization: Bearer " + TOKEN]
    url = srv.url + "/v1/media/clip-3"
    full = subprocess.run(["curl", "-sf"] + auth + [url], capture_output=True, check=True).stdout
    addr = b3(full)
    r = subprocess.run(["curl", "-sf", "-r", "1000-1999"] + auth + [url], capture_output=True)
    check(r.returncode == 0 and r.stdout == full[1000:2000], r.returncode)
    r = subprocess.run(["curl", "-sf", "-r", "-4096", "-w", "%{http_code}"] + auth + [url],
                       capture_output=True)
    check(r.stdout[-3:] == b"206" and r.stdout[:-3] == full[-4096:], r.stdout[-3:])
    # A partial download (the first 777777 bytes) resumed with --continue-at -.
    path = os.path.join(TMP, "clip-3.part")
    with open(path, "wb") as f:
        f.write(full[:777777])
    r = subprocess.run(["curl", "-sf", "-C", "-", "-o", path, "-w", "%{http_code}"] + auth + [url],
                       capture_output=True)
    check(r.returncode == 0 and r.stdout == b"206", (r.returncode, r.stdout, r.stderr))
    check(b3_file(path) == addr and os.path.getsize(path) == len(full))
    # Resuming a file that is already complete: 416, and curl leaves it intact.
    r = subprocess.run(["curl", "-s", "-C", "-", "-o", path, "-w", "%{http_code}"] + auth + [url],
                       capture_output=True)
    check(r.stdout == b"416", r.stdout)
    check(b3_file(path) == addr)


def test_python_requests_stream():
    srv = start()
    with requests.get(srv.url + "/v1/media/clip-4", headers=AUTH, stream=True, timeout=10) as r:
        check(r.status_code == 200 and r.headers["Content-Type"] == "video/mp4")
        etag = r.headers["ETag"].strip('"')
        got = bytearray()
        for chunk in r.iter_content(chunk_size=37 * 1024):
            got += chunk
    check(len(got) == CLIPS["clip-4"] and b3(bytes(got)) == etag)
    # Resume in a loop of 1 MiB ranges with If-Range, as a download manager does.
    s = requests.Session()
    out = bytearray()
    while len(out) < CLIPS["clip-4"]:
        r = s.get(srv.url + "/v1/media/clip-4", stream=True, timeout=10,
                  headers=dict(AUTH, Range="bytes=%d-%d" % (len(out), len(out) + (1 << 20) - 1),
                               **{"If-Range": '"%s"' % etag}))
        check(r.status_code == 206, r.status_code)
        out += r.raw.read()
    check(bytes(out) == bytes(got))


def test_wrk_ranges_all_2xx():
    srv = start()
    url = srv.url + "/v1/media/clip-2"
    r = subprocess.run(["wrk", "-t1", "-c8", "-d2s", "-H", "Range: bytes=0-65535", "-H",
                        "Authorization: Bearer " + TOKEN, url],
                       capture_output=True, text=True, timeout=30)
    out = r.stdout
    m = re.search(r"(\d+) requests in", out)
    check(m and int(m.group(1)) > 100, out)
    check("Non-2xx" not in out and "Socket errors" not in out, out)
    check(healthy(srv))


def test_pipelined_streams_in_order():
    srv = start()
    _, _, clip1 = call(srv, "GET", "/v1/media/clip-1")
    keep = lambda r: r.replace(b"Connection: close\r\n", b"")
    data = raw(srv.port, keep(raw_req("GET", "/v1/media/clip-1"))
               + keep(raw_req("GET", "/v1/media/clip-1", b"Range: bytes=-5\r\n"))
               + raw_req("HEAD", "/v1/media/clip-1"), timeout=10)
    head1, _, rest = data.partition(b"\r\n\r\n")
    check(head1.startswith(b"HTTP/1.1 200 ") and rest[:len(clip1)] == clip1)
    head2, _, rest = rest[len(clip1):].partition(b"\r\n\r\n")
    check(head2.startswith(b"HTTP/1.1 206 ") and rest[:5] == clip1[-5:], head2)
    head3, _, rest = rest[5:].partition(b"\r\n\r\n")
    check(head3.startswith(b"HTTP/1.1 200 ") and rest == b"", (head3, rest[:40]))


def test_clients_that_vanish_mid_stream():
    srv = start()
    for round_ in range(3):
        socks = []
        for i in range(24):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(raw_req("GET", "/v1/media/clip-%d" % (1 + i % 4)))
            socks.append(s)
        for i, s in enumerate(socks):
            if i % 3:
                s.recv(1000 * (i + 1))
            if i % 2:  # a reset rather than a FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            s.close()
    time.sleep(0.3)
    check(healthy(srv))
    st, _, body = call(srv, "GET", "/v1/media/clip-4")
    check(st == 200 and len(body) == CLIPS["clip-4"])
    check(srv.proc.poll() is None)


# ---- memory and timeouts ----------------------------------------------------------

BIG = 64 << 20


def big_object(srv):
    data = os.urandom(BIG)
    st, _, body = put(srv, data)
    check(st == 201, (st, body))
    return data, json.loads(body)["obj"]


def drain(s):
    """Read s to EOF (a reset counts as the end); returns the bytes read.
    Closes s."""
    got = 0
    try:
        while True:
            c = s.recv(1 << 20)
            if not c:
                break
            got += len(c)
    except ConnectionResetError:
        pass
    s.close()
    return got


def slow_read(srv, addr, name):
    """GET /v1/o/addr, reading 256 KiB every 20 ms into TMP/name while
    sampling the server's RSS. Returns (head, body bytes, path, base RSS,
    peak RSS, seconds)."""
    base = rss_kib(srv.proc.pid)
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s.sendall(raw_req("GET", "/v1/o/" + addr))
    path = os.path.join(TMP, name)
    peak, got, head = base, 0, b""
    t0 = time.time()
    with open(path, "wb") as f:
        while True:
            chunk = s.recv(256 * 1024)
            if not chunk:
                break
            if got == 0 and b"\r\n\r\n" not in head:
                head += chunk
                if b"\r\n\r\n" not in head:
                    continue
                head, _, chunk = head.partition(b"\r\n\r\n")
                head += b"\r\n\r\n"
            f.write(chunk)
            got += len(chunk)
            peak = max(peak, rss_kib(srv.proc.pid))
            time.sleep(0.02)
    s.close()
    return head, got, path, base, peak, time.time() - t0


def test_slow_reader_bounded_rss():
    srv = start("--body-max", "64MiB", "--storage-max-object", "128MiB", workers=1)
    data, addr = big_object(srv)
    del data
    time.sleep(0.3)
    head, got, path, base, peak, took = slow_read(srv, addr, "big.body")
    check(head.startswith(b"HTTP/1.1 200 "), head[:100])
    check(got == BIG, got)
    check(b3_file(path) == addr)
    os.unlink(path)
    growth = peak - base
    print("    slow reader: %.1fs, RSS base %d KiB, peak %d KiB, growth %d KiB"
          % (took, base, peak, growth))
    check(growth < 16 * 1024, "RSS grew by %d KiB while streaming" % growth)
    check(healthy(srv))


def test_reader_that_stops_is_cut_off_by_write_timeout():
    srv = start("--body-max", "64MiB", "--storage-max-object", "128MiB", "--write-timeout", "1s")
    _, addr = big_object(srv)
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(raw_req("GET", "/v1/o/" + addr))
    t0 = time.time()
    cut = None
    while time.time() - t0 < 6:
        if any(e.get("event") == "write_timeout" or e.get("msg") == "write_timeout"
               or "write_timeout" in json.dumps(e) for e in srv.log_json()):
            cut = time.time() - t0
            break
        time.sleep(0.1)
    check(cut is not None, "no write_timeout within 6 s")
    check(0.8 <= cut <= 4.0, cut)
    # Draining now ends in EOF (or a reset) well short of the object.
    s.settimeout(5)
    got = drain(s)
    check(got < BIG, got)
    check(healthy(srv))
    st, _, body = call(srv, "GET", "/v1/o/" + addr, {"Range": "bytes=0-9"})
    check(st == 206 and len(body) == 10)


# ---- integrity (macronode, corrupting storage) -------------------------------------

def test_integrity_abort_with_corrupting_storage():
    stor = start_substrate("storage", "--corrupt-rate", "1.0")
    index = start_substrate("index")
    mbox = start_substrate("mailbox")
    addrs = ["--index", "oap://127.0.0.1:%d" % index.port,
             "--storage", "oap://127.0.0.1:%d" % stor.port,
             "--mailbox", "oap://127.0.0.1:%d" % mbox.port]
    r = subprocess.run([OMNIGATE, "seed"] + addrs, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, r.stderr)
    srv = start_omnigate("--root-keys", KEYS, *addrs)
    check(metric(srv, "integrity_failures_total") == 0)
    url = srv.url + "/v1/media/clip-1"
    # The address, from the ETag of a HEAD (it reads no bytes, only the size).
    st, h, _ = call(srv, "HEAD", "/v1/media/clip-1")
    check(st == 200, st)
    addr = h["etag"].strip('"')
    out = os.path.join(TMP, "clip-1.corrupt")
    r = subprocess.run(["curl", "-s", "-o", out, "-D", "-", "-H", "Authorization: Bearer " + TOKEN,
                        url], capture_output=True, timeout=30)
    check(r.returncode == 18, (r.returncode, r.stdout[:300], r.stderr))
    check(b"Content-Length: %d" % CLIPS["clip-1"] in r.stdout, r.stdout[:400])
    check(os.path.getsize(out) < CLIPS["clip-1"], os.path.getsize(out))
    deadline = time.time() + 3
    while time.time() < deadline and not metric(srv, "integrity_failures_total"):
        time.sleep(0.05)
    check(metric(srv, "integrity_failures_total") >= 1)
    ev = [e for e in srv.log_json() if "integrity_failure" in json.dumps(e)]
    check(ev and any(addr in json.dumps(e) for e in ev), ev)
    check(healthy(srv))


# ---- macronode: storage → omnigate → client under OAP/1 credit ---------------------

# The reference storage service assembles a request stream of at most 64 MiB
# including its DATA header, so the largest object a PUT through omnigate can
# store is a little under 64 MiB.
BIG_REMOTE = BIG - 65536


def start_macronode(*extra):
    """Storage, index and mailbox as separate processes; omnigate in front of them."""
    stor = start_substrate("storage", "--mem-cap", "256MiB")
    index = start_substrate("index")
    mbox = start_substrate("mailbox")
    addrs = ["--index", "oap://127.0.0.1:%d" % index.port,
             "--storage", "oap://127.0.0.1:%d" % stor.port,
             "--mailbox", "oap://127.0.0.1:%d" % mbox.port]
    srv = start_omnigate("--root-keys", KEYS, "--body-max", "64MiB", *addrs, *extra, workers=1)
    deadline = time.time() + 5
    while time.time() < deadline:
        st, _, _ = http("GET", srv.url + "/readyz", timeout=5)
        if st == 200:
            break
        time.sleep(0.05)
    check(st == 200, "macronode not ready within 5 s: /readyz %d" % st)
    return srv, stor


def test_macronode_concurrent_mixed_frames_stay_in_order():
    # 32 clients at once PUT and GET objects of 16 KiB (copied into the
    # per-turn write batches, which overflow their 256 KiB bound and flush
    # early) and of 100 KiB (written on their own after the batch): any
    # frame out of order or lost would break the OAP/1 stream or the bytes.
    import threading
    srv, stor = start_macronode()
    sizes = [16 * 1024 - 200, 16 * 1024, 100 * 1024]
    objs = [os.urandom(sizes[i % len(sizes)]) for i in range(96)]
    bad = []
    lost = metric(srv, "downstream_reconnects_total", {"service": "storage"})

    def worker(k):
        for data in objs[k::32]:
            st, _, body = put(srv, data)
            if st != 201 or json.loads(body)["obj"] != b3(data):
                bad.append(("put", st, body[:100]))
                continue
            st, _, got = call(srv, "GET", "/v1/o/" + b3(data))
            if st != 200 or got != data:
                bad.append(("get", st, len(got)))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not bad, bad[:5])
    check(metric(srv, "integrity_failures_total") == 0)
    check(metric(srv, "downstream_reconnects_total", {"service": "storage"}) == lost,
          "a storage connection was lost")
    check(healthy(srv) and stor.proc.poll() is None)


def test_macronode_storage_killed_mid_stream():
    # The storage service dies while a whole object streams to a slow
    # client: the response stops short of its Content-Length and closes, the
    # abort is logged, and omnigate stays healthy.
    srv, stor = start_macronode()
    data = os.urandom(BIG_REMOTE)
    addr = b3(data)
    st, _, body = put(srv, data)
    check(st == 201, (st, body[:200]))
    del data
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(5)
    s.sendall(raw_req("GET", "/v1/o/" + addr))
    got = s.recv(64 * 1024)
    check(got.startswith(b"HTTP/1.1 200 "), got[:100])
    stor.proc.kill()
    stor.proc.wait(5)
    t0 = time.time()
    total = len(got) + drain(s)
    check(time.time() - t0 < 4, "the cut response hung")
    check(total < BIG_REMOTE, "all %d bytes arrived after the kill" % total)
    deadline = time.time() + 3
    while time.time() < deadline and not any(
            e.get("event") == "media_stream_aborted" for e in srv.log_json()):
        time.sleep(0.05)
    check(any(e.get("event") == "media_stream_aborted" and addr in json.dumps(e)
              for e in srv.log_json()), "no media_stream_aborted event naming the object")
    check(metric(srv, "integrity_failures_total") == 0, "a cut stream is not an integrity failure")
    check(healthy(srv))


def test_macronode_slow_reader_bounded_rss():
    srv, stor = start_macronode()
    data = os.urandom(BIG_REMOTE)
    addr = b3(data)
    st, _, body = put(srv, data)
    check(st == 201 and json.loads(body)["obj"] == addr, (st, body[:200]))
    # A range across several storage frames streams the same way (no hash).
    st, h, part = call(srv, "GET", "/v1/o/" + addr, {"Range": "bytes=100000-1300000"})
    check(st == 206 and part == data[100000:1300001], (st, len(part)))
    del data, part
    time.sleep(0.5)
    head, got, path, base, peak, took = slow_read(srv, addr, "big-remote.body")
    check(head.startswith(b"HTTP/1.1 200 "), head[:100])
    check(b"Content-Length: %d\r\n" % BIG_REMOTE in head, head)
    check(got == BIG_REMOTE, got)
    check(b3_file(path) == addr)
    os.unlink(path)
    growth = peak - base
    print("    macronode slow reader: %.1fs, RSS base %d KiB, peak %d KiB, growth %d KiB"
          % (took, base, peak, growth))
    check(growth < 16 * 1024, "RSS grew by %d KiB while streaming" % growth)
    check(metric(srv, "integrity_failures_total") == 0)
    check(healthy(srv) and stor.proc.poll() is None)


def test_macronode_reader_that_stops_is_cut_off_by_write_timeout():
    srv, stor = start_macronode("--write-timeout", "1s")
    data = os.urandom(BIG_REMOTE)
    addr = b3(data)
    st, _, body = put(srv, data)
    check(st == 201, (st, body[:200]))
    del data
    base = rss_kib(srv.proc.pid)
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(raw_req("GET", "/v1/o/" + addr))
    t0 = time.time()
    cut = None
    while time.time() - t0 < 6:
        if any("write_timeout" in json.dumps(e) for e in srv.log_json()):
            cut = time.time() - t0
            break
        time.sleep(0.1)
    check(cut is not None, "no write_timeout within 6 s")
    check(0.8 <= cut <= 4.0, cut)
    growth = rss_kib(srv.proc.pid) - base
    check(growth < 16 * 1024, "RSS grew by %d KiB with a stalled reader" % growth)
    s.settimeout(5)
    got = drain(s)
    check(got < BIG_REMOTE, got)
    # The abandoned storage stream was let go: the next reads are served.
    check(healthy(srv))
    st, _, body = call(srv, "GET", "/v1/o/" + addr, {"Range": "bytes=0-9"})
    check(st == 206 and len(body) == 10, (st, body))
    st, _, body = call(srv, "GET", "/v1/o/" + addr)
    check(st == 200 and b3(body) == addr, (st, len(body)))


if __name__ == "__main__":
    try:
        run_tests(globals())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
