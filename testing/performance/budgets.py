#!/usr/bin/python3
"""budgets — instructions and allocations per request, held to budgets in
make check (DESIGN §11).

  budgets.py [--check] [--build DIR] [--out DIR] [--requests N] [--top N]
      Measures every item, writes OUT/instructions.json (default build/perf;
      perf.py attaches it to its results), prints a table and exits 1 when an
      item is more than the tolerance (2 %) over its budget, or oap_decode
      allocates at all. --top N also prints each server item's N heaviest
      functions (inclusive).
  budgets.py --measure ...
      The same, but never fails (scripts/perf).
  budgets.py --update --reason "why" [--build DIR]
      Measures and rewrites baselines/budgets.json with the new numbers and
      the reason; the commit that carries it says the same reason.
  budgets.py --hydration [--build DIR] [--base DIR] [--json FILE] [--title T]
      Only the hydration items (view, feed, range_64k) and the hydration mix
      (HYDRATION_MIX of views and feeds), for DIR and, with --base, for a
      second build as "before"; --json writes both in the shape
      docs/perf/*-before-after.json has (render-docs.py). Never fails on a
      budget. testing/performance/callgrind-hydration.sh runs this.

Everything runs under valgrind's callgrind, which counts the instructions a
program executes (Ir): counts repeat from run to run and do not depend on
what else the machine does (this VM has no hardware counters; callgrind
needs none). Valgrind does not emulate AVX-512, so under callgrind BLAKE3
takes its AVX2 path even on a host with AVX-512: the same counts on every
x86-64 machine with AVX2, whatever the production path there is.

  healthz, view, feed, range_64k, range_64k_verify   (per request)
      range_64k is a verified range as a hot object's ranges are served:
      its groups from the verified group cache (the same range each time).
      range_64k_verify sends Cache-Control: no-cache, so every request
      goes to storage (has, proof, get) and hashes its two 64 KiB groups.
      The real server, DIR/omnigate --demo --workers 1, under callgrind. For
      each item in turn: 16 warm-up requests, zero the counters
      (callgrind_control -z), REQUESTS requests on one keep-alive connection
      (http.client), dump (callgrind_control -d); per request = dump / REQUESTS.
  capability_cached, capability_full   (per check)
      DIR/bench/authz_bench: cap_cache_verify with a warm cache (what a
      request pays) and with a miss every time (BLAKE3 of the token, lookup,
      base64, parse, HMAC chain, caveats, insert).
  oap_decode   (per frame)
      DIR/bench/oap_bench decode: a control and a 64 KiB DATA frame through
      the decoder, whole and (one in a hundred) straddling two reads. Must
      never allocate.
  The drivers run at two iteration counts; per unit = difference of the two
  counts' totals / difference of the units done, so start-up cancels.

Allocations: calls to malloc, calloc, realloc, posix_memalign, aligned_alloc,
memalign and valloc as callgrind records them on its call arcs (`calls=`
lines), from callers that are not allocator functions themselves (glibc's
realloc(NULL, n) calls malloc inside: one allocation, not two). The arcs are
exact counts, so one run gives both numbers, with no preload library or
second tool; calls through libuv's, OpenSSL's or jansson's wrappers are seen
at the malloc they reach.

Instructions: everything except the allocator's own (the inclusive cost of
the arcs into malloc, free and the others above). What glibc's malloc
executes depends on the heap's history, which differs from process to
process (±1 % of a view); the number of allocations is budgeted instead,
exactly. instructions.json also gives the allocator's share (alloc_ir).

What still moves between runs: server items by up to ±0.3 % (event-loop
wake-ups that depend on timing, jansson's random hash seed), the drivers by
±0.05 %; allocations not at all. Each is far inside the 2 % tolerance.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib  # noqa: E402

BASELINE = os.path.join(perflib.PERF_DIR, "baselines", "budgets.json")
TOLERANCE = 0.02
REQUESTS = 400  # per server item

ALLOC_FNS = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
             "valloc"}
ALLOCATOR = ALLOC_FNS | {"free"}

CALLGRIND = ["valgrind", "--tool=callgrind", "--dump-instr=no", "--dump-line=no",
             "--compress-strings=no", "--compress-pos=no"]
# Work that the clock drives rather than the requests is left out of the
# server's counts, so that a slower run (a loaded machine) does not count
# more of it:
#   cap_check_token   the full capability verification, which the worker's
#                     cache repeats every CAP_CACHE_TTL_S seconds of wall
#                     time (measured on its own as capability_full);
#   http_ctx_date_line  the Date line, rebuilt (gmtime_r, strftime) on the first
#                     request of each second; a few instructions otherwise.
# --toggle-collect flips a thread's collection on entry to a function and
# back at its return, and makes collection start off: the toggles at each
# thread's root (main, start_thread) turn it on for the whole run. An idle
# server executes a few hundred instructions in 10 s: no timer runs.
SERVER_TOGGLES = ["--toggle-collect=" + f
                  for f in ("main", "start_thread", "cap_check_token", "http_ctx_date_line")]

# One path per server item, so every run sends the same requests.
VIEW_PATH = "/v1/view/article-007"  # the article, its author (index), its comments (mailbox)
FEED_PATH = "/v1/feed/user-007?limit=3"
MEDIA = "clip-4"
RANGE_SPAN = 65536
SERVER_ITEMS = ("healthz", "view", "feed", "range_64k", "range_64k_verify")
# A hydration request, as the load suite's hydration mix sends them (about
# 80 % views, 20 % feeds: hydration.lua); a range is reported beside it.
HYDRATION_MIX = {"view": 0.8, "feed": 0.2}
HYDRATION_ITEMS = ("view", "feed", "range_64k")

# Driver items: binary, mode, two counts, units done by a count.
BENCHES = {
    "capability_cached": ("authz_bench", "cached", (2000, 6000), lambda n: n),
    "capability_full": ("authz_bench", "full", (200, 600), lambda n: n),
    "oap_decode": ("oap_bench", "decode", (1000, 3000), lambda n: 2 * (n + n // 100)),
}
ITEMS = SERVER_ITEMS + tuple(BENCHES)
PER = dict({k: "request" for k in SERVER_ITEMS}, capability_cached="check",
           capability_full="check", oap_decode="frame")
MUST_NOT_ALLOCATE = ("oap_decode",)

# The per-worker memo of view renderings picks its slots with a per-thread
# random SipHash key. In a rare run two keys of one item share a slot and
# miss on every request, which only ever adds work;
# so a server item over budget is measured again in a fresh server (new
# keys), up to RETRIES times, and its lowest count stands. A real regression
# is over budget every time.
RETRIES = 2

UPDATE_HINT = """\
To change the budgets on purpose:
    testing/performance/budgets.py --update --reason "why"
