#!/usr/bin/python3
"""Regenerates the measured tables of docs/PERFORMANCE.md from JSON results,
so the numbers in the docs are the numbers a command produced. The prose
around them stays hand-written.

A table lives between two markers in the document:

    <!-- BEGIN generated:NAME -->
    ...replaced on every run...
    <!-- END generated:NAME -->

Sources (all committed):
  suite      docs/perf/results/<scenario>.json   scripts/perf --publish
  gate-aa    docs/perf/gate-aa.json              perf.py --gate ... --json
  gate-slow  docs/perf/gate-slow.json            (a deliberate slowdown, not committed)
  budgets    testing/performance/baselines/budgets.json
  soak       docs/perf/soak.json                 soak.sh --publish
  healthz-nginx docs/perf/healthz-vs-nginx.json  healthz-vs-nginx.py --publish
  arch-before-after docs/perf/arch-before-after.json  perf-gate BASE --instructions --json
  typed-ops-before-after docs/perf/typed-ops-before-after.json
                                                 callgrind-hydration.sh --base DIR --json
  cluster-scenarios, cluster-scale docs/perf/cluster.json  cluster.sh --publish
  mailbox-redis docs/perf/mailbox.json           mailbox.sh --publish

Usage: testing/performance/render-docs.py [--check] [--doc FILE]
  --check     exit 1 if the document is not what the sources produce
  --doc FILE  another copy of the document (tests)
"""
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from budgets import HYDRATION_MIX  # noqa: E402  (the hydration mix)
import perf  # noqa: E402  (the gate's NOISE_K)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "PERFORMANCE.md")
PERF = os.path.join(ROOT, "docs", "perf")


def load(path):
    with open(path) as f:
        return json.load(f)


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def num(x, digits=0):
    if x is None:
        return "–"
    s = "{:,.{d}f}".format(x, d=digits)
    return s.replace(",", " ")


def suite():
    paths = sorted(glob.glob(os.path.join(PERF, "results", "*.json")))
    res = [load(p) for p in paths if not os.path.basename(p).startswith("instructions")]
    if not res:
        return None
    rows = []
    for r in res:
        c = r["config"]
        ir = r.get("instructions_per_request") or {}
        rows.append((r["scenario"], c["profile"], "%d / %d" % (c["workers"], c["conns"]),
                     num(r["rps"]), num(r.get("mbps"), 1) if r.get("mbps") else "–",
                     "%.2f / %.2f / %.2f" % (r["p50_ms"], r["p95_ms"], r["p99_ms"]),
                     r["errors"], "%.2f" % r["shed_pct"], num(r["cpu_us_per_req"], 1),
                     num(r["peak_rss_kib"] / 1024, 1),
                     ", ".join("%s %s" % (k, num(v)) for k, v in ir.items()) or "–"))
    commits = sorted({r["commit"] for r in res})
    secs = sorted({r["config"]["seconds"] for r in res})
    lines = table(("scenario", "profile", "workers / conns", "req/s", "MB/s", "p50 / p95 / p99 ms",
                   "errors", "shed %", "server CPU µs/req", "peak RSS MiB", "instructions/req"), rows)
    lines.append("")
    lines.append("_Commit %s, %s s per scenario, %s; from `scripts/perf --publish`._" % (
        ", ".join(commits), "/".join("%g" % s for s in secs), res[0].get("time", "")[:10]))
    return lines


def load_perf(name):
    """docs/perf/NAME.json, or None when it has not been published."""
    path = os.path.join(PERF, name + ".json")
    return load(path) if os.path.exists(path) else None


# The noise column's header says how many standard errors perf.py judges by.
NOISE_HEAD = "noise (%g SE)" % perf.NOISE_K


def pct(v, sign=True):
    """A relative change as a signed percentage."""
    return ("%+.1f %%" if sign else "%.1f %%") % (100 * v)


def gate(name):
    g = load_perf(name)
    if g is None:
        return None
    rows = []
    for sc, metric, ma, mb, change, noise, kind, limit, verdict in g["rows"]:
        f = pct if kind == "rel" else (lambda v: "%+.2f pp" % v)
        rows.append((sc, metric, num(ma, 3 if ma < 100 else 0), num(mb, 3 if mb < 100 else 0),
                     f(change), f(noise).lstrip("+"), f(limit).lstrip("+"),
                     "**%s**" % verdict if verdict != "ok" else verdict))
    lines = table(("scenario", "metric", "base median", "head median", "change", NOISE_HEAD,
                   "limit", "verdict"), rows)
    lines.append("")
    lines.append("_%s; gate verdict: **%s**._" % (g.get("title", name), "FAIL" if g["failed"] else "pass"))
    return lines


