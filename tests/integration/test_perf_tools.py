"""The performance harness itself: the gate's verdicts on known inputs, a real
one-second suite run that writes a complete JSON result, and the docs
renderer (testing/performance/, docs/PERFORMANCE.md)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

from harness import *

PERF = os.path.join(ROOT, "testing", "performance")
sys.path.insert(0, PERF)
import perf  # noqa: E402


def runs(rps, p95=1.0, cpu=20.0, rss=20000, shed=0.0):
    return [{"rps": r, "p95_ms": p95, "cpu_us_per_req": cpu, "peak_rss_kib": rss, "shed_pct": shed}
            for r in rps]


def verdicts(rows):
    return {(r[0], r[1]): r[-1] for r in rows}


def test_gate_passes_two_alike_builds():
    base = {"s": runs([50000, 51000, 49500, 50500, 50200])}
    head = {"s": runs([49800, 50900, 50100, 49000, 50400])}
    rows, failed = perf.judge(base, head)
    check(not failed, rows)
    check(set(verdicts(rows).values()) == {"ok"}, rows)


def test_gate_fails_a_clear_slowdown():
    base = {"s": runs([50000, 51000, 49500, 50500, 50200], cpu=20.0)}
    head = [dict(r) for r in runs([41000, 42100, 40800, 41900, 41500], cpu=24.0)]
    rows, failed = perf.judge(base, {"s": head})
    v = verdicts(rows)
    check(failed, rows)
    check(v[("s", "rps")] == "FAIL" and v[("s", "cpu_us_per_req")] == "FAIL", v)
    check(v[("s", "p95_ms")] == "ok", v)


def test_gate_calls_a_difference_inside_the_noise_noisy():
    # Medians 12 % apart, but round by round head ran from 30 % slower to
    # 20 % faster than base: the change is inside the noise.
    base = {"s": runs([50000, 30000, 70000, 40000, 60000])}
    head = {"s": runs([44000, 36000, 49000, 48000, 42000])}
    rows, failed = perf.judge(base, head)
    check(not failed, rows)
    check(verdicts(rows)[("s", "rps")] == "noisy", rows)


def test_gate_pairs_rounds_so_machine_drift_cancels():
    # The machine drifts from 30k to 70k req/s between rounds, hitting both
    # builds alike: head is 12 % slower in every round, which is a FAIL,
    # while a head that tracks base within 2 % passes.
    base = {"s": runs([50000, 30000, 70000, 40000, 60000])}
    slow = {"s": runs([44000, 26400, 61600, 35200, 52800])}
    same = {"s": runs([50900, 29500, 70800, 39400, 60600])}
    check(verdicts(perf.judge(base, slow)[0])[("s", "rps")] == "FAIL")
    rows, failed = perf.judge(base, same)
    check(not failed and set(verdicts(rows).values()) == {"ok"}, rows)


def test_gate_refuses_unpaired_rounds():
    # Pairs need the same rounds on both sides; a short side is an error,
    # never a silent comparison of what is left.
    try:
        perf.judge({"s": runs([50000] * 5)}, {"s": runs([50000] * 4)})
    except ValueError as e:
        check("same rounds" in str(e), e)
    else:
        check(False, "judged 5 rounds against 4")


def test_gate_shed_share_in_points():
    base = {"s": runs([50000] * 5, shed=0.0)}
    head = {"s": [dict(r, shed_pct=s) for r, s in zip(runs([50000] * 5), [1.0, 1.2, 0.9, 1.1, 1.0])]}
    rows, failed = perf.judge(base, head)
    check(failed and verdicts(rows)[("s", "shed_pct")] == "FAIL", rows)


def test_suite_run_writes_a_complete_result():
    out = tempfile.mkdtemp(prefix="og-perf-test-")
    try:
        p = subprocess.run(["/usr/bin/python3", os.path.join(PERF, "perf.py"), "--build", BUILD,
                            "--out", out, "--scenarios", "healthz,range-64k", "--seconds", "1"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
        check(p.returncode == 0, p.stdout + p.stderr)
        for sc in ("healthz", "range-64k"):
            with open(os.path.join(out, sc + ".json")) as f:
                r = json.load(f)
            for k in ("scenario", "commit", "config", "rps", "p50_ms", "p95_ms", "p99_ms", "errors",
                      "shed_pct", "cpu_us_per_req", "peak_rss_kib"):
                check(k in r, "%s lacks %s" % (sc, k))
            check(r["rps"] > 0 and r["errors"] == 0 and r["cpu_us_per_req"] > 0, r)
            check(r["peak_rss_kib"] > 1000 and r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], r)
        check(r["mbps"] > 0, r)  # 64 KiB ranges move bytes
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_nginx_comparison_measures_both_servers():
    out = tempfile.mkdtemp(prefix="og-perf-test-")
    try:
        js = os.path.join(out, "vs.json")
        p = subprocess.run(["/usr/bin/python3", os.path.join(PERF, "healthz-vs-nginx.py"), "--build", BUILD,
                            "--seconds", "1", "--rounds", "1", "--conns", "8", "--json", js],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
        check(p.returncode == 0, p.stdout + p.stderr)
        with open(js) as f:
            r = json.load(f)
        for n in ("omnigate", "nginx"):
            m = r["median"][n]
            check(m["rps"] > 0 and m["cpu_us_per_req"] > 0 and m["p50_ms"] <= m["p99_ms"], r)
        check(r["errors"] == 0 and r["ratio"]["rps"] > 0, r)
        check("omnigate/nginx" in p.stdout, p.stdout)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run_mailbox(out, *args):
    """mailbox.py in a short mode; its result and output."""
    js = os.path.join(out, "mailbox.json")
    p = subprocess.run(["/usr/bin/python3", os.path.join(PERF, "mailbox.py"), "--build", BUILD,
                        "--seconds", "1", "--rounds", "1", "--conns", "4",
                        "--samples", "10", "--json", js] + list(args),
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    with open(js) as f:
        return p, json.load(f)


def test_mailbox_comparison_measures_omnigate_and_redis():
    # Micronode and durable macronode (--fsync batch has its run in the next
    # test), both servers, every measure: sends, receive+ack (all that was
    # sent is drained), long-poll latency; no errors; a table render-docs can
    # make of it.
    out = tempfile.mkdtemp(prefix="og-perf-test-")
    try:
        p, r = run_mailbox(out, "--modes", "micronode,always", "--channels", "64")
        check(p.returncode == 0, p.stdout + p.stderr)
        check(r["errors"] == 0 and set(r["modes"]) == {"micronode", "always"}, r)
        for mode in r["modes"].values():
            for n in ("omnigate", "redis"):
                m, run = mode["median"][n], mode["runs"][n][0]
                check(m["send_rps"] > 0 and m["send_cpu_us"] > 0, (n, m))
                check(m["send_p50_ms"] <= m["send_p99_ms"], (n, m))
                check(m["recv_msgs_per_s"] > 0 and m["recv_cpu_us_per_msg"] > 0, (n, m))
                check(run["recv_ack"]["drained"] and run["recv_ack"]["messages"] >= run["send"]["requests"], run)
                check(m["lp_samples"] == 10 and 0 < m["lp_p50_ms"] <= m["lp_p99_ms"] < 1000, (n, m))
                check(m["errors"] == 0, (n, m))
        check("load average" in p.stdout, p.stdout)
        sys.path.insert(0, PERF)
        render = __import__("render-docs")
        render.PERF = out
        rows = render.mailbox_redis()
        check(sum(l.startswith("| **omnigate** |") for l in rows) == 2, rows)
        check(sum(l.startswith("| Redis |") for l in rows) == 2, rows)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_mailbox_comparison_shows_a_run_with_errors():
    # One channel of the mailbox service holds 1 000 messages: a second of
    # sends fills it and the rest are refused (429 channel_full), which the
    # run must count and exit 1 for, rather than report a fast server.
    out = tempfile.mkdtemp(prefix="og-perf-test-")
    try:
        p, r = run_mailbox(out, "--modes", "batch", "--channels", "1", "--samples", "2")
        check(p.returncode == 1, p.stdout + p.stderr)
        og = r["modes"]["batch"]["runs"]["omnigate"][0]["send"]
        check(0 < og["errors"] < og["requests"], og)
        check(r["errors"] >= og["errors"] and r["modes"]["batch"]["median"]["redis"]["errors"] == 0, r)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_callgrind_hydration_counts_and_compares():
    # Instructions and allocations per hydration request under callgrind, of
    # one build against itself as "before": the same allocations, Ir within
    # budgets.py's run-to-run spread, a JSON render-docs turns into a table.
    tmp = tempfile.mkdtemp(prefix="og-cg-test-")
    out = os.path.join(tmp, "x-before-after.json")
    try:
        p = subprocess.run([os.path.join(PERF, "callgrind-hydration.sh"), "--build", BUILD,
                            "--base", BUILD, "--requests", "20", "--json", out, "--title", "t"],
                           capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, p.stdout + p.stderr)
        check("hydration (0.8 view + 0.2 feed)" in p.stdout, p.stdout)
        with open(out) as f:
            r = json.load(f)
        b, h = r["instructions"]["base"], r["instructions"]["head"]
        check(set(b) == set(h) == {"view", "feed", "range_64k"}, r)
        for k in b:
            check(b[k]["allocs_per_request"] == h[k]["allocs_per_request"] > 0, r)
            check(abs(h[k]["ir_per_request"] / b[k]["ir_per_request"] - 1) < 0.02, r)
        sys.path.insert(0, PERF)
        render = __import__("render-docs")
        render.PERF = tmp
        rows = render.before_after("x-before-after")
        check(any(l.startswith("| instructions per hydration request") for l in rows), rows)
        check(any(l.startswith("| allocations per view request") for l in rows), rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_docs_tables_are_regenerated_from_json():
    # render-docs --check fails as soon as a generated table is edited by hand.
    with open(os.path.join(ROOT, "docs", "PERFORMANCE.md")) as f:
        text = f.read()
    marker = "<!-- END generated:budgets -->"
    check(marker in text)
    tmp = tempfile.mkdtemp(prefix="og-doc-test-")
    doc = os.path.join(tmp, "PERFORMANCE.md")
    render = ["/usr/bin/python3", os.path.join(PERF, "render-docs.py"), "--doc", doc]
    try:
        with open(doc, "w") as f:
            f.write(text.replace(marker, "| hand | edited |\n" + marker))
        p = subprocess.run(render + ["--check"], capture_output=True, text=True)
        check(p.returncode == 1, p.stdout)
        p = subprocess.run(render, capture_output=True, text=True)
        check(p.returncode == 0, p.stdout)
        with open(doc) as f:
            check(f.read() == text, "regenerating did not restore the tables")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests(globals())
