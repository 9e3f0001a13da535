"""The decompression guard (DESIGN §8, issue 13 item 4), against the real
binary: PUT /v1/o bodies sent with Content-Encoding gzip, deflate (zlib and
raw) and zstd are stored decoded — their address is the BLAKE3 of the
decoded bytes (b3sum) and GET returns those bytes; gzip and zstd bombs of
1000:1 and more get 413 ratio_cap or decompress_cap while the server's peak
RSS stays bounded; lying, truncated and corrupt streams get 400; unknown and
stacked codings get 415 before the body is read; the slow-body guard counts
the bytes received, not the bytes decoded.

zstd bodies are made with libzstd (installed with libzstd-dev) through
ctypes; gzip and deflate with python's zlib.
"""
import ctypes
import gzip
import json
import os
import socket
import subprocess
import threading
import time
import zlib

from harness import *
from profiles import KEYFILE, TMP, mint
from test_http_basics import Conn, error_body

TOKEN = mint(scope="object.read,object.write")

# ---- encoders -----------------------------------------------------------------

_zstd = ctypes.CDLL("libzstd.so.1")
_zstd.ZSTD_compressBound.restype = ctypes.c_size_t
_zstd.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
_zstd.ZSTD_compress.restype = ctypes.c_size_t
_zstd.ZSTD_compress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                ctypes.c_size_t, ctypes.c_int]
_zstd.ZSTD_isError.restype = ctypes.c_uint
_zstd.ZSTD_isError.argtypes = [ctypes.c_size_t]


def zstd(data, level=3):
    cap = _zstd.ZSTD_compressBound(len(data))
    dst = ctypes.create_string_buffer(cap)
    n = _zstd.ZSTD_compress(dst, cap, data, len(data), level)
    check(not _zstd.ZSTD_isError(n), "ZSTD_compress failed")
    return dst.raw[:n]


def deflate_zlib(data):
    return zlib.compress(data, 9)