def before_after(name):
    """A gate run of two commits (with --instructions) as a before/after
    table; or, without gate rows, the instructions alone
    (callgrind-hydration.sh --base ... --json)."""
    g = load_perf(name)
    if g is None:
        return None
    rows = []
    for sc, metric, ma, mb, change, noise, kind, limit, verdict in g.get("rows", ()):
        if metric in ("rps", "cpu_us_per_req"):
            label = "%s %s" % (sc, "req/s" if metric == "rps" else "CPU µs per request")
            rows.append((label, num(ma, 0 if ma >= 100 else 1), num(mb, 0 if mb >= 100 else 1),
                         pct(change), pct(noise, sign=False)))
    ins = g.get("instructions") or {}
    b, h = ins.get("base"), ins.get("head")
    if b and h:
        def hyd(m):  # the hydration mix (HYDRATION_MIX)
            return sum(w * m[k]["ir_per_request"] for k, w in HYDRATION_MIX.items())
        mix = " + ".join("%g %s" % (w, k) for k, w in HYDRATION_MIX.items())
        items = [("instructions per hydration request (%s)" % mix, hyd(b), hyd(h))]
        for k in ("healthz", "view", "feed", "range_64k"):
            if k in b and k in h:
                items.append(("instructions per %s request" % k, b[k]["ir_per_request"],
                              h[k]["ir_per_request"]))
        for label, x, y in items:
            rows.append((label, num(x), num(y), pct(y / x - 1), "exact"))
        for k in ("view", "feed", "range_64k"):
            if "rows" not in g and k in b and k in h:
                x, y = b[k]["allocs_per_request"], h[k]["allocs_per_request"]
                rows.append(("allocations per %s request" % k, num(x), num(y),
                             "%+d" % round(y - x), "exact"))
    lines = table(("measure", "before", "after", "change", NOISE_HEAD), rows)
    lines.append("")
    if "rows" in g:
        lines.append("_%s; req/s and CPU are medians of paired rounds, instructions from callgrind "
                     "(budgets.py); gate verdict: **%s**._" % (g.get("title", name),
                                                               "FAIL" if g["failed"] else "pass"))
    else:
        lines.append("_%s; instructions (without the allocator's own) and allocations per request "
                     "from callgrind, %d requests per item._" % (g.get("title", name), g["requests"]))
    return lines


def budgets():
    path = os.path.join(ROOT, "testing", "performance", "baselines", "budgets.json")
    if not os.path.exists(path):
        return None
    b = load(path)
    items = b.get("items", b)
    rows = []
    for k, v in items.items():
        if not isinstance(v, dict):
            continue
        rows.append((k, v.get("per", "request"), num(v.get("ir_per_request")),
                     num(v.get("allocs_per_request"), 0)))
    lines = table(("item", "per", "instructions", "allocations"), rows)
    lines.append("")
    meta = b.get("updated", {})
    lines.append("_Budgets from `testing/performance/baselines/budgets.json`%s; tolerance %s %%._" % (
        (", last updated %s (%s)" % (meta.get("date", "?"), meta.get("reason", "?"))) if meta else "",
        num(100 * b.get("tolerance", 0.02), 0)))
    return lines


def soak():
    path = os.path.join(PERF, "soak.json")
    if not os.path.exists(path):
        return None
    s = load(path)
    c, rss, fds, idle = s["config"], s["rss_kib"], s["fds"], s.get("idle") or {}
    w = s.get("wrk", {})
    rows = [
        ("load", "%s s at %s req/s measured (target %s): %s requests, %s errors" % (
            num(c["seconds"]), num(s["rps"]), num(c["rate_target"]), num(s["requests"]), s["errors"])),
        ("latency p50 / p99 (hydration, media)", "; ".join(
            "%s %.2f / %.2f ms" % (k, v["p50_ms"], v["p99_ms"]) for k, v in w.items())),
        ("slow clients", "%d answered, %d clean 408" % (
            s["slow_clients"]["answered"], s["slow_clients"]["clean_408"])),
        ("RSS start → after warm-up → end (max)", "%s → %s → %s KiB (%s); bound +%s KiB after warm-up" % (
            num(rss["start"]), num(rss["warm"]), num(rss["end"]), num(rss["max"]), num(rss["bound_growth"]))),
        ("open FDs before / under load / after", "%s / %s–%s / %s" % (
            fds["before"], fds["start"], fds["max"], fds["after"])),
    ]
    if idle:
        rows.append(("idle keep-alive connections", "%s held: RSS %s → %s KiB, **%s bytes each** (bound %s)" % (
            num(idle["conns"]), num(idle["rss_kib_before"]), num(idle["rss_kib_after"]),
            num(idle["per_idle_conn_bytes"]), num(idle["max_bytes"]))))
    rows.append(("checks", ", ".join("%s %s" % kv for kv in s["checks"].items())))
    lines = table(("", "soak result"), rows)
    lines.append("")
    lines.append("_Commit %s, %s; verdict **%s**; from `testing/performance/soak.sh --publish`._" % (
        s["commit"], s.get("time", "")[:10], s["verdict"]))
    return lines


