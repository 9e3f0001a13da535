"""Connection pressure near max_connections: head and idle timeouts shorten
and the connections that have waited longest for a request make room for
new ones, so a slow-header flood (slowhttptest) of twice max_connections
does not lock legitimate clients out, and idle keep-alive connections go
oldest first."""
import os
import signal
import socket
import subprocess
import time

from harness import *
from test_http_basics import Conn, GET

SLOWHTTPTEST = "/usr/bin/slowhttptest"  # installed by scripts/bootstrap
MAX = 64


def metrics(srv):
    st, _, text = http("GET", srv.admin_url + "/metrics", timeout=2)
    check(st == 200, st)
    return text.decode()


def metric(text, name, **labels):
    v = metric_value(text, name, labels or None)
    return 0.0 if v is None else v


def probe(port, timeout=1.0):
    """A legitimate client: a new connection, GET /healthz. Returns (status,
    seconds); status 0 when no whole answer came within timeout."""
    t0 = time.time()
    try:
        c = Conn(port, timeout=timeout)
        try:
            c.send(GET)
            st = c.response()[0]
        finally:
            c.close()
    except (OSError, EOFError):
        st = 0
    return st, time.time() - t0


def stop_by_pid(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_slow_header_flood_at_twice_max_connections():
    # head_timeout 30 s: without pressure no flood connection would be cut
    # while this test runs, so every cut below is the pressure's doing.
    srv = start_omnigate("--max-connections", str(MAX), "--head-timeout", "30s")
    stats = os.path.join(BUILD, "check-logs", "slowhttptest-%d" % srv.port)
    # 2 x MAX slow-header connections, 128 a second, a header line each
    # second per connection; at most 20 s.
    flood = subprocess.Popen(
        [SLOWHTTPTEST, "-H", "-c", str(2 * MAX), "-r", "128", "-i", "1", "-l", "20", "-p", "3",
         "-u", "http://127.0.0.1:%d/healthz" % srv.port, "-g", "-o", stats],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Wait until the flood holds (nearly) every slot.
        deadline = time.time() + 10
        while time.time() < deadline and metric(metrics(srv), "open_connections") < MAX - 2:
            time.sleep(0.05)
        text = metrics(srv)
        check(metric(text, "open_connections") >= MAX - 2,
              "the flood never filled the slots: %s" % metric(text, "open_connections"))
        # A legitimate client, again and again while the flood lasts.
        answered, under_pressure, full, worst = 0, 0, 0, 0.0
        end = time.time() + 4
        while time.time() < end:
            text = metrics(srv)
            pressure = metric(text, "conn_pressure")
            full += metric(text, "open_connections") >= MAX
            st, dt = probe(srv.port)
            check(st == 200, "probe %d under pressure %.2f got %s after %.2fs"
                  % (answered, pressure, st, dt))
            check(dt < 1.0, "answered after %.2fs" % dt)
            answered += 1
            under_pressure += pressure > 0
            worst = max(worst, dt)
            time.sleep(0.05)
        check(under_pressure >= 10, "only %d probes ran under pressure" % under_pressure)
        check(full >= 1, "no probe ran while the flood held every slot")
        text = metrics(srv)
    finally:
        stop_by_pid(flood)
    # The flood's connections were cut, not served or left to their 30 s.
    cut = (metric(text, "connections_evicted_total", reason="head_timeout")
           + metric(text, "connections_evicted_total", reason="make_room"))
    check(cut >= MAX, "only %d flood connections cut" % cut)
    check(metric(text, "connections_evicted_total", reason="make_room") >= 1,
          "no newcomer took a waiting connection's slot")
    check(metric(text, "connections_refused_total") == 0,
          "refused %d while slow heads held slots" % metric(text, "connections_refused_total"))
    check(metric(text, "rejected_total", reason="timeout") == 0,
          "a head cut under pressure is closed, not answered 408")
    check(any(l.get("event") == "conn_pressure" for l in srv.log_json()),
          "no conn_pressure event")
    promtool_check(text, "omnigate under pressure")
    print("  %d probes, %d under pressure, %d with every slot taken, slowest %.1f ms; "
          "%d flood connections cut" % (answered, under_pressure, full, worst * 1000, cut))


def idle_conns(port, n, gap):
    conns = []
    for _ in range(n):
        c = Conn(port)
        c.send(GET)
        check(c.response()[0] == 200)
        conns.append(c)
        time.sleep(gap)
    return conns


def is_closed(c):
    """The server closed c (EOF or reset), without sending anything."""
    c.s.setblocking(False)
    try:
        data = c.s.recv(1)
        check(data == b"", "bytes on an idle connection: %r" % data)
        return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        c.s.settimeout(5)


def test_full_house_closes_idle_keep_alive_oldest_first():
    # Shortening off (minimums = the timeouts): only making room closes.
    srv = start_omnigate("--max-connections", "8", "--idle-timeout-min", "60s",
                         "--head-timeout-min", "10s", workers=1)
    held = idle_conns(srv.port, 8, 0.02)
    newcomers = []
    for i in range(3):
        # Each newcomer stays, so the next one finds the house full again.
        t0 = time.time()
        newcomers += idle_conns(srv.port, 1, 0.05)
        check(time.time() - t0 < 1.0, "newcomer %d waited" % i)
        closed = [is_closed(c) for c in held]
        check(closed == [k <= i for k in range(8)],
              "after newcomer %d, closed: %s" % (i, closed))
    for c in held[3:]:
        c.send(GET)
        check(c.response()[0] == 200, "a newer idle connection kept its slot")
    text = metrics(srv)
    check(metric(text, "connections_evicted_total", reason="make_room") == 3, text)
    check(metric(text, "connections_refused_total") == 0)


def test_idle_timeout_shortens_under_pressure_oldest_first():
    # Mark 4 of 8; idle_timeout 30 s shortens to 1 s at 8 of 8.
    srv = start_omnigate("--max-connections", "8", "--conn-pressure-high", "50",
                         "--idle-timeout", "30s", workers=1)
    t0 = time.time()
    held = idle_conns(srv.port, 8, 0.1)
    closed_at = {}
    while time.time() < t0 + 3.5:
        for i, c in enumerate(held):
            if i not in closed_at and is_closed(c):
                closed_at[i] = time.time() - t0
        time.sleep(0.02)
    # Full house: the oldest goes 1 s after its idle began. With 7 of 8 the
    # level is 3/4 and idle_timeout 8.25 s: the others stay.
    check(list(closed_at) == [0], closed_at)
    check(0.9 <= closed_at[0] < 1.6, closed_at)
    # One more connection is a full house again: the next oldest, idle for
    # longer than 1 s already, goes at once.
    extra = Conn(srv.port)
    extra.send(GET)
    check(extra.response()[0] == 200)
    deadline = time.time() + 1
    while time.time() < deadline and not is_closed(held[1]):
        time.sleep(0.02)
    check(is_closed(held[1]), "the next oldest stayed")
    check([is_closed(c) for c in held[2:]] == [False] * 6)
    text = metrics(srv)
    check(metric(text, "connections_evicted_total", reason="idle_timeout") == 2, text)


if __name__ == "__main__":
    run_tests(globals())
