"""Shared fixtures for the view and auth integration tests: the two
deployment profiles of DESIGN §2, with real processes on loopback.

    micronode  one `omnigate --demo --root-keys KEYFILE` (engines in process)
    macronode  three `omnigate-substrate` processes (index on TCP, storage on
               a Unix socket, mailbox on TCP), loaded by `omnigate seed`,
               and `omnigate --index oap://.. --storage unix:.. --mailbox
               oap://.. --root-keys KEYFILE` (no --demo)

`profile_tests(globals(), "name", fn)` registers fn(profile) once per
profile as test_name__micronode / test_name__macronode, so the same body runs
against both and the PASS lines name the profile. Processes are registered
with harness.py, which stops them after every test.
"""
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import *

TMP = tempfile.mkdtemp(prefix="og-profiles-")
ALL_SCOPES = "view.read,index.read,search.read,feed.read,media.read,object.read,object.write"
ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "macaroon_oracle.py")


def write_keyfile(name, key_id="k1", secret=None):
    """A 0600 root keys file `key_id = <64 hex>`; returns (path, secret hex)."""
    secret = secret or secrets.token_hex(32)
    path = os.path.join(TMP, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("%s = %s\n" % (key_id, secret))
    os.chmod(path, 0o600)
    return path, secret


KEYFILE, SECRET = write_keyfile("k1.keys")


def start_body_sink(*extra, **kw):
    """omnigate with the test keys, and the head of a PUT /v1/o with a
    capability: the route that reads a request body, for tests of body
    handling (a route that takes no body is refused at the head, before its
    body is read). Returns (server, head bytes without the final CRLF)."""
    srv = start_omnigate("--root-keys", KEYFILE, *extra, **kw)
    head = b"PUT /v1/o HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + mint().encode() + b"\r\n"
    return srv, head


def mint(keyfile=KEYFILE, key_id="k1", tenant="demo", scope=ALL_SCOPES, ttl="1h", route=None,
         method=None, now=None, v1=False):
    args = [OMNIGATE, "mint", "--root-keys", keyfile, "--key-id", key_id, "--tenant", tenant,
            "--scope", scope, "--ttl", ttl]
    if route:
        args += ["--route", route]
    if method:
        args += ["--method", method]
    if now is not None:
        args += ["--now", str(now)]
    if v1:
        args += ["--v1"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    check(out.returncode == 0, "mint failed: %s" % out.stderr)
    return out.stdout.strip()


def oracle_mint(secret=SECRET, key_id="k1", tenant="demo", scope=ALL_SCOPES, expires=None,
                v1=False, route=None):
    """A token minted by pymacaroons (Debian's python3-pymacaroons)."""
    args = ["/usr/bin/python3", ORACLE, "mint", "--secret", secret, "--key-id", key_id,
            "--tenant", tenant, "--scope", scope,
            "--expires", str(expires or int(time.time()) + 3600)]
    if v1:
        args.append("--v1")
    if route:
        args += ["--route", route]
    out = subprocess.run(args, capture_output=True, text=True, timeout=20)
    check(out.returncode == 0, "oracle mint failed: %s" % out.stderr)
    return out.stdout.strip()


def auth(token):
    return {"Authorization": "Bearer " + token} if token else {}


def metrics_text(url):
    st, _, body = http("GET", url + "/metrics", timeout=5)
    check(st == 200, "metrics %d" % st)
    return body.decode()


class Profile:
    """A running deployment: .name, .og (omnigate Server), .token, .subs
    (role -> substrate Server, macronode only), .storage_sock."""

    def __init__(self, name):
        self.name, self.og, self.token, self.subs, self.storage_sock = name, None, None, {}, None

    @property
    def macro(self):
        return self.name == "macronode"

    def get(self, path, token=None, headers=None, timeout=5, method="GET", body=None):
        """(status, headers, parsed JSON or raw bytes); token=None uses the
        profile's full token, token="" sends none."""
        h = dict(auth(self.token if token is None else token))
        h.update(headers or {})
        st, hd, raw_body = http(method, self.og.url + path, body=body, headers=h, timeout=timeout)
        try:
            doc = json.loads(raw_body) if raw_body else None
        except ValueError:
            doc = raw_body
        return st, hd, doc

    def metrics(self):
        return metrics_text(self.og.admin_url)

    def metric(self, name, labels=None):
        return metric_value(self.metrics(), name, labels)

    def readyz(self):
        st, _, body = http("GET", self.og.admin_url + "/readyz", timeout=3)
        return st, json.loads(body)

    def faults(self, role, **kw):
        q = urllib.parse.urlencode(kw)
        st, _, body = http("POST", self.subs[role].admin_url + "/faults?" + q, timeout=3)
        check(st == 200, "faults %s: %d %r" % (role, st, body))

    def substrate_requests(self):
        """Total OAP/1 requests answered by the three substrates."""
        total = 0.0
        for s in self.subs.values():
            total += metric_value(metrics_text(s.admin_url), "substrate_requests_total") or 0.0
        return total

    def downstream_requests(self):
        return self.metric("downstream_requests_total") or 0.0

    def start_storage(self):
        """(Re)start the storage substrate on the profile's Unix socket."""
        srv = start_substrate("storage", "--listen", "unix:" + self.storage_sock)
        deadline = time.time() + 5
        while not os.path.exists(self.storage_sock) and time.time() < deadline:
            time.sleep(0.02)
        self.subs["storage"] = srv
        return srv

    def seed(self):
        out = subprocess.run([OMNIGATE, "seed", "--index", "oap://127.0.0.1:%d" % self.subs["index"].port,
                              "--storage", "unix:" + self.storage_sock, "--mailbox",
                              "oap://127.0.0.1:%d" % self.subs["mailbox"].port],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "seed failed: %s %s" % (out.stdout, out.stderr))
        return json.loads(out.stdout)

    def wait_ready(self, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, doc = self.readyz()
            if st == 200:
                return doc
            time.sleep(0.05)
        raise AssertionError("never ready: %r" % (doc,))

    def log_text(self):
        with open(self.og.logpath, errors="replace") as f:
            return f.read()


def start_profile(name, *extra, sub_extra=None, keyfile=KEYFILE):
    """Start a profile; extra args go to omnigate, sub_extra = {role: [args]}
    to the substrates (macronode). Waits until /readyz is 200."""
    p = Profile(name)
    sub_extra = sub_extra or {}
    if name == "micronode":
        p.og = start_omnigate("--demo", "--root-keys", keyfile, *extra)
    else:
        p.storage_sock = os.path.join(TMP, "storage-%s.sock" % secrets.token_hex(4))
        p.subs["index"] = start_substrate("index", *sub_extra.get("index", []))
        p.subs["mailbox"] = start_substrate("mailbox", *sub_extra.get("mailbox", []))
        srv = start_substrate("storage", "--listen", "unix:" + p.storage_sock,
                              *sub_extra.get("storage", []))
        deadline = time.time() + 5
        while not os.path.exists(p.storage_sock) and time.time() < deadline:
            time.sleep(0.02)
        p.subs["storage"] = srv
        p.seed()
        p.og = start_omnigate("--index", "oap://127.0.0.1:%d" % p.subs["index"].port,
                              "--storage", "unix:" + p.storage_sock,
                              "--mailbox", "oap://127.0.0.1:%d" % p.subs["mailbox"].port,
                              "--root-keys", keyfile, *extra)
    p.token = mint()
    p.wait_ready()
    return p


PROFILES = ("micronode", "macronode")


def profile_tests(ns, name, fn, profiles=PROFILES):
    """Register fn(profile_name) as one test per profile."""
    for prof in profiles:
        def t(prof=prof):
            fn(prof)
        t.__name__ = "test_%s__%s" % (name, prof)
        ns[t.__name__] = t


def parallel(n, fn):
    """Run fn(i) in n threads at once; returns the list of results (or
    exceptions) in order."""
    out = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(5)
            out[i] = fn(i)
        except Exception as e:  # reported to the caller
            out[i] = e

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out


def b3_of(data):
    """The b3: address of data, by `omnigate hash -` (the official BLAKE3)."""
    out = subprocess.run([OMNIGATE, "hash", "-"], input=data, capture_output=True, timeout=10)
    check(out.returncode == 0, "hash failed: %r" % out.stderr)
    return out.stdout.decode().split()[0]


def check_error(st, doc, status, code, what=""):
    check(st == status, "%s: status %d, want %d: %r" % (what, st, status, doc))
    check(isinstance(doc, dict) and doc.get("error") == code,
          "%s: error %r, want %r" % (what, doc, code))
    check(isinstance(doc.get("corr_id"), str) and doc["corr_id"], "%s: no corr_id %r" % (what, doc))