def healthz_nginx():
    r = load_perf("healthz-vs-nginx")
    if r is None:
        return None
    c, med = r["config"], r["median"]
    rows = []
    for n in ("omnigate", "nginx"):
        m = med[n]
        rows.append((n, num(m["rps"]), "%s / %s" % (num(1000 * m["p50_ms"]), num(1000 * m["p99_ms"])),
                     num(m["cpu_us_per_req"], 2)))
    rows.append(("**omnigate / nginx**", "**%.2f×**" % r["ratio"]["rps"], "",
                 "**%.2f×**" % r["ratio"]["cpu_us_per_req"]))
    if "paired_ratio" in r:
        pr = r["paired_ratio"]
        rows.append(("omnigate / nginx, paired by round", "%.2f×" % pr["rps"], "",
                     "%.2f×" % pr["cpu_us_per_req"]))
    lines = table(("server", "req/s", "p50 / p99 µs", "CPU µs per request"), rows)
    lines.append("")
    lines.append("_Medians of %d alternating rounds of %s s, %d connections, %d worker(s) each, %s, "
                 "logging %s; commit %s, %s; errors %d; from `testing/performance/healthz-vs-nginx.py "
                 "--publish`._" % (c["rounds"], num(c["seconds"]), c["conns"], c["workers"], c["wrk"],
                                   c["logging"].replace(" on both", ""), r["commit"], r["time"][:10],
                                   r["errors"]))
    return lines


def cluster_scenarios():
    r = load_perf("cluster")
    if r is None:
        return None
    rows = []
    names = (("rolling", "rolling restart, 3 replicas"), ("node_loss", "kill -9 1 of 3 storage"),
             ("slow", "1 of 3 index 200 ms late"))
    for key, label in names:
        for ph in ("before", "during", "after"):
            s = r[key]["phases"][ph]
            rows.append((label if ph == "before" else "", ph, s["requests"], s["errors"],
                         s["partial"], num(s["p50_ms"], 1), num(s["p99_ms"], 1)))
    c = r["config"]
    lines = table(("scenario", "window", "requests", "errors", "partial views", "p50 ms",
                   "p99 ms"), rows)
    nl = r["node_loss"]
    lines.append("")
    lines.append("_Paced %d req/s of views through HAProxy, 3 replicas (1 worker each), 3 nodes "
                 "per service, `%s`; before/after windows %s s, the dead or slow node held %s s. "
                 "Rolling restart: each replica out and back in %s s. Node loss: out of service "
                 "on every replica %s s after the kill, back %s s after its restart (seed "
                 "included), %d views not whole. Slow node: %d index hedges won. Commit %s, %s, "
                 "load average %.1f before; from `testing/performance/cluster.sh --publish`._"
                 % (c["rate"], c["replica_args"], num(c["window_s"]), num(c["hold_s"]),
                    " / ".join(str(x) for x in r["rolling"]["replica_out_and_back_s"]),
                    nl["out_of_service_s"], nl["back_after_restart_s"], nl["not_whole"],
                    r["slow"]["index_hedges_won"], r["commit"], r["time"][:10],
                    r["loadavg_before"]))
    return lines


def cluster_scale():
    r = load_perf("cluster")
    if r is None:
        return None
    rows = [(s["replicas"], num(s["req_per_s"], 1), s["errors"], num(s["p50_ms"], 1),
             num(s["p99_ms"], 1), num(s["cpu_s"], 2), num(s["cpu_us_per_req"], 0),
             num(1000 * s.get("idle_cpu_s_per_s", 0), 1), num(s.get("net_cpu_us_per_req"), 0))
            for s in r["scale"]]
    c = r["config"]
    lines = table(("replicas", "req/s", "errors", "p50 ms", "p99 ms", "replica CPU s",
                   "CPU µs per request", "idle CPU ms/s", "net CPU µs per request"), rows)
    lines.append("")
    lines.append("_The same paced %d req/s for %s s through HAProxy, 2 nodes per service, on %d "
                 "cores: throughput is the offered rate, not a capacity. CPU is the replicas' "
                 "utime + stime from /proc (10 ms ticks); idle is the same replicas with no "
                 "request (HAProxy's checks, endpoint probes every 250 ms, pool ticks), and net "
                 "is the CPU per request without it. Commit %s, %s; from "
                 "`testing/performance/cluster.sh --publish`._"
                 % (c["scale_rate"], num(c["scale_s"]), r["cpus"], r["commit"], r["time"][:10]))
    return lines