and commit testing/performance/baselines/budgets.json with that reason in the commit message."""


# --- callgrind -----------------------------------------------------------------

_NAME = re.compile(r"^(?:\((\d+)\)\s*)?(.*?)(?:'\d+)?$")


def parse_callgrind(path):
    """{"ir", "allocs", "alloc_ir"} of one callgrind output file: Ir without
    the allocator's, allocation calls, the allocator's Ir."""
    total, allocs, alloc_ir, fn, cfn, arc = None, 0, 0, None, None, False
    names = {}

    def name(v):  # "name", or compressed: "(id) name" once, then "(id)"
        m = _NAME.match(v.strip())
        if m.group(1) and m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1)) if m.group(1) else m.group(2)

    with open(path) as f:
        for line in f:
            if arc:  # the line after calls=: position, inclusive cost of the calls
                arc = False
                if cfn in ALLOCATOR and fn not in ALLOCATOR:
                    alloc_ir += int(line.split()[1])
            elif line.startswith("fn="):
                fn = name(line[3:])
            elif line.startswith("cfn="):
                cfn = name(line[4:])
            elif line.startswith("calls="):
                arc = True
                if cfn in ALLOC_FNS and fn not in ALLOCATOR:
                    allocs += int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")) and total is None:
                total = int(line.split()[1])
    if total is None:
        raise RuntimeError("no totals in %s" % path)
    return {"ir": total - alloc_ir, "allocs": allocs, "alloc_ir": alloc_ir}


def per(a, b, units):
    """(b - a) / units for each count."""
    return {k: (b[k] - a.get(k, 0)) / units for k in b}


def top_functions(path, n):
    """callgrind_annotate's n heaviest functions, inclusive, one line each,
    without the roots that hold everything (thread start, event loop)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--auto=no", "--threshold=100",
                          path],
                         capture_output=True, text=True, cwd=perflib.ROOT).stdout
    rows = [(float(m.group(1)), line) for line in out.splitlines()
            for m in [re.match(r"^ *[\d,]+ +\( *([\d.]+)%\)", line)]
            if m and line.endswith("]") and "???:0x" not in line]
    return [line[:120] for share, line in rows if share < 99.5][:n]


