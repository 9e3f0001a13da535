"""Small harness for integration tests: real binaries on loopback ports,
stopped by PID; tests are plain functions named test_* run in file order.

    from harness import *
    def test_x(): ...
    if __name__ == "__main__": run_tests(globals())
"""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("OMNIGATE_BUILD", os.path.join(ROOT, "build")))
OMNIGATE = os.path.join(BUILD, "omnigate")
SUBSTRATE = os.path.join(BUILD, "omnigate-substrate")


_ports_given = set()


def free_port():
    """A port nothing listens on, never one this run handed out before: the
    kernel may give a just-closed ephemeral port twice in a row, and a
    service and its admin listener must not be told the same one."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("port %d never opened" % port)


class Server:
    """A running binary: .port, .admin, .proc, .log (stderr file path)."""

    def __init__(self, args, port, admin, proc, logpath):
        self.args, self.port, self.admin, self.proc, self.logpath = args, port, admin, proc, logpath

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d" % self.admin

    def log_lines(self):
        with open(self.logpath, "r", errors="replace") as f:
            return f.read().splitlines()

    def log_json(self):
        out = []
        for line in self.log_lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


_servers = []


def start_omnigate(*extra, env=None, workers=2, wait=True, nofile=None):
    """Start build/omnigate on free ports; extra args are appended. nofile =
    (soft, hard) sets its RLIMIT_NOFILE."""
    port, admin = free_port(), free_port()
    # Tests run with the instance rate limit off unless they set --rate
    # themselves: a suite's requests are not a client's traffic.
    rate = [] if any(str(x).startswith("--rate") for x in extra) else ["--rate", "0"]
    args = [OMNIGATE, "--bind", "127.0.0.1:%d" % port, "--admin", "127.0.0.1:%d" % admin,
            "--workers", str(workers)] + rate + list(extra)
    return _start(args, port, admin, env, wait, nofile)


def start_substrate(role, *extra, env=None, wait=True, port=None, admin=None):
    """port, admin: the ports to listen on (a restart reuses its ports);
    free ones by default."""
    port, admin = port or free_port(), admin or free_port()
    args = [SUBSTRATE, "--role", role, "--listen", "127.0.0.1:%d" % port,
            "--admin", "127.0.0.1:%d" % admin] + list(extra)
    return _start(args, port, admin, env, wait)


def _start(args, port, admin, env, wait, nofile=None):
    logpath = "%s/check-logs/srv-%d.log" % (BUILD, port)
    os.makedirs(os.path.dirname(logpath), exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGATE_")}
    if env:
        full_env.update(env)
    logf = open(logpath, "w")
    limits = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile)) if nofile else None
    proc = subprocess.Popen(args, stdout=logf, stderr=logf, env=full_env, cwd=ROOT,
                            preexec_fn=limits)
    srv = Server(args, port, admin, proc, logpath)
    _servers.append(srv)
    if wait:
        wait_port(port, proc=proc)
        wait_port(admin, proc=proc)
    return srv


def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, headers dict lowercased, body bytes); never raises on 4xx/5xx."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def raw(port, data, timeout=5.0, read_until_close=True):
    """Send raw bytes, return everything read until the peer closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not read_until_close:
                break
        return out
    finally:
        s.close()


def status_of(resp_bytes):
    line = resp_bytes.split(b"\r\n", 1)[0]
    return int(line.split()[1])


def metric_value(text, name, labels=None):
    """Sum of samples of metric `name` whose labels include `labels`."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, val = line.rpartition(" ")
        mname = head.split("{", 1)[0]
        if mname != name:
            continue
        if labels:
            if not all('%s="%s"' % (k, v) in head for k, v in labels.items()):
                continue
        total += float(val)
        found = True
    return total if found else None


PROMTOOL = "/usr/bin/promtool"  # installed by scripts/bootstrap


def promtool_check(text, what="metrics"):
    """`promtool check metrics` must accept an exposition (str or bytes):
    the format, a HELP and a TYPE for every family, the naming lints."""
    data = text.encode() if isinstance(text, str) else text
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=data, capture_output=True, timeout=10)
    check(p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
          "promtool on %s: %r %r" % (what, p.stdout, p.stderr))


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def run_tests(ns):
    names = [n for n in ns if n.startswith("test_") and callable(ns[n])]
    only = os.environ.get("ONLY")
    failed = 0
    mod = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    for n in names:
        if only and only not in n:
            continue
        t0 = time.time()
        try:
            ns[n]()
            print("PASS %s.%s (%.2fs)" % (mod, n, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s.%s" % (mod, n), flush=True)
            traceback.print_exc(file=sys.stdout)
            for s in _servers[-2:]:
                try:
                    print("--- last log lines of %s" % s.args[0])
                    print("\n".join(s.log_lines()[-15:]))
                except OSError:
                    pass
        finally:
            while _servers:
                _servers.pop().stop()
    sys.exit(1 if failed else 0)