MAILBOX_MODES = (("micronode", "micronode (RAM)"), ("always", "macronode, `--fsync always`"),
                 ("batch", "macronode, `--fsync batch`"))


def mailbox_redis():
    r = load_perf("mailbox")
    if r is None:
        return None
    rows = []

    def ms(a, b):
        return "%.2f / %.2f" % (a, b) if a is not None and b is not None else "–"
    for key, label in MAILBOX_MODES:
        if key not in r["modes"]:
            continue
        mode = r["modes"][key]
        og, rd = mode["median"]["omnigate"], mode["median"]["redis"]
        for name, m, srv in (("omnigate", og, label), ("Redis", rd, mode["peer"])):
            rows.append(("**%s**" % name if name == "omnigate" else name,
                         srv if name == "omnigate" else "`%s`" % srv,
                         num(m["send_rps"]), ms(m["send_p50_ms"], m["send_p99_ms"]),
                         num(m["send_cpu_us"], 1), num(m["recv_msgs_per_s"]),
                         num(m["recv_cpu_us_per_msg"], 1), ms(m["lp_p50_ms"], m["lp_p99_ms"]),
                         "%d / %d %%" % (round(100 * m["send_loader_cpu"]),
                                         round(100 * m["recv_loader_cpu"])), m["errors"]))
        rows.append(("omnigate / Redis", "", "%.2f×" % (og["send_rps"] / rd["send_rps"]), "",
                     "%.2f×" % (og["send_cpu_us"] / rd["send_cpu_us"]),
                     "%.2f×" % (og["recv_msgs_per_s"] / rd["recv_msgs_per_s"]),
                     "%.2f×" % (og["recv_cpu_us_per_msg"] / rd["recv_cpu_us_per_msg"]), "", "", ""))
    c = r["config"]
    lines = table(("server", "kept as", "send req/s", "send p50 / p99 ms", "server CPU µs per send",
                   "receive+ack msg/s", "server CPU µs per message", "long-poll p50 / p99 ms",
                   "load generator CPU (send / receive)", "errors"), rows)
    lines.append("")
    lines.append("_Medians of %d alternating rounds; sends %s s each, %d connections, one load "
                 "thread (wrk, redis-benchmark), a %d-byte JSON body on %d channels / streams; "
                 "receive+ack %d messages a call by the asyncio driver until empty; long-poll "
                 "percentiles over the %d sends of all rounds per row. Redis %s, servers on CPU 0, "
                 "load on CPU 1 of %d; load average %.1f before, %.1f after. Commit %s, %s; "
                 "errors %d; from `testing/performance/mailbox.sh --publish`._"
                 % (c["rounds"], num(c["seconds"]), c["conns"], c["size"], c["channels"],
                    c["batch"], c["rounds"] * c["samples"], r["redis"], r["cpus"],
                    r["loadavg_before"], r["loadavg_after"], r["commit"], r["time"][:10],
                    r["errors"]))
    return lines


RENDER = {"suite": suite, "mailbox-redis": mailbox_redis, "healthz-nginx": healthz_nginx,
          "cluster-scenarios": cluster_scenarios, "cluster-scale": cluster_scale,
          "arch-before-after": lambda: before_after("arch-before-after"),
          "typed-ops-before-after": lambda: before_after("typed-ops-before-after"),
          "gate-aa": lambda: gate("gate-aa"), "gate-slow": lambda: gate("gate-slow"),
          "budgets": budgets, "soak": soak}
BLOCK = re.compile(r"(<!-- BEGIN generated:([\w-]+) -->\n)(.*?)(<!-- END generated:\2 -->)", re.S)


def main():
    doc = DOC
    if "--doc" in sys.argv[1:]:
        doc = sys.argv[sys.argv.index("--doc") + 1]
    with open(doc) as f:
        text = f.read()

    def sub(m):
        fn = RENDER.get(m.group(2))
        lines = fn() if fn else None
        if lines is None:
            return m.group(0)
        return m.group(1) + "\n".join(lines) + "\n" + m.group(4)

    new = BLOCK.sub(sub, text)
    if "--check" in sys.argv[1:]:
        if new != text:
            print("docs/PERFORMANCE.md is not what testing/performance/render-docs.py produces")
            return 1
        return 0
    if new != text:
        with open(doc, "w") as f:
            f.write(new)
        print("docs/PERFORMANCE.md: tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