# --- the server ----------------------------------------------------------------

class CallgrindStack(perflib.Stack):
    """A micronode whose omnigate runs under callgrind."""

    def _spawn(self, args, name):
        if name == "omnigate":
            args = CALLGRIND + SERVER_TOGGLES + [
                "--callgrind-out-file=" + os.path.join(self.tmp, "cg.out")] + args
        return super()._spawn(args, name)

    def control(self, flag):
        r = subprocess.run(["callgrind_control", flag, str(self.pids[0])],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("callgrind_control %s: %s" % (flag, r.stdout + r.stderr))

    def dump(self):
        """Dump the counts since the last zero (which zeroes them again); the
        new file's path."""
        before = set(os.listdir(self.tmp))
        self.control("-d")
        deadline = time.time() + 60
        while time.time() < deadline:
            new = [f for f in set(os.listdir(self.tmp)) - before if f.startswith("cg.out.")]
            if new:
                return os.path.join(self.tmp, new[0])
            time.sleep(0.05)
        raise RuntimeError("callgrind wrote no dump")

    def client(self):
        """One keep-alive connection whose receive buffer holds a whole 64 KiB
        answer, so the server's writes need not wait for the reader."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(120)
        s.connect(("127.0.0.1", self.port))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.sock = s
        return conn


def request_of(item, ctx):
    """(path, headers, expected status) of the requests of a server item."""
    auth = {"Authorization": "Bearer " + ctx["token"]}
    if item == "healthz":
        return "/healthz", {}, 200
    if item == "view":
        return VIEW_PATH, auth, 200
    if item == "feed":
        return FEED_PATH, auth, 200
    # 64 KiB from a third into the object: off chunk boundaries, like most
    # ranges (so it spans two 64 KiB groups).
    first = ctx["size"] // 3
    h = dict(auth, Range="bytes=%d-%d" % (first, first + RANGE_SPAN - 1))
    if item == "range_64k_verify":
        h["Cache-Control"] = "no-cache"
    return "/v1/o/" + ctx["addr"], h, 206


def send(conn, item, ctx, n):
    path, headers, want = request_of(item, ctx)
    for _ in range(n):
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != want:
            raise RuntimeError("%s: GET %s answered %d, expected %d" % (item, path, r.status, want))


def measure_server(build, n, items=SERVER_ITEMS, top=0):
    """{item: counts per request} from one fresh server."""
    out = {}
    with CallgrindStack(build, workers=1, log_level="warn") as st:
        ctx = {"token": st.token()}
        ctx["addr"], ctx["size"] = st.object_of(MEDIA, ctx["token"])
        conn = st.client()
        for item in items:
            send(conn, item, ctx, 16)  # warm-up: caches, memos, buffers
            st.control("-z")
            send(conn, item, ctx, n)
            path = st.dump()
            out[item] = per({}, parse_callgrind(path), n)
            if top:
                print("top functions, inclusive, %s (%d requests):" % (item, n))
                print("\n".join("  " + r for r in top_functions(path, top)))
        conn.close()
    return out


# --- the drivers ---------------------------------------------------------------

def measure_bench(build, item):
    """Counts per unit of a driver item: two iteration counts, the difference."""
    binary, mode, counts, units = BENCHES[item]
    exe = os.path.join(build, "bench", binary)
    if not os.access(exe, os.X_OK):
        raise RuntimeError("%s is missing: make BUILD=%s %s" % (exe, os.path.relpath(build), exe))
    got = []
    with tempfile.TemporaryDirectory(prefix="og-budget-") as tmp:
        for n in counts:
            out = os.path.join(tmp, "cg.%d" % n)
            r = subprocess.run(CALLGRIND + ["--callgrind-out-file=" + out, exe, mode, str(n)],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError("%s %s %d failed: %s" % (exe, mode, n, (r.stdout + r.stderr)[-500:]))
            got.append(parse_callgrind(out))
    return per(got[0], got[1], units(counts[1]) - units(counts[0]))


def measure_all(build, n, top=0, server_runs=1):
    """{item: counts per unit}; server items the lowest of server_runs servers.
    The drivers run beside the server (its client mostly waits)."""
    measured = {}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        benches = {item: pool.submit(measure_bench, build, item) for item in BENCHES}
        for _ in range(server_runs):
            for k, v in measure_server(build, n, top=top).items():
                measured[k] = min(measured.get(k, v), v, key=lambda c: c["ir"])
        for item, fut in benches.items():
            measured[item] = fut.result()
    return measured


# --- hydration -----------------------------------------------------------------

def hydration_ir(m):
    """Instructions per hydration request of measured items m (HYDRATION_MIX)."""
    return sum(w * m[k]["ir"] for k, w in HYDRATION_MIX.items())


def hydration(a):
    """--hydration: print (and with --json write) Ir and allocations per
    request of the hydration items, for a.build and optionally a.base."""
    builds = [("head", os.path.abspath(a.build))]
    if a.base:
        builds.insert(0, ("base", os.path.abspath(a.base)))
    try:
        got = {}
        for name, build in builds:
            got[name] = {}
            for _ in range(a.runs):
                for k, v in measure_server(build, a.requests, HYDRATION_ITEMS).items():
                    got[name][k] = min(got[name].get(k, v), v, key=lambda c: c["ir"])
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print("callgrind-hydration: measurement failed: %s" % e)
        return 2
    mix = " + ".join("%g %s" % (w, k) for k, w in HYDRATION_MIX.items())
    names = {"base": "before", "head": "after" if a.base else ""}
    print("%-34s %s" % ("per request", "  ".join(
        "%22s" % ("%s Ir / allocs" % names[n]).strip() for n, _ in builds)))
    rows = [("hydration (%s)" % mix, lambda m: (hydration_ir(m), None))]
    rows += [(k, lambda m, k=k: (m[k]["ir"], m[k]["allocs"])) for k in HYDRATION_ITEMS]
    for label, f in rows:
        cells = []
        for name, _ in builds:
            ir, allocs = f(got[name])
            cells.append("%22s" % ("{:,.0f} / {}".format(ir, "-" if allocs is None else "%.2f" % allocs)))
        change = ""
        if a.base:
            change = "  %+.1f %% Ir" % (100.0 * (f(got["head"])[0] / f(got["base"])[0] - 1))
        print("%-34s %s%s" % (label, "  ".join(cells), change))
    print("Ir: instructions without the allocator's own; %d requests per item, callgrind, "
          "one worker, micronode --demo." % a.requests)
    if a.json:
        doc = {"title": a.title or "testing/performance/callgrind-hydration.sh",
               "requests": a.requests, "mix": HYDRATION_MIX,
               "instructions": {name: {k: dict(rounded(m), per="request", alloc_ir=round(m["alloc_ir"]))
                                       for k, m in got[name].items()} for name, _ in builds}}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print("wrote %s" % a.json)
    return 0


# --- budgets -------------------------------------------------------------------

def load_baseline():
    try:
        with open(BASELINE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"items": {}}


def verdict(item, m, b, tol):
    """'ok', 'OVER', 'under' (more than tol below) or 'new' (no budget)."""
    if item in MUST_NOT_ALLOCATE and m["allocs"] != 0:
        return "OVER"
    if b is None:
        return "new"
    pairs = ((m["ir"], b["ir_per_request"]), (m["allocs"], b["allocs_per_request"]))
    if any(x > limit * (1 + tol) + 1e-9 for x, limit in pairs):
        return "OVER"
    if any(x < limit * (1 - tol) - 1e-9 for x, limit in pairs):
        return "under"
    return "ok"


def change(x, limit):
    if limit == 0:
        return "" if x == 0 else "new"
    pct = 100.0 * (x - limit) / limit
    return "%+.2f%%" % pct if abs(pct) >= 0.005 else "0.00%"


def table(measured, base, verdicts, tol):
    print("%-18s %-8s %10s %10s %8s  %8s %8s %8s  %s" % (
        "item", "per", "budget Ir", "Ir", "change", "budget", "allocs", "change", "verdict"))
    for item in ITEMS:
        m, b = measured[item], base.get(item)
        bi, ba = (b["ir_per_request"], b["allocs_per_request"]) if b else (None, None)
        print("%-18s %-8s %10s %10s %8s  %8s %8.2f %8s  %s" % (
            item, PER[item], "-" if b is None else "{:,}".format(round(bi)),
            "{:,}".format(round(m["ir"])), "" if b is None else change(m["ir"], bi),
            "-" if b is None else "%.2f" % ba, m["allocs"], "" if b is None else change(m["allocs"], ba),
            verdicts[item]))
    print("Ir: instructions without the allocator's own; fails more than %g %% over budget; "
          "%s must not allocate." % (100 * tol, ", ".join(MUST_NOT_ALLOCATE)))


def rounded(m):
    return {"ir_per_request": round(m["ir"]), "allocs_per_request": round(m["allocs"], 3)}


def write_measured(out_dir, build, n, measured):
    os.makedirs(out_dir, exist_ok=True)
    doc = {"commit": perflib.git_commit(), "build": build, "requests": n,
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "note": "ir_per_request excludes the allocator's own instructions (alloc_ir)",
           "measured": {k: dict(rounded(m), per=PER[k], alloc_ir=round(m["alloc_ir"]))
                        for k, m in measured.items()}}
    with open(os.path.join(out_dir, "instructions.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def update(measured, reason, n):
    doc = {
        "tolerance": TOLERANCE,
        "updated": {"commit": perflib.git_commit(),
                    "date": time.strftime("%Y-%m-%d", time.gmtime()), "reason": reason},
        "requests_per_item": n,
        "note": "per unit (request, check, frame); ir_per_request excludes the allocator's own "
                "instructions; see testing/performance/budgets.py",
        "items": {k: dict(rounded(m), per=PER[k]) for k, m in measured.items()},
    }
    os.makedirs(os.path.dirname(BASELINE), exist_ok=True)
    with open(BASELINE, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote %s; say why in the commit message too:\n    %s" % (
        os.path.relpath(BASELINE, perflib.ROOT), reason))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="measure and judge (the default)")
    mode.add_argument("--measure", action="store_true", help="measure and print, never fail")
    mode.add_argument("--update", action="store_true", help="measure and rewrite the budgets")
    mode.add_argument("--hydration", action="store_true",
                      help="only the hydration items, optionally against --base")
    p.add_argument("--reason", help="why the budgets change (with --update)")
    p.add_argument("--build", default=os.path.join(perflib.ROOT, "build"))
    p.add_argument("--out", default=os.path.join(perflib.ROOT, "build", "perf"))
    p.add_argument("--requests", type=int, default=REQUESTS, help="per server item")
    p.add_argument("--top", type=int, default=0, metavar="N",
                   help="also print each server item's N heaviest functions (inclusive)")
    p.add_argument("--base", help="--hydration: a second build directory, reported as before")
    p.add_argument("--json", help="--hydration: write the numbers to this file")
    p.add_argument("--title", help="--hydration: the title stored with --json")
    p.add_argument("--runs", type=int, default=1,
                   help="--hydration: servers per build; each item's lowest count stands")
    a = p.parse_args()
    if a.hydration:
        return hydration(a)
    if a.update and not a.reason:
        p.error("--update needs --reason \"why\"")
    build = os.path.abspath(a.build)
    t0 = time.time()
    base = load_baseline()
    budgets, tol = base["items"], base.get("tolerance", TOLERANCE)
    try:
        # An update keeps the lower of two servers for each server item (see RETRIES).
        measured = measure_all(build, a.requests, a.top, server_runs=2 if a.update else 1)
        for _ in range(0 if a.update or a.measure else RETRIES):
            over = [k for k in SERVER_ITEMS
                    if verdict(k, measured[k], budgets.get(k), tol) == "OVER"]
            if not over:
                break
            print("over budget: %s; measuring again in a fresh server" % ", ".join(over))
            for k, v in measure_server(build, a.requests, over).items():
                measured[k] = min(measured[k], v, key=lambda c: c["ir"])
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print("budgets: measurement failed: %s" % e)
        print("budgets: 0 passed, %d failed" % len(ITEMS))
        return 2
    write_measured(a.out, build, a.requests, measured)
    if a.update:
        update(measured, a.reason, a.requests)
        return 0
    verdicts = {k: verdict(k, measured[k], budgets.get(k), tol) for k in ITEMS}
    table(measured, budgets, verdicts, tol)
    failed = [] if a.measure else [k for k, v in verdicts.items() if v in ("OVER", "new")]
    under = [k for k, v in verdicts.items() if v == "under"]
    if failed:
        print("\nover budget (or without one): %s" % ", ".join(failed))
    if under:
        print("\nmore than %g %% under budget: %s; lower the budget to keep the gain."
              % (100 * tol, ", ".join(under)))
    if failed or under:
        print(UPDATE_HINT)
    print("budgets: %d passed, %d failed (%.0f s; %s/instructions.json)" % (
        len(ITEMS) - len(failed), len(failed), time.time() - t0, os.path.relpath(a.out, perflib.ROOT)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
