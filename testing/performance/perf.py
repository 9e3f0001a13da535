#!/usr/bin/python3
"""omnigate's standard load suite and its A/B regression gate.

  perf.py [--quick] [--build DIR] [--out DIR] [--scenarios a,b] [--seconds S]
      Runs each scenario once against a fresh server stack and writes one
      JSON result per scenario to OUT/<scenario>.json (default build/perf).
  perf.py --gate BASE_BUILD HEAD_BUILD [--rounds N] [--seconds S]
      Runs both builds through the same scenarios interleaved (A B, B A, ...)
      and judges HEAD against BASE with the gate rules below; prints a table
      and exits 1 when a rule fails. scripts/perf-gate builds BASE from a ref.

Every run starts its own servers (so peak RSS belongs to that run), warms
them for one second, then measures with wrk: req/s, latency percentiles,
errors (socket errors and non-2xx), shed share (429/503 that admission
counted in rejected_total{reason=busy|quota|degraded} over all requests),
server CPU seconds per request (utime+stime of every server process of the
stack, from /proc) and omnigate's peak RSS (VmHWM).
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib  # noqa: E402

# Scenario: stack profile, wrk script and how it is driven. Workers and
# connections are fixed per scenario so two builds are always set up alike.
SCENARIOS = {
    "healthz": dict(profile="micronode", script="hydration.lua", mix="healthz", conns=64),
    "hydration-micronode": dict(profile="micronode", script="hydration.lua", mix="hydration", conns=32),
    "hydration-macronode": dict(profile="macronode", script="hydration.lua", mix="hydration", conns=32),
    "range-64k": dict(profile="micronode", script="media-ranges.lua", media="clip-4", conns=16),
    # Every range verified from storage (slice proof, two groups hashed): the
    # verified group cache off, as for objects too many or too cold for it.
    "range-64k-verify": dict(profile="micronode", script="media-ranges.lua", media="clip-4",
                             conns=16, extra=("--range-cache", "0")),
    "stream-4m": dict(profile="micronode", script="media-stream.lua", media="clip-4", conns=8),
}
WORKERS = 1

# Gate rules (DESIGN §11): metric -> (direction, limit, kind). "up" means
# bigger is worse. kind "rel" is a relative change, "pp" percentage points.
RULES = [
    ("rps", "down", 0.10, "rel"),
    ("p95_ms", "up", 0.10, "rel"),
    ("cpu_us_per_req", "up", 0.15, "rel"),
    ("peak_rss_kib", "up", 0.15, "rel"),
    ("shed_pct", "up", 0.5, "pp"),
]
# Rounds are paired: in round i the two builds run the same scenario back
# to back (A B, then B A in the next round), so drift of the machine
# between rounds hits both alike. The change is the median over rounds of
# head/base (or head - base, for points); it counts only when it is larger
# than NOISE_K standard errors of that median, estimated from the spread of
# the paired values: 1.2533 x 1.4826 x MAD / sqrt(rounds). Three, not two:
# with five rounds the spread is itself uncertain, and at two standard
# errors two builds of one commit failed once while another build shared
# the machine (docs/PERFORMANCE.md).
NOISE_K = 3.0


def load_of(st, name):
    """How scenario `name` loads a running stack: (url, script, env, args, headers)."""
    sc = SCENARIOS[name]
    token = st.token()
    env, args, url, headers = {"TOKEN": token}, (), st.url, ()
    if "mix" in sc:
        env["MIX"] = sc["mix"]
    else:
        addr, size = st.object_of(sc["media"], token)
        url = "%s/v1/o/%s" % (st.url, addr)
        headers = ("Authorization: Bearer " + token,)
        if sc["script"] == "media-ranges.lua":
            args = (size, 42)
    return url, sc["script"], env, args, headers


def run_scenario(build, name, seconds):
    sc = SCENARIOS[name]
    with perflib.Stack(build, sc["profile"], workers=WORKERS, extra=sc.get("extra", ())) as st:
        url, script, env, args, headers = load_of(st, name)
        perflib.wrk(url, script, 1, 8, env=env, args=args, headers=headers)
        before, cpu0 = perflib.scrape(st.admin), st.cpu_seconds()
        w = perflib.wrk(url, script, seconds, sc["conns"], env=env, args=args, headers=headers)
        after, cpu1 = perflib.scrape(st.admin), st.cpu_seconds()
        served = (perflib.metric_sum(after, "http_requests_total")
                  - perflib.metric_sum(before, "http_requests_total"))
        shed = perflib.shed_count(after) - perflib.shed_count(before)
        reqs = max(w["requests"], 1)
        return {
            "scenario": name,
            "commit": perflib.git_commit(),
            "build": build,
            "config": {"profile": sc["profile"], "workers": WORKERS, "conns": sc["conns"],
                       "seconds": seconds, "wrk_threads": 1, "script": sc["script"],
                       "log_level": "warn"},
            "rps": w["rps"],
            "mbps": w.get("mbps"),
            "p50_ms": w["p50_ms"], "p95_ms": w["p95_ms"], "p99_ms": w["p99_ms"],
            "requests": w["requests"],
            "errors": w["non2xx"] + w["socket_errors"],
            "shed_pct": 100.0 * shed / served if served else 0.0,
            "cpu_us_per_req": 1e6 * (cpu1 - cpu0) / reqs,
            "peak_rss_kib": perflib.peak_rss_kib(st.pids[0]),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def attach_instructions(res, out_dir):
    """Instructions and allocations per request from the last budget run
    (testing/performance/budgets.py writes OUT/instructions.json)."""
    path = os.path.join(out_dir, "instructions.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        ins = json.load(f).get("measured", {})
    keys = {"healthz": ["healthz"], "hydration-micronode": ["view", "feed"],
            "range-64k": ["range_64k"], "range-64k-verify": ["range_64k_verify"]}.get(
                res["scenario"], [])
    got = {k: ins[k] for k in keys if k in ins}
    if got:
        res["instructions_per_request"] = {k: v.get("ir_per_request") for k, v in got.items()}
        res["allocs_per_request"] = {k: v.get("allocs_per_request") for k, v in got.items()}


def suite(a):
    os.makedirs(a.out, exist_ok=True)
    names = a.scenarios.split(",") if a.scenarios else list(SCENARIOS)
    seconds = a.seconds or (5 if a.quick else 15)
    print("%-22s %10s %8s %8s %8s %7s %7s %9s %9s" % (
        "scenario", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "shed%", "cpu us/r", "rss KiB"))
    failed = False
    for n in names:
        r = run_scenario(a.build, n, seconds)
        attach_instructions(r, a.out)
        with open(os.path.join(a.out, n + ".json"), "w") as f:
            json.dump(r, f, indent=1)
            f.write("\n")
        failed |= r["errors"] > 0
        print("%-22s %10.0f %8.3f %8.3f %8.3f %7d %7.2f %9.1f %9d" % (
            n, r["rps"], r["p50_ms"], r["p95_ms"], r["p99_ms"], r["errors"], r["shed_pct"],
            r["cpu_us_per_req"], r["peak_rss_kib"]))
    print("results: %s/<scenario>.json" % a.out)
    return 1 if failed else 0


# --- the gate ----------------------------------------------------------------

def robust_sd(xs):
    m = statistics.median(xs)
    return 1.4826 * statistics.median([abs(x - m) for x in xs])


def median_se(xs):
    """Standard error of the median of xs, from a robust estimate of their spread."""
    return 1.2533 * robust_sd(xs) / math.sqrt(len(xs))


def judge(base, head):
    """Rows of (scenario, metric, base median, head median, change, noise,
    kind, limit, verdict); base[sc][i] and head[sc][i] are round i's runs."""
    rows, failed = [], False
    for sc in base:
        for metric, worse, limit, kind in RULES:
            a = [r[metric] for r in base[sc]]
            b = [r[metric] for r in head[sc]]
            if len(a) != len(b) or not a:
                raise ValueError("%s: base and head need the same rounds" % sc)
            ma, mb = statistics.median(a), statistics.median(b)
            if kind == "rel":
                paired = [y / x if x else 1.0 for x, y in zip(a, b)]
                change = statistics.median(paired) - 1.0
            else:
                paired = [y - x for x, y in zip(a, b)]
                change = statistics.median(paired)
            noise = NOISE_K * median_se(paired)
            bad = change if worse == "up" else -change
            verdict = "ok"
            if bad > limit and bad > noise:
                verdict = "FAIL"
                failed = True
            elif bad > limit:
                verdict = "noisy"
            rows.append((sc, metric, ma, mb, change, noise, kind, limit, verdict))
    return rows, failed


