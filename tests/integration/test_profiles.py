"""Profiles: micronode writes nothing to disk and says so in /readyz; a
storage service with amnesia off keeps its objects across a restart and
refuses corrupt files."""
import json
import os
import signal
import subprocess
import tempfile
import time

from harness import *
from oap_client import OapClient

APP_STORAGE = 1


def test_micronode_writes_no_files():
    # Amnesia, checked rather than assumed: every open/creat/mkdir/rename
    # the process makes is traced, and none may create or write a file.
    work = tempfile.mkdtemp(prefix="og-amnesia-")
    trace = os.path.join(BUILD, "check-logs", "amnesia.strace")
    port, admin = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGATE_")}
    env.update(TMPDIR=work, HOME=work)
    log = open(os.path.join(BUILD, "check-logs", "amnesia.log"), "w")
    p = subprocess.Popen(["strace", "-f", "-qq", "-o", trace,
                          "-e", "trace=open,openat,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat",
                          OMNIGATE, "--demo", "--bind", "127.0.0.1:%d" % port,
                          "--admin", "127.0.0.1:%d" % admin, "--workers", "2"],
                         cwd=work, env=env, stdout=log, stderr=log)
    try:
        wait_port(port, timeout=20, proc=p)
        token = None
        for _ in range(100):
            with open(log.name) as f:
                for line in f:
                    if "export TOKEN=" in line:
                        token = line.split("'")[1]
            if token:
                break
            time.sleep(0.05)
        check(token, "dev token printed")
        auth = {"Authorization": "Bearer " + token}
        st, h, body = http("PUT", "http://127.0.0.1:%d/v1/o" % port, body=b"amnesia" * 1000, headers=auth)
        check(st == 201, (st, body))
        st, _, _ = http("GET", "http://127.0.0.1:%d%s" % (port, h["location"]), headers=auth)
        check(st == 200, st)
        st, _, _ = http("GET", "http://127.0.0.1:%d/v1/view/user-001" % port, headers=auth)
        check(st == 200, st)
    finally:
        # SIGTERM goes to omnigate (strace's child); strace exits after it.
        try:
            with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        for k in kids:
            os.kill(k, signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    check(os.listdir(work) == [], "files appeared in the working directory: %r" % os.listdir(work))
    written = []
    with open(trace) as f:
        for line in f:
            if "= -1" in line or "resumed" in line and "= -1" in line:
                continue
            if any(x in line for x in ("O_CREAT", "O_WRONLY", "O_RDWR", "creat(", "mkdir", "rename", "unlink")):
                if '"/dev/' in line:
                    continue
                written.append(line.strip())
    check(not written, "micronode created or wrote files: %r" % written[:5])


def _put_get(path, body):
    c = OapClient.unix(path)
    c.hello()
    code, h, _ = c.call(APP_STORAGE, {"op": "put"}, body)
    check(code in (200, 201), (code, h))
    c.close()
    return h["obj"]


def test_storage_persists_across_restart_and_verifies_on_read():
    data = tempfile.mkdtemp(prefix="og-store-")
    sock = os.path.join(tempfile.mkdtemp(prefix="og-sock-"), "s.sock")
    srv = start_substrate("storage", "--listen", "unix:" + sock, "--data-dir", data, "--no-amnesia")
    wait_path(sock)
    body = os.urandom(300000)
    addr = _put_get(sock, body)
    other = _put_get(sock, b"second object")
    srv.stop()
    files = os.listdir(data)
    check(addr[3:] in files and other[3:] in files, "objects on disk: %r" % files)
    # Corrupt one object on disk while the service is down.
    with open(os.path.join(data, other[3:]), "r+b") as f:
        f.write(b"X")
    srv = start_substrate("storage", "--listen", "unix:" + sock, "--data-dir", data, "--no-amnesia")
    wait_path(sock)
    c = OapClient.unix(sock)
    c.hello()
    code, h, got = c.call(APP_STORAGE, {"op": "get", "obj": addr})
    check(code == 200 and got == body, (code, h, len(got or b"")))
    code, h, got = c.call(APP_STORAGE, {"op": "get", "obj": other})
    check(code >= 500 and not got, "a corrupt file must not be served: %r" % ((code, h),))
    c.close()


def test_readyz_says_whether_data_is_kept_in_ram_only():
    # Micronode: every service in process, RAM only. Macronode: the data
    # lives in the services, each of which says so on its own /readyz.
    from profiles import start_profile
    for name, amnesia in (("micronode", True), ("macronode", False)):
        p = start_profile(name)
        st, body = p.readyz()
        check(st == 200 and body == {"ready": True, "amnesia": amnesia}, (name, st, body))
        for role, sub in p.subs.items():
            st, _, b = http("GET", sub.admin_url + "/readyz")
            check(json.loads(b)["amnesia"] is True, "%s runs RAM-only here: %r" % (role, b))
        p.og.stop()
        for sub in p.subs.values():
            sub.stop()


def wait_path(p, timeout=10):
    deadline = time.time() + timeout
    while not os.path.exists(p):
        check(time.time() < deadline, "socket %s never appeared" % p)
        time.sleep(0.02)


if __name__ == "__main__":
    run_tests(globals())
