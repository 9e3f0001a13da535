"""Time and resource limits of the real binary: slow-loris heads, slow
bodies, idle keep-alive, max connections, and no leaked descriptors."""
import json
import os
import resource
import socket
import time

from harness import *
from profiles import start_body_sink
from test_http_basics import Conn, GET, error_body


def test_slow_loris_head_cut_off_with_408():
    srv = start_omnigate("--head-timeout", "1s")
    c = Conn(srv.port, timeout=5)
    t0 = time.time()
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    time.sleep(0.4)
    c.send(b"X-Drip: 1\r\n")  # trickling bytes does not extend the deadline
    st, h, body = c.response()
    dt = time.time() - t0
    check(st == 408 and 0.9 <= dt < 1.8, (st, dt))
    error_body(body, "timeout")
    check(h.get("connection") == "close")
    check(c.closed(2.0))
    # a connection that never sends a byte is just closed
    c = Conn(srv.port)
    t0 = time.time()
    check(c.closed(3.0) and c.buf == b"" and time.time() - t0 < 1.8)


def test_slow_body_cut_off():
    srv, put = start_body_sink("--body-grace", "1s", "--body-min-rate", "1MiB")
    c = Conn(srv.port)
    t0 = time.time()
    c.send(put + b"Content-Length: 100000\r\n\r\n" + b"x" * 10)
    st, h, body = c.response()
    dt = time.time() - t0
    check(st == 408 and 0.9 <= dt < 2.5, (st, dt))
    error_body(body, "timeout")
    check(c.closed(2.0))
    # a body that is fast enough is not cut
    c = Conn(srv.port)
    c.send(put + b"Content-Length: 100000\r\n\r\n" + b"x" * 100000)
    check(c.response()[0] == 201)


def idle_close(srv, open_for, close_within):
    """One answered request on a new connection, then the keep-alive wait:
    still open open_for s later, closed within close_within s more. Returns
    the connection and the seconds from the answer to the close."""
    c = Conn(srv.port)
    c.send(GET)
    check(c.response()[0] == 200)
    t0 = time.time()
    check(not c.closed(open_for), "closed before the idle timeout")
    check(c.closed(close_within), "idle connection never closed")
    return c, time.time() - t0


def test_idle_keep_alive_timeout():
    c, dt = idle_close(start_omnigate("--idle-timeout", "1s"), 0.7, 2.0)
    check(0.9 <= dt < 2.0, dt)
    check(c.buf == b"", "an idle close sends nothing: %r" % c.buf)


def test_timeouts_after_a_nearer_one_passed():
    # The connection timer is armed lazily: it is left armed for the head
    # deadline (1 s from accept) while the keep-alive wait that follows the
    # answer ends later (3 s), and must then re-arm, not close. A head begun
    # early in a keep-alive wait has a nearer deadline than the wait's: the
    # timer must be brought forward for it.
    srv = start_omnigate("--head-timeout", "1s", "--idle-timeout", "3s")
    _, dt = idle_close(srv, 2.0, 2.5)  # open past the stale head deadline
    check(2.9 <= dt < 4.0, dt)
    c2 = Conn(srv.port)
    c2.send(GET)
    check(c2.response()[0] == 200)
    # Idle past the stale head deadline (1 s), so the timer fired early once
    # and is now armed for the wait's end (3 s), 1.8 s after the head below
    # begins.
    time.sleep(1.2)
    c2.send(GET.split(b"\r\n")[0] + b"\r\n")  # a head begun, left unfinished
    t1 = time.time()
    check(c2.response()[0] == 408, "an unfinished head is answered 408")
    dt = time.time() - t1
    check(0.8 <= dt < 1.5, "the head got its own second, no more: %.2f s" % dt)


def hold_body(port, put):
    """A connection whose request body (a PUT /v1/o of 100 bytes) is still
    arriving: a request being read, which is never closed to make room for a
    new connection (idle and mid-head ones are: test_conn_pressure.py). 100
    Continue says the server has read and admitted the head."""
    c = Conn(port)
    c.send(put + b"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n")
    check(c.response()[0] == 100)
    c.send(b"x" * 10)
    return c