def fmt_change(change, kind):
    return "%+.1f%%" % (100 * change) if kind == "rel" else "%+.2fpp" % change


def measure_instructions(builds):
    """Instructions and allocations per unit of both builds (budgets.py --measure)."""
    out = {}
    for which, build in builds.items():
        d = os.path.join(perflib.ROOT, "build", "gate", which + "-instructions")
        subprocess.run(["/usr/bin/python3", os.path.join(perflib.PERF_DIR, "budgets.py"), "--measure",
                        "--build", build, "--out", d], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(d, "instructions.json")) as f:
            out[which] = json.load(f)["measured"]
    return out


def gate(a):
    base_build, head_build = a.gate
    names = a.scenarios.split(",") if a.scenarios else list(SCENARIOS)
    seconds = a.seconds or 4
    runs = {"base": {n: [] for n in names}, "head": {n: [] for n in names}}
    builds = {"base": base_build, "head": head_build}
    t0 = time.time()
    for i in range(a.rounds):
        order = ("base", "head") if i % 2 == 0 else ("head", "base")
        for n in names:
            for which in order:
                r = run_scenario(builds[which], n, seconds)
                runs[which][n].append(r)
                print("round %d %-22s %-4s %9.0f req/s p95 %.3f ms cpu %.1f us/r rss %d KiB errors %d" % (
                    i + 1, n, which, r["rps"], r["p95_ms"], r["cpu_us_per_req"],
                    r["peak_rss_kib"], r["errors"]), file=sys.stderr, flush=True)
    rows, failed = judge(runs["base"], runs["head"])
    instructions = measure_instructions(builds) if a.instructions else None
    errors = sum(r["errors"] for w in runs.values() for rs in w.values() for r in rs)
    print("\nperf-gate: %d rounds x %d scenarios, %gs each, interleaved, %.0fs in all" % (
        a.rounds, len(names), seconds, time.time() - t0))
    print("base %s\nhead %s" % (base_build, head_build))
    print("rule: FAIL when the median paired change (head/base per round) is worse than the "
          "limit AND larger than %g standard errors of that median (noise)\n" % NOISE_K)
    print("%-20s %-14s %12s %12s %9s %8s %7s  %s" % (
        "scenario", "metric", "base (med)", "head (med)", "change", "noise", "limit", "verdict"))
    for sc, metric, ma, mb, change, noise, kind, limit, verdict in rows:
        print("%-20s %-14s %12.3f %12.3f %9s %8s %7s  %s" % (
            sc, metric, ma, mb, fmt_change(change, kind), fmt_change(noise, kind),
            fmt_change(limit, kind).lstrip("+"), verdict))
    if instructions:
        print("\n%-20s %14s %14s %9s   (callgrind, per unit; not judged here: make check does)" % (
            "item", "base Ir", "head Ir", "change"))
        for item, b in instructions["base"].items():
            h = instructions["head"].get(item)
            if h:
                print("%-20s %14d %14d %+8.1f%%" % (item, b["ir_per_request"], h["ir_per_request"],
                                                   100.0 * (h["ir_per_request"] / b["ir_per_request"] - 1)))
    if errors:
        print("\nerrors during the runs: %d" % errors)
        failed = True
    print("\nperf-gate: %s" % ("FAIL" if failed else "pass"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"title": a.title or "%d rounds x %gs" % (a.rounds, seconds),
                       "base": base_build, "head": head_build, "seconds": seconds,
                       "rounds": a.rounds, "runs": runs, "rows": rows, "failed": failed,
                       "instructions": instructions}, f, indent=1)
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5 s per scenario (under 3 minutes in all)")
    p.add_argument("--build", default=os.path.join(perflib.ROOT, "build"))
    p.add_argument("--out", default=os.path.join(perflib.ROOT, "build", "perf"))
    p.add_argument("--scenarios", default="", help="comma-separated subset of: " + ", ".join(SCENARIOS))
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--gate", nargs=2, metavar=("BASE_BUILD", "HEAD_BUILD"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default="", help="gate: write every run and verdict here")
    p.add_argument("--title", default="", help="gate: what was compared, for --json")
    p.add_argument("--instructions", action="store_true",
                   help="gate: also measure instructions per request of both builds (budgets.py)")
    a = p.parse_args()
    if a.scenarios:
        unknown = set(a.scenarios.split(",")) - set(SCENARIOS)
        if unknown:
            p.error("unknown scenario(s): %s" % ", ".join(sorted(unknown)))
    return gate(a) if a.gate else suite(a)


if __name__ == "__main__":
    sys.exit(main())