def deflate_raw(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def gzip_of(data):
    return gzip.compress(data, 9)


def zeros_gzip(n):
    """gzip of n zero bytes, streamed so the plaintext is never held."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    step = bytes(1 << 20)
    out = []
    for _ in range(n // len(step)):
        out.append(c.compress(step))
    out.append(c.compress(bytes(n % len(step))))
    out.append(c.flush())
    return b"".join(out)


def text(n, seed=1):
    words = [b"view ", b"object ", b"b3:", b"mailbox ", b'{"k":', b"42, ", b"hydrate ", b"\n"]
    out, x = [], seed
    size = 0
    while size < n:
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        w = words[(x >> 33) % 8] + str((x >> 40) % 1000).encode()
        out.append(w)
        size += len(w)
    return b"".join(out)[:n]


def b3(data):
    """The address of data, computed by b3sum (an implementation not ours)."""
    out = subprocess.run(["b3sum", "--no-names"], input=data, check=True,
                         capture_output=True).stdout
    return "b3:" + out.decode().strip()


# ---- the server and a raw client ------------------------------------------------

def start(*extra):
    return start_omnigate("--demo", "--root-keys", KEYFILE, *extra)


def put_raw(srv, body, coding=None, extra=b"", chunked=False, timeout=10.0):
    """PUT /v1/o on a fresh connection, the body sent whole even if the server
    answers early. Returns (status, headers, body) of the answer."""
    head = b"PUT /v1/o HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n" % TOKEN.encode()
    if coding is not None:
        head += b"Content-Encoding: %s\r\n" % coding.encode()
    head += extra
    if chunked:
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                           for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
    else:
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        payload = body
    c = Conn(srv.port, timeout=timeout)
    try:
        c.send(head + payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered and closed before the whole body was taken
    try:
        return c.response()
    finally:
        c.close()


def get(srv, addr):
    return http("GET", srv.url + "/v1/o/" + addr,
                headers={"Authorization": "Bearer " + TOKEN}, timeout=30)


def metric(srv, name, labels=None):
    _, _, body = http("GET", srv.admin_url + "/metrics")
    return metric_value(body.decode(), name, labels) or 0


with open(OMNIGATE, "rb") as _f:
    UNDER_ASAN = b"__asan_init" in _f.read()


def vm_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s" % key)


# ---- decoded bodies ----------------------------------------------------------------

def test_coded_bodies_are_stored_decoded():
    srv = start()
    plain = text(300 * 1024 + 7)
    addr = b3(plain)
    cases = [("gzip", gzip_of(plain)), ("x-gzip", gzip_of(plain)), ("GZIP", gzip_of(plain)),
             ("deflate", deflate_zlib(plain)), ("deflate", deflate_raw(plain)),
             ("zstd", zstd(plain)), ("identity, zstd", zstd(plain, 19)),
             ("identity", plain)]
    for coding, enc in cases:
        for chunked in (False, True):
            st, h, body = put_raw(srv, enc, coding, chunked=chunked)
            check(st in (200, 201), (coding, chunked, st, body))
            j = json.loads(body)
            check(j["obj"] == addr and j["size"] == len(plain), (coding, chunked, j, addr))
            check(h["location"] == "/v1/o/" + addr, h)
    st, h, got = get(srv, addr)
    check(st == 200 and got == plain, (st, len(got)))
    check(h["etag"] == '"%s"' % addr, h)
    # the compressed bytes themselves were never stored
    st, _, _ = get(srv, b3(gzip_of(plain)))
    check(st == 404, st)
    # gzip members one after the other are one body
    a, b = text(5000, 2), text(7000, 3)
    st, _, body = put_raw(srv, gzip_of(a) + gzip_of(b), "gzip")
    check(st in (200, 201) and json.loads(body)["obj"] == b3(a + b), (st, body))


def test_curl_uploads_a_gzip_body():
    srv = start()
    plain = text(200 * 1024, 4)
    path = os.path.join(TMP, "body.gz")
    with open(path, "wb") as f:
        f.write(gzip_of(plain))
    out = subprocess.run(["curl", "-sS", "-X", "PUT", "--data-binary", "@" + path,
                          "-H", "Content-Encoding: gzip", "-H", "Authorization: Bearer " + TOKEN,
                          "-w", "\n%{http_code}", srv.url + "/v1/o"],
                         capture_output=True, text=True, timeout=30).stdout
    body, _, code = out.rpartition("\n")
    check(code in ("200", "201"), out)
    check(json.loads(body)["obj"] == b3(plain), body)


# ---- bombs ----------------------------------------------------------------------------

def test_gzip_and_zstd_bombs_are_413():
    srv = start()
    gz = zeros_gzip(100 << 20)      # 100 MiB of zeros in ~100 KiB
    zs = zstd(bytes(64 << 20))      # 64 MiB of zeros in a few KiB
    check((100 << 20) // len(gz) >= 1000 and (64 << 20) // len(zs) >= 1000, (len(gz), len(zs)))
    for coding, bomb in (("gzip", gz), ("zstd", zs), ("deflate", deflate_raw(bytes(50 << 20)))):
        for chunked in (False, True):
            before = metric(srv, "rejected_total", {"reason": "ratio_cap"})
            st, h, body = put_raw(srv, bomb, coding, chunked=chunked)
            check(st == 413, (coding, st, body))
            error_body(body, "ratio_cap")
            check(h.get("connection") == "close", h)
            check(metric(srv, "rejected_total", {"reason": "ratio_cap"}) == before + 1)
    # The absolute cap stops them when no ratio cap is set, and a body that
    # compresses only 2:1 but decodes past body_max.
    srv2 = start("--decompress-ratio-max", "0")
    for coding, bomb in (("gzip", gz), ("zstd", zs)):
        st, _, body = put_raw(srv2, bomb, coding)
        check(st == 413, (coding, st, body))
        error_body(body, "decompress_cap")
    noisy = os.urandom(600 * 1024).hex().encode()  # 1.2 MiB of hex: ~2:1
    st, _, body = put_raw(srv, gzip_of(noisy), "gzip")
    check(st == 413, (st, body))
    error_body(body, "decompress_cap")
    check(metric(srv, "rejected_total", {"reason": "decompress_cap"}) == 1)
    # the same bytes uncompressed: over body_max as ever
    st, _, body = put_raw(srv, noisy)
    check(st == 413, st)
    error_body(body, "body_cap")
    # nothing of a bomb was stored, and the server still serves
    check(get(srv, b3(bytes(64 << 20)))[0] == 404)
    check(http("GET", srv.url + "/healthz")[0] == 200)


def test_bombs_leave_peak_rss_bounded():
    """Eight clients at once, each sending four bombs that decode to 3.2 GiB
    in all: the peak RSS grows by what the caps allow (per request the 1 MiB
    body cap, and for zstd the part of its window the output reaches), not
    by what the bombs expand to."""
    srv = start("--decompress-ratio-max", "0", "--workers", "2")
    gz = zeros_gzip(100 << 20)
    zs = zstd(bytes(100 << 20))
    ok = b"x" * 1000
    check(put_raw(srv, ok)[0] in (200, 201))  # warm up
    base = vm_kib(srv.proc.pid, "VmHWM")
    codes = []

    def client(i):
        for k in range(4):
            coding, bomb = (("gzip", gz), ("zstd", zs))[(i + k) % 2]
            codes.append(put_raw(srv, bomb, coding, timeout=30)[0])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(codes == [413] * 32, codes)
    growth = vm_kib(srv.proc.pid, "VmHWM") - base
    print("peak RSS growth under bombs: %d KiB (VmHWM %d KiB before)" % (growth, base))
    # 8 × (1 MiB output + ~1.2 MiB of touched zstd window + buffers), with
    # room. ASan's quarantine keeps freed memory resident: there, only the
    # answers are checked.
    if not UNDER_ASAN:
        check(growth < 48 * 1024, "peak RSS grew by %d KiB for 3.2 GiB of bombs" % growth)
    check(http("GET", srv.url + "/healthz")[0] == 200)


# ---- lies, truncation, corruption ---------------------------------------------------------

def test_streams_that_lie_about_their_size():
    srv = start()
    plain = text(20000, 5)
    # a gzip trailer (ISIZE) claiming 100 bytes: 400 from zlib's length check
    g = bytearray(gzip_of(plain))
    g[-4:] = (100).to_bytes(4, "little")
    st, _, body = put_raw(srv, bytes(g), "gzip")
    check(st == 400, (st, body))
    error_body(body, "bad_request")
    # the same lie on a bomb: the caps stop it before the trailer is read
    bomb = bytearray(zeros_gzip(50 << 20))
    bomb[-4:] = (100).to_bytes(4, "little")
    st, _, body = put_raw(srv, bytes(bomb), "gzip")
    check(st == 413, (st, body))
    error_body(body, "ratio_cap")
    # a raw deflate stored block claiming 65535 bytes that carries 10
    st, _, body = put_raw(srv, b"\x01\xff\xff\x00\x00" + b"a" * 10, "deflate")
    check(st == 400, (st, body))
    check("truncated" in error_body(body, "bad_request")["reason"], body)
    # a zstd frame whose header claims 1000 bytes less than it holds
    z = bytearray(zstd(plain[:3000]))
    check(z[4] & 0xe0 == 0x60, z[:8])  # single segment, 2-byte content size
    fcs = z[5] | z[6] << 8
    z[5:7] = (fcs - 1000).to_bytes(2, "little")
    st, _, body = put_raw(srv, bytes(z), "zstd")
    check(st == 400, (st, body))
    error_body(body, "bad_request")


def test_truncated_and_corrupt_streams_are_400():
    srv = start()
    plain = text(50000, 6)
    for coding, enc in (("gzip", gzip_of(plain)), ("deflate", deflate_zlib(plain)),
                        ("deflate", deflate_raw(plain)), ("zstd", zstd(plain))):
        for cut in (1, len(enc) // 2, len(enc) - 1):
            st, _, body = put_raw(srv, enc[:cut], coding)
            check(st == 400, (coding, cut, st, body))
            j = error_body(body, "bad_request")
            check("truncated" in j["reason"], (coding, cut, j))
        st, _, body = put_raw(srv, enc + b"trailing", coding)
        check(st == 400, (coding, st, body))
        st, _, body = put_raw(srv, b"not compressed at all, not even close", coding)
        check(st == 400, (coding, st, body))
    check(metric(srv, "rejected_total", {"reason": "bad_request"}) >= 20)


def test_a_coded_body_cut_off_mid_stream_frees_its_decoder():
    """Clients that hang up mid-body: the server goes on serving (under ASan,
    OMNIGATE_BUILD=build/asan, a leak or a bad free would end it)."""
    srv = start()
    enc = zstd(text(400000, 7))
    head = (b"PUT /v1/o HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
            b"Content-Encoding: zstd\r\nContent-Length: %d\r\n\r\n" % (TOKEN.encode(), len(enc)))
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(head + enc[:len(enc) // 2])
        s.close()
    time.sleep(0.3)
    st, _, body = put_raw(srv, enc, "zstd")
    check(st in (200, 201), (st, body))
    check(srv.proc.poll() is None)


# ---- codings refused --------------------------------------------------------------------

def test_unknown_and_stacked_codings_are_415_before_the_body():
    srv = start()
    for coding in ("br", "compress", "gzip, gzip", "gzip, zstd", "gzip;q=1"):
        st, h, body = put_raw(srv, gzip_of(b"hello"), coding)
        check(st == 415, (coding, st, body))
        error_body(body, "unsupported_media_type")
        check(h.get("accept-encoding") == "gzip, deflate, zstd", h)
        check(h.get("connection") == "close", h)
    # two fields are one list: stacked
    st, _, body = put_raw(srv, b"x", extra=b"Content-Encoding: gzip\r\nContent-Encoding: zstd\r\n")
    check(st == 415, (st, body))
    check(metric(srv, "rejected_total", {"reason": "unsupported_media_type"}) == 6)
    # a client waiting on 100-continue gets the 415 instead, and sends nothing
    c = Conn(srv.port)
    c.send(b"PUT /v1/o HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           b"Content-Encoding: br\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n"
           % TOKEN.encode())
    st, h, body = c.response()
    check(st == 415, (st, body))
    check(c.closed(2.0))
    # the same head with a coding we take gets 100 Continue
    c = Conn(srv.port)
    enc = gzip_of(b"continued")
    c.send(b"PUT /v1/o HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           b"Content-Encoding: gzip\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
           % (TOKEN.encode(), len(enc)))
    check(c.response()[0] == 100)
    c.send(enc)
    st, _, body = c.response()
    check(st in (200, 201) and json.loads(body)["obj"] == b3(b"continued"), (st, body))
    # a stray coding on a request without a body is not looked at
    st, _, _ = http("GET", srv.url + "/healthz", headers={"Content-Encoding": "br"})
    check(st == 200, st)


def test_slow_coded_body_is_timed_on_the_bytes_received():
    """60 KB of zeros gzip to ~100 bytes: a client that sends those and then
    stalls has sent far less than body_min_rate asks, whatever they decode
    to."""
    srv = start("--body-grace", "500ms", "--body-min-rate", "1KiB")
    enc = gzip_of(bytes(60000))
    check(len(enc) < 200, len(enc))
    c = Conn(srv.port)
    t0 = time.time()
    c.send(b"PUT /v1/o HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
           b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
           % (TOKEN.encode(), len(enc) + 1000, enc))
    st, _, body = c.response()
    dt = time.time() - t0
    check(st == 408 and dt < 2.5, (st, dt, body))
    error_body(body, "timeout")


if __name__ == "__main__":
    run_tests(globals())
