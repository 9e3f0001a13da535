"""perflib — what the performance tools share: free ports, the server stacks
(micronode, macronode) started from a chosen build directory on loopback and
stopped by PID, wrk runs that print one JSON summary line, and /proc readings
(CPU seconds, peak RSS, open FDs) of the server processes.

Used by perf.py (make perf, scripts/perf-gate), budgets.py (make check),
soak.py and profile.sh. Runs under /usr/bin/python3 (Debian's packages).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PERF_DIR = os.path.join(ROOT, "testing", "performance")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Scopes a benchmark token carries: every read route and the writes.
BENCH_SCOPES = "view.read,feed.read,index.read,search.read,media.read,object.read,object.write"


def unreached_rate(omnigate):
    """Arguments that keep the instance rate bucket on (its cost is measured,
    as in the default configuration) at a rate no benchmark reaches, so a run
    measures what is served rather than 429s: 1 000 000/s, burst 1 000 000.
    [] for a build older than the rate limit (a perf-gate base)."""
    out = subprocess.run([omnigate, "--help"], capture_output=True, text=True).stdout
    if not re.search(r"^  --rate ", out, re.M):
        return []
    return ["--rate", "1000000/s", "--rate-burst", "1000000"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc=None, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s before port %d opened" % (proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def git_commit(path=ROOT):
    r = subprocess.run(["git", "-C", path, "rev-parse", "--short=12", "HEAD"],
                       capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (r.stdout.strip() or "unknown") + ("+dirty" if dirty else "")


def save_result(res, path, publish=None):
    """Writes a benchmark's result to `path` (JSON) and, with `publish`
    (a name), copies it to docs/perf/<publish>.json for render-docs.py."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    if publish:
        shutil.copy(path, os.path.join(ROOT, "docs", "perf", publish + ".json"))


# --- /proc readings --------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def peak_rss_kib(pid):
    return status_kib(pid, "VmHWM")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# --- metrics ---------------------------------------------------------------

# Label values may hold braces (route="/v1/view/{name}") and escaped quotes.
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')


def scrape(admin_port, timeout=5):
    """Prometheus text from the admin listener as {name: [(labels, value)]}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=timeout) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def metric_sum(samples, name, **want):
    total = 0.0
    for labels, v in samples.get(name, []):
        if all(labels.get(k) == v2 for k, v2 in want.items()):
            total += v
    return total


SHED_REASONS = ("busy", "quota", "degraded")


def shed_count(samples):
    return sum(metric_sum(samples, "rejected_total", reason=r) for r in SHED_REASONS)


# --- server stacks -----------------------------------------------------------

class Stack:
    """A running omnigate (micronode, or macronode with three reference
    services) built from `build`. Use as a context manager; .url, .admin,
    .pids (omnigate first), .token(), .close()."""

    def __init__(self, build, profile="micronode", workers=1, extra=(), log_level="warn",
                 sub_extra=None):
        self.build = os.path.abspath(build)
        self.sub_extra = sub_extra or {}  # macronode: role -> extra substrate arguments
        self.profile = profile
        self.workers = workers
        self.tmp = tempfile.mkdtemp(prefix="og-perf-")
        self.procs = []
        self.keys = os.path.join(self.tmp, "keys")
        fd = os.open(self.keys, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"bench = %s\n" % os.urandom(32).hex().encode())
        os.close(fd)
        try:
            self._start(extra, log_level)
        except Exception:
            self.close()
            raise

    def _spawn(self, args, name):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT, preexec_fn=pin(SERVER_CPUS))
        self.procs.append(p)
        return p

    def _start(self, extra, log_level):
        og = os.path.join(self.build, "omnigate")
        self.port, self.admin = free_port(), free_port()
        args = [og, "--bind", "127.0.0.1:%d" % self.port, "--admin", "127.0.0.1:%d" % self.admin,
                "--workers", str(self.workers), "--log-level", log_level, "--root-keys", self.keys]
        args += unreached_rate(og)  # every scenario: bucket on, never reached
        if self.profile == "micronode":
            args.append("--demo")
        else:
            addrs = {}
            for role in ("index", "storage", "mailbox"):
                port = free_port()
                p = self._spawn([os.path.join(self.build, "omnigate-substrate"), "--role", role,
                                 "--listen", "127.0.0.1:%d" % port,
                                 "--admin", "127.0.0.1:%d" % free_port()]
                                + list(self.sub_extra.get(role, ())), role)
                wait_port(port, p)
                addrs[role] = "oap://127.0.0.1:%d" % port
            subprocess.run([og, "seed"] + sum((["--" + r, a] for r, a in addrs.items()), []),
                           check=True, capture_output=True, cwd=ROOT)
            for r, a in addrs.items():
                args += ["--" + r, a]
        # omnigate goes first in pids: it is the process whose RSS is reported.
        p = self._spawn(args + list(extra), "omnigate")
        self.procs.insert(0, self.procs.pop())
        wait_port(self.port, p)
        wait_port(self.admin, p)
        self._wait_ready()

    def _wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.admin, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("omnigate never became ready")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def pids(self):
        return [p.pid for p in self.procs]

    def token(self, scopes=BENCH_SCOPES, tenant="demo"):
        r = subprocess.run([os.path.join(self.build, "omnigate"), "mint", "--root-keys", self.keys,
                            "--key-id", "bench", "--tenant", tenant, "--scope", scopes, "--ttl", "1h"],
                           check=True, capture_output=True, text=True)
        return r.stdout.strip()

    def cpu_seconds(self):
        return sum(cpu_seconds(p) for p in self.pids)

    def object_of(self, name, token):
        """(address, size) of a media name, from its strong ETag."""
        req = urllib.request.Request("%s/v1/media/%s" % (self.url, name), method="HEAD",
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.headers["ETag"].strip('"'), int(r.headers["Content-Length"])

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- wrk -------------------------------------------------------------------

# With two or more CPUs the servers of a stack run on CPU 0 and the load
# generator on the rest, so the two do not take turns on one core (which
# doubled the run-to-run spread on the 2-core reference machine). Both
# builds of a gate are pinned alike. OG_PERF_PIN=0 turns it off.
if (os.cpu_count() or 1) >= 2 and os.environ.get("OG_PERF_PIN", "1") != "0":
    SERVER_CPUS = {0}
    LOAD_CPUS = set(range(1, os.cpu_count()))
else:
    SERVER_CPUS = LOAD_CPUS = None


def pin(cpus):
    """A preexec_fn that pins the child to `cpus` (None: no pinning)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def wrk(url, script, seconds, conns, env=None, args=(), headers=(), threads=1):
    """One wrk run with a Lua script whose done() prints a JSON line; returns it as a dict."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%gs" % seconds, "--latency",
           "-s", os.path.join(PERF_DIR, script)]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    if args:
        cmd += ["--"] + [str(a) for a in args]
    full_env = dict(os.environ, LUA_PATH=PERF_DIR + "/?.lua;;", **(env or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=ROOT,
                       timeout=seconds + 60, preexec_fn=pin(LOAD_CPUS))
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("wrk printed no summary: %s %s" % (r.stdout[-500:], r.stderr[-500:]))
