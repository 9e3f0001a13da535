"""Signals on the real binary: SIGTERM/SIGINT drain an inflight request and
exit 0; SIGHUP reloads the file (a bad file keeps the running config and
shows in /readyz)."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

from harness import *
from profiles import start_body_sink
from test_http_basics import Conn, GET


def wait_log(srv, event, timeout=3.0, count=1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(1 for j in srv.log_json() if j.get("event") == event) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("no %s log line" % event)


def drain_with(sig):
    srv, put = start_body_sink("--drain-grace", "5s")
    c = Conn(srv.port)
    c.send(put + b"Content-Length: 10\r\n\r\nhello")
    time.sleep(0.2)
    t0 = time.time()
    srv.signal(sig)
    wait_log(srv, "drain")
    time.sleep(0.2)
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=1)
        s.sendall(GET)
        got = s.recv(4096)
        s.close()
        check(got == b"" or status_of(got) == 503, "new connection served while draining")
    except (ConnectionRefusedError, ConnectionResetError):
        pass
    check(srv.proc.poll() is None, "exited with a request in flight")
    c.send(b"world")
    st, h, body = c.response()
    check(st == 201 and h.get("connection") == "close", (st, h))
    srv.proc.wait(5)
    check(srv.proc.returncode == 0, srv.proc.returncode)
    check(time.time() - t0 < 5, "drain took the whole grace")


def test_sigterm_drains_inflight_request():
    drain_with(signal.SIGTERM)


def test_sigint_drains_too():
    drain_with(signal.SIGINT)


def test_drain_idle_exits_at_once():
    srv = start_omnigate("--drain-grace", "5s")
    idle = Conn(srv.port)
    idle.send(GET)
    idle.response()
    t0 = time.time()
    srv.signal(signal.SIGTERM)
    srv.proc.wait(5)
    check(srv.proc.returncode == 0 and time.time() - t0 < 2, time.time() - t0)
    check(idle.closed(1.0))


def test_drain_grace_ends_a_stuck_request():
    srv, put = start_body_sink("--drain-grace", "500ms", "--body-grace", "10s")
    c = Conn(srv.port)
    c.send(put + b"Content-Length: 10\r\n\r\nhel")
    time.sleep(0.2)
    t0 = time.time()
    srv.signal(signal.SIGTERM)
    srv.proc.wait(5)
    dt = time.time() - t0
    check(srv.proc.returncode == 0 and 0.4 <= dt < 2.0, (srv.proc.returncode, dt))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def status_with_header(port, size):
    c = Conn(port)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * size + b"\r\n\r\n")
    st = c.response()[0]
    c.close()
    return st


def readyz(srv):
    st, _, body = http("GET", srv.admin_url + "/readyz")
    return st, json.loads(body)


def test_sighup_reload():
    d = tempfile.mkdtemp()
    path = os.path.join(d, "og.ini")
    write(path, "[limits]\nheader_max = 16KiB\n")
    srv = start_omnigate("--config", path)
    check(status_with_header(srv.port, 4000) == 200)
    check(readyz(srv)[0] == 200)

    write(path, "[limits]\nheader_max = 2KiB\n")
    srv.signal(signal.SIGHUP)
    wait_log(srv, "reload")
    check(status_with_header(srv.port, 4000) == 431, "new header_max not applied")
    check(status_with_header(srv.port, 1000) == 200)

    write(path, "[limits]\nheader_max = banana\n")
    srv.signal(signal.SIGHUP)
    wait_log(srv, "reload_failed")
    failed = [j for j in srv.log_json() if j.get("event") == "reload_failed"][-1]
    check("header_max" in failed["msg"] and "banana" in failed["msg"], failed)
    check(status_with_header(srv.port, 4000) == 431, "bad reload changed the config")
    check(status_with_header(srv.port, 1000) == 200)
    st, body = readyz(srv)
    check(st == 503 and body["missing"] == ["last_reload_ok"], (st, body))

    # a key that needs a restart also fails the reload
    write(path, "[limits]\ndrain_grace = 3s\n")
    srv.signal(signal.SIGHUP)
    wait_log(srv, "reload_failed", count=2)
    check(readyz(srv)[0] == 503)

    write(path, "[limits]\nheader_max = 8KiB\n")
    srv.signal(signal.SIGHUP)
    wait_log(srv, "reload", count=2)
    check(readyz(srv) == (200, {"ready": True, "amnesia": True}), readyz(srv))
    check(status_with_header(srv.port, 4000) == 200)
    check(srv.proc.poll() is None)


def test_a_second_instance_on_a_taken_port_refuses_to_start():
    # Every worker listens with SO_REUSEPORT, which would let a second
    # omnigate (a stale one, or a typo in a unit file) bind the same port
    # and silently take a share of the connections. It must refuse instead,
    # for the service port and for the admin port alike.
    first = start_omnigate()
    for args in (["--bind", "127.0.0.1:%d" % first.port, "--admin", "127.0.0.1:%d" % free_port()],
                 ["--bind", "127.0.0.1:%d" % free_port(), "--admin", "127.0.0.1:%d" % first.admin],
                 ["--bind", "127.0.0.1:%d" % first.port, "--admin", "127.0.0.1:%d" % first.port]):
        p = subprocess.run([OMNIGATE, "--rate", "0"] + args, capture_output=True, timeout=10)
        check(p.returncode != 0, "a second instance started on %s" % args)
        check(b"cannot listen" in p.stderr and b"in use" in p.stderr, p.stderr)
    # The same address for service and admin, nothing else running: refused.
    port = free_port()
    p = subprocess.run([OMNIGATE, "--rate", "0", "--bind", "127.0.0.1:%d" % port,
                        "--admin", "127.0.0.1:%d" % port], capture_output=True, timeout=10)
    check(p.returncode != 0 and b"cannot listen" in p.stderr, p.stderr)
    # The first instance still answers every connection.
    for _ in range(20):
        c = Conn(first.port)
        c.send(GET)
        check(c.response()[0] == 200)
        c.close()


if __name__ == "__main__":
    run_tests(globals())