def test_max_connections():
    srv, put = start_body_sink("--max-connections", "5")
    held = [hold_body(srv.port, put) for _ in range(5)]
    t0 = time.time()
    extra = Conn(srv.port)
    out = b""
    extra.s.settimeout(2)
    while True:
        try:
            chunk = extra.s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        out += chunk
    check(time.time() - t0 < 1.0, "the refused connection was not closed promptly")
    check(status_of(out) == 503, out)
    head, raw_body = out.split(b"\r\n\r\n", 1)
    check(b"\r\nContent-Length: %d\r\n" % len(raw_body) in head + b"\r\n",
          "declared length is the body's: %r" % out)
    body = json.loads(raw_body)
    check(body["error"] == "busy", body)
    check(b"Retry-After:" in out)
    # the held ones still work; after one closes there is room again
    held[0].send(b"x" * 90)
    check(held[0].response()[0] == 201)
    held.pop().close()
    deadline = time.time() + 3
    ok = False
    while time.time() < deadline and not ok:
        c = Conn(srv.port)
        c.send(GET)
        try:
            ok = c.response()[0] == 200
        except (EOFError, ConnectionResetError):
            pass
        c.close()
        time.sleep(0.05)
    check(ok, "no room after a connection closed")
    st, _, text = http("GET", srv.admin_url + "/metrics")
    check(metric_value(text.decode(), "connections_refused_total") >= 1)


def open_files_limit(pid):
    """(soft, hard) RLIMIT_NOFILE of a running process."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open files limit for %d" % pid)


def test_soft_fd_limit_raised_to_the_hard_one():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        with open("/proc/sys/fs/nr_open") as f:
            hard = int(f.read())
    srv = start_omnigate(nofile=(min(256, hard), hard))
    check(open_files_limit(srv.proc.pid)[0] == hard, open_files_limit(srv.proc.pid))


def test_connections_over_the_fd_room_get_503_not_a_reset():
    # 200 descriptors: 64 + 2 workers x (4 + 3 services x pool 2) = 84 kept back
    srv, put = start_body_sink("--max-connections", "100000", nofile=(200, 200))
    room = 200 - 84
    check(any(l.get("event") == "fd_limit" and "beyond %d " % room in l.get("msg", "")
              for l in srv.log_json()), srv.log_lines()[-5:])
    held = [hold_body(srv.port, put) for _ in range(room)]
    extra = Conn(srv.port)
    st, h, body = extra.response()
    check(st == 503 and json.loads(body)["error"] == "busy", (st, body))
    held[0].send(b"x" * 90)
    check(held[0].response()[0] == 201, "held connections keep working")
    for c in held + [extra]:
        c.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_no_fd_leak_after_10000_connections():
    srv = start_omnigate("--head-timeout", "1s", "--idle-timeout", "1s")
    pid = srv.proc.pid
    c = Conn(srv.port)
    c.send(GET)
    c.response()
    c.close()
    time.sleep(0.3)
    before = fd_count(pid)
    pending = []
    for i in range(10000):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        k = i % 5
        if k == 0:      # request, keep-alive, client closes
            s.sendall(GET)
            s.recv(4096)
            s.close()
        elif k == 1:    # connect and close at once
            s.close()
        elif k == 2:    # partial head, client goes away
            s.sendall(b"GET /healthz HT")
            s.close()
        elif k == 3:    # Connection: close, the server closes
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            s.recv(4096)
            s.close()
        else:           # left open: idle/head timeouts close them (a few hundred)
            if i >= 9000:  # late, so they are still open when counted
                pending.append(s)
            else:
                s.close()
    time.sleep(0.2)
    check(fd_count(pid) > before, "idle connections should hold descriptors for now")
    deadline = time.time() + 6
    while time.time() < deadline and fd_count(pid) != before:
        time.sleep(0.1)
    for s in pending:
        s.close()
    check(fd_count(pid) == before, "fds before %d, after %d" % (before, fd_count(pid)))
    c = Conn(srv.port)
    c.send(GET)
    check(c.response()[0] == 200)


if __name__ == "__main__":
    run_tests(globals())
