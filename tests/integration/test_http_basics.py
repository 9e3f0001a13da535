"""HTTP/1.1 behaviour of the real binary on raw sockets and curl: keep-alive,
pipelining, Connection: close, Expect: 100-continue, error answers with their
JSON bodies, ids, and the access log."""
import json
import socket
import subprocess
import time

from harness import *
from profiles import start_body_sink


class Conn:
    """A raw client connection that reads whole responses (Content-Length)."""

    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError("peer closed")
        self.buf += chunk

    def response(self):
        """(status, headers lowercased, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        if status < 200:
            n = 0
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def closed(self, within=2.0):
        """True if the peer closes within `within` seconds (no more bytes)."""
        self.s.settimeout(within)
        try:
            while True:
                c = self.s.recv(65536)
                if not c:
                    return True
                self.buf += c
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


GET = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


def error_body(body, code):
    j = json.loads(body)
    check(set(j) == {"error", "reason", "corr_id"}, j)
    check(j["error"] == code, j)
    check(j["reason"], j)
    return j


def test_keep_alive_same_socket():
    srv = start_omnigate()
    c = Conn(srv.port)
    local = c.s.getsockname()
    ids = set()
    for _ in range(5):
        c.send(GET)
        st, h, body = c.response()
        check(st == 200 and json.loads(body) == {"status": "ok"}, (st, body))
        check("connection" not in h, h)
        ids.add(h["x-request-id"])
    check(c.s.getsockname() == local)
    check(len(ids) == 5, "X-Request-ID per request: %s" % ids)
    check(not c.closed(0.3), "keep-alive connection closed early")
    c.close()
    # curl re-uses one connection for two URLs
    r = subprocess.run(["curl", "-sv", srv.url + "/healthz", srv.url + "/healthz"],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, r.stderr)
    check(r.stdout == '{"status":"ok"}' * 2, r.stdout)
    check("Re-using existing connection" in r.stderr or "Reusing existing connection" in r.stderr,
          r.stderr)


def test_pipelining_three_in_order():
    srv = start_omnigate()
    c = Conn(srv.port)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Corr-ID: one\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: t\r\nX-Corr-ID: two\r\n\r\n"
           b"GET /readyz HTTP/1.1\r\nHost: t\r\nX-Corr-ID: three\r\n\r\n")
    got = [c.response() for _ in range(3)]
    check([g[0] for g in got] == [200, 404, 200], [g[0] for g in got])
    check([g[1]["x-corr-id"] for g in got] == ["one", "two", "three"])
    check(not c.closed(0.3))
    c.close()


def test_connection_close_honoured():
    srv = start_omnigate()
    c = Conn(srv.port)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    st, h, _ = c.response()
    check(st == 200 and h.get("connection") == "close", h)
    t0 = time.time()
    check(c.closed(3.0), "server kept the connection open")
    check(time.time() - t0 < 2.0)
    # HTTP/1.0 without keep-alive closes too; with keep-alive it stays
    c = Conn(srv.port)
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
    st, h, _ = c.response()
    check(st == 200 and h.get("connection") == "close", h)
    check(c.closed(3.0))
    c = Conn(srv.port)
    c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    st, h, _ = c.response()
    check(st == 200 and h.get("connection", "").lower() == "keep-alive", h)
    c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    check(c.response()[0] == 200)


def test_expect_100_continue():
    srv, put = start_body_sink()
    c = Conn(srv.port)
    c.send(put + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    st, _, _ = c.response()
    check(st == 100, "expected 100 Continue before the body, got %d" % st)
    c.send(b"hello")
    st, h, body = c.response()
    check(st == 201, (st, h))
    # A request refused at its head gets the refusal instead of 100, and
    # the connection closes: its body is never read.
    c = Conn(srv.port)
    c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
           b"Content-Length: 5\r\n\r\n")
    st, h, body = c.response()
    check(st == 405 and h["allow"] == "GET, HEAD" and h.get("connection") == "close", (st, h))
    error_body(body, "method_not_allowed")
    check(c.closed(2.0))
    # curl waits for the 100 and sends its body, or takes the early answer
    for path, want in (("/v1/o", "401"), ("/healthz", "405")):
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H",
                            "Expect: 100-continue", "--data-binary", "x" * 2000,
                            srv.url + path], capture_output=True, text=True, timeout=10)
        check(r.stdout == want, (path, r.stdout))


def test_errors_and_their_codes():
    srv = start_omnigate()
    cases = [
        (b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404, "not_found", False),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n", 400, "bad_request", True),
        (b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n", 400, "bad_request", True),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request", True),
        (b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request", True),
        (b"GET http://t/healthz HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request", True),
        (b"GET /healthz HTTP/1.1\nHost: t\n\n", 400, "bad_request", True),
        (b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
         400, "bad_request", True),
        (b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request", True),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 431,
         "header_too_large", True),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-N: v\r\n" * 100 + b"\r\n", 431,
         "header_too_large", True),
    ]
    for req, status, code, closes in cases:
        c = Conn(srv.port)
        c.send(req)
        st, h, body = c.response()
        check(st == status, "%r: %d" % (req[:60], st))
        j = error_body(body, code)
        check(h["content-type"] == "application/json")
        check(j["corr_id"] == h["x-corr-id"])
        if closes:
            check(h.get("connection") == "close", h)
            check(c.closed(2.0), "%r: not closed" % req[:60])
        c.close()
    # 405 carries Allow
    st, h, body = http("DELETE", srv.url + "/readyz")
    check(st == 405 and h["allow"] == "GET, HEAD", (st, h))
    error_body(body, "method_not_allowed")


def test_body_cap_from_content_length_at_once():
    srv = start_omnigate("--body-max", "1KiB")
    c = Conn(srv.port)
    t0 = time.time()
    c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n")
    st, h, body = c.response()  # no body byte was sent
    check(st == 413 and time.time() - t0 < 1.0, st)
    error_body(body, "body_cap")
    check(c.closed(2.0))
    # exactly at the cap is read whole
    srv, put = start_body_sink("--body-max", "1KiB")
    c = Conn(srv.port)
    c.send(put + b"Content-Length: 1024\r\n\r\n" + b"x" * 1024)
    check(c.response()[0] == 201)


def test_body_cap_chunked_mid_stream():
    srv, put = start_body_sink("--body-max", "1KiB")
    c = Conn(srv.port)
    c.send(put + b"Transfer-Encoding: chunked\r\n\r\n")
    c.send(b"200\r\n" + b"a" * 512 + b"\r\n200\r\n" + b"b" * 512 + b"\r\n")
    check(not c.closed(0.4), "answered before the cap was passed")
    c.send(b"1\r\nc\r\n")
    st, h, body = c.response()
    check(st == 413, st)
    error_body(body, "body_cap")
    check(c.closed(2.0))
    # at the cap, with trailers, fine
    c = Conn(srv.port)
    c.send(put + b"Transfer-Encoding: chunked\r\n\r\n"
           b"400;x=1\r\n" + b"a" * 1024 + b"\r\n0\r\nX-Trailer: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    check(c.response()[0] == 201)
    check(c.response()[0] == 200)


def test_corr_id_echo_and_generation():
    srv = start_omnigate()
    st, h, _ = http("GET", srv.url + "/healthz", headers={"X-Corr-ID": "abc-123.x:y_z"})
    check(h["x-corr-id"] == "abc-123.x:y_z", h)
    st, h1, _ = http("GET", srv.url + "/healthz")
    st, h2, _ = http("GET", srv.url + "/healthz")
    for hh in (h1, h2):
        check(len(hh["x-corr-id"]) == 16 and int(hh["x-corr-id"], 16) >= 0, hh)
        check(len(hh["x-request-id"]) == 16, hh)
    check(h1["x-corr-id"] != h2["x-corr-id"] and h1["x-request-id"] != h2["x-request-id"])
    for bad in ("has space", "x" * 65, "semi;colon"):
        st, h, _ = http("GET", srv.url + "/nope", headers={"X-Corr-ID": bad})
        check(h["x-corr-id"] != bad and len(h["x-corr-id"]) == 16, (bad, h))
    st, h, body = http("GET", srv.url + "/nope", headers={"X-Corr-ID": "e" * 64})
    check(h["x-corr-id"] == "e" * 64 and json.loads(body)["corr_id"] == "e" * 64)


def test_log_lines_json_without_secrets():
    srv = start_omnigate()
    auth = {"Authorization": "Bearer secret123", "X-Corr-ID": "logcheck"}
    http("GET", srv.url + "/healthz", headers=auth)
    http("GET", srv.url + "/nope", headers=auth)
    http("POST", srv.url + "/healthz", body=b"x", headers=auth)
    raw(srv.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer secret123\r\n"
        b"X-A: b\r\n c\r\n\r\n")
    time.sleep(0.3)
    srv.stop()
    text = open(srv.logpath).read()
    check("secret123" not in text, "the Authorization value reached the log")
    reqs = [j for j in srv.log_json() if j.get("event") == "request"]
    check(len(reqs) >= 4, reqs)
    need = {"ts", "level", "event", "route", "method", "status", "latency_ms", "corr_id",
            "req_id", "bytes"}
    for j in reqs:
        check(need <= set(j), "missing %s in %s" % (need - set(j), j))
        check(j["level"] in ("info", "warn") and isinstance(j["latency_ms"], (int, float)))
    by_status = {j["status"]: j for j in reqs}
    check(by_status[200]["route"] == "/healthz" and by_status[200]["corr_id"] == "logcheck")
    check(by_status[404]["reason"] == "not_found" and by_status[404]["route"] == "unmatched")
    check(by_status[405]["reason"] == "method_not_allowed")
    check(by_status[400]["reason"] == "bad_request")
    check("reason" not in by_status[200])
    # every line on stderr that looks like JSON is JSON
    for line in srv.log_lines():
        if line.startswith("{"):
            json.loads(line)


if __name__ == "__main__":
    run_tests(globals())
