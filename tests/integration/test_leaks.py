"""The real server under valgrind: a micronode with two workers serves
views, feeds, objects and errors, drains on SIGTERM and exits 0 with no
memory definitely or indirectly lost (per-thread caches included: each
worker thread releases its own before it ends)."""
import re
import signal
import time

from harness import *
from harness import _start
from profiles import KEYFILE, auth, mint

VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect"]


def test_micronode_exits_without_leaks():
    port, admin = free_port(), free_port()
    args = VALGRIND + [OMNIGATE, "--bind", "127.0.0.1:%d" % port, "--admin", "127.0.0.1:%d" % admin,
                       "--workers", "2", "--demo", "--root-keys", KEYFILE]
    srv = _start(args, port, admin, None, False)
    wait_port(port, timeout=120, proc=srv.proc)
    wait_port(admin, timeout=60, proc=srv.proc)
    h = auth(mint())
    base = "http://127.0.0.1:%d" % port
    seen = set()
    # Several connections, so both workers fill their memos and caches.
    for i in range(24):
        for path in ("/v1/view/user-007", "/v1/view/article-003", "/v1/feed/news", "/v1/view/nope", "/v1/search?q=user"):
            st, _, _ = http("GET", base + path, headers=h, timeout=60)
            seen.add((path, st))
    check(("/v1/view/user-007", 200) in seen and ("/v1/view/nope", 404) in seen, seen)
    srv.signal(signal.SIGTERM)
    srv.proc.wait(120)
    with open(srv.logpath, errors="replace") as f:
        log = f.read()
    lost = re.findall(r"(?:definitely|indirectly) lost in loss record.*", log)
    check(srv.proc.returncode == 0, "exit %s; valgrind said:\n%s" % (
        srv.proc.returncode, "\n".join([l for l in log.splitlines() if l.startswith("==")][-60:])))
    check(not lost, lost)


if __name__ == "__main__":
    run_tests(globals())
