#!/usr/bin/env python3
"""Overload: goodput, shedding and latency per class at 1x, 2x and 4x the
sustainable rate (testing/performance/overload.sh runs this).

Capacity is made known: a macronode whose index answers every request after
LATENCY ms, and inflight_max SLOTS, so omnigate can serve SLOTS / LATENCY
searches per second. An open-loop client (asyncio, keep-alive connections,
requests started on a fixed schedule whatever the answers) offers a mix of
classes — anonymous (allowed to search by the policy), authed, internal —
at multiples of that rate. The instance rate bucket is on but never reached
(1 000 000/s): the run measures the queues, not 429s.

Reported per level and class: offered req/s, goodput (200s per second),
shed share (429/503 of what was offered), p50/p99 of admitted requests
(from send to the last byte). Targets (DESIGN §8, issue 13): goodput at 4x
at least 90 % of the peak, and admitted p99 within queue_wait plus the
unloaded p99. The JSON goes to build/perf/overload.json.
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib  # noqa: E402

LATENCY_MS = 40
SLOTS = 8
QUEUE_WAIT_MS = 1000
MIX = (("anon", 0.5), ("authed", 0.35), ("internal", 0.15))
PATH = "/v1/search?q=user-0&limit=2"
POLICY = os.path.join(perflib.ROOT, "testing", "policy", "tenant-feed-deny.json")


class Client:
    """Keep-alive connections for one class; a request takes an idle one or
    opens another."""

    def __init__(self, port, token):
        self.port, self.idle = port, []
        auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
        self.req = b"GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\n" % (PATH.encode(), auth)

    async def one(self):
        conn = self.idle.pop() if self.idle else await asyncio.open_connection("127.0.0.1", self.port)
        r, w = conn
        t0 = time.monotonic()
        try:
            w.write(self.req)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            status = int(head.split(b" ", 2)[1])
            n, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.lower() == b"content-length":
                    n = int(v)
                elif k.lower() == b"connection" and v.strip().lower() == b"close":
                    close = True
            await asyncio.wait_for(r.readexactly(n), 10)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            w.close()
            return "error", time.monotonic() - t0
        if close:
            w.close()
        else:
            self.idle.append(conn)
        return status, time.monotonic() - t0


async def offer(clients, rate, seconds):
    """Start requests on schedule (open loop) for `seconds`; returns
    [(class, status, latency s)]."""
    out, tasks = [], []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def run(klass):
        st, lat = await clients[klass].one()
        out.append((klass, st, lat))

    async def schedule(klass, share):
        interval = 1.0 / (rate * share)
        i = 0
        while True:
            due = start + i * interval
            if due - start >= seconds:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            tasks.append(asyncio.ensure_future(run(klass)))
            i += 1

    await asyncio.gather(*(schedule(k, s) for k, s in MIX))
    await asyncio.gather(*tasks)
    return out


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summarize(results, rate, seconds):
    rows = {}
    for klass, share in MIX:
        mine = [(st, lat) for k, st, lat in results if k == klass]
        ok = [lat for st, lat in mine if st == 200]
        shed = sum(1 for st, _ in mine if st in (429, 503))
        errors = sum(1 for st, _ in mine if st not in (200, 429, 503))
        rows[klass] = {"offered_rps": rate * share, "goodput_rps": len(ok) / seconds,
                       "shed_share": shed / max(1, len(mine)), "errors": errors,
                       "p50_ms": 1000 * pct(ok, 0.50), "p99_ms": 1000 * pct(ok, 0.99)}
    ok_all = [lat for _, st, lat in results if st == 200]
    rows["all"] = {"offered_rps": rate, "goodput_rps": len(ok_all) / seconds,
                   "shed_share": sum(1 for _, st, _ in results if st in (429, 503)) / max(1, len(results)),
                   "errors": sum(1 for _, st, _ in results if st not in (200, 429, 503)),
                   "p50_ms": 1000 * pct(ok_all, 0.50), "p99_ms": 1000 * pct(ok_all, 0.99)}
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(perflib.ROOT, "build"))
    p.add_argument("--seconds", type=float, default=8.0, help="per level")
    p.add_argument("--levels", default="1,2,4", help="multiples of the sustainable rate")
    p.add_argument("--out", default=os.path.join(perflib.ROOT, "build", "perf", "overload.json"))
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    capacity = SLOTS * 1000.0 / LATENCY_MS
    extra = ["--inflight-max", str(SLOTS), "--queue-wait", "%dms" % QUEUE_WAIT_MS,
             "--policy-file", POLICY, "--internal-scopes", "mailbox.write"]
    with perflib.Stack(a.build, "macronode", workers=1, extra=extra,
                       sub_extra={"index": ["--latency-ms", str(LATENCY_MS)]}) as st:
        tokens = {"anon": "", "authed": st.token("search.read"),
                  "internal": st.token("search.read,mailbox.write")}
        clients = {k: Client(st.port, t) for k, t in tokens.items()}
        report = {"capacity_rps": capacity, "latency_ms": LATENCY_MS, "slots": SLOTS,
                  "queue_wait_ms": QUEUE_WAIT_MS, "seconds": a.seconds, "levels": {}}
        # Unloaded: a quarter of capacity.
        res = asyncio.run(offer(clients, capacity / 4, a.seconds / 2))
        report["unloaded"] = summarize(res, capacity / 4, a.seconds / 2)["all"]
        for m in [float(x) for x in a.levels.split(",")]:
            clients = {k: Client(st.port, t) for k, t in tokens.items()}
            res = asyncio.run(offer(clients, capacity * m, a.seconds))
            report["levels"]["%gx" % m] = summarize(res, capacity * m, a.seconds)
            time.sleep(1.5)  # let queues drain between levels
    peak = max(r["all"]["goodput_rps"] for r in report["levels"].values())
    worst = report["levels"]["%gx" % max(float(x) for x in a.levels.split(","))]["all"]
    bound = QUEUE_WAIT_MS + report["unloaded"]["p99_ms"]
    report["verdict"] = {"goodput_at_max_vs_peak": worst["goodput_rps"] / peak,
                         "p99_bound_ms": bound,
                         "p99_max_ms": max(r["all"]["p99_ms"] for r in report["levels"].values())}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print("capacity %.0f req/s (%d slots x %d ms); unloaded p99 %.1f ms; queue_wait %d ms"
          % (capacity, SLOTS, LATENCY_MS, report["unloaded"]["p99_ms"], QUEUE_WAIT_MS))
    print("| load | class | offered req/s | goodput req/s | shed | errors | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for lvl, rows in report["levels"].items():
        for k in ("anon", "authed", "internal", "all"):
            r = rows[k]
            print("| %s | %s | %.0f | %.0f | %.1f %% | %d | %.1f | %.1f |"
                  % (lvl, k, r["offered_rps"], r["goodput_rps"], 100 * r["shed_share"], r["errors"],
                     r["p50_ms"], r["p99_ms"]))
    v = report["verdict"]
    print("goodput at the highest load: %.0f %% of peak (target >= 90 %%); p99 of admitted %.0f ms "
          "(bound %.0f ms)" % (100 * v["goodput_at_max_vs_peak"], v["p99_max_ms"], v["p99_bound_ms"]))


if __name__ == "__main__":
    main()
