"""The admin listener (/metrics passes promtool, /healthz, /readyz), every
other /metrics the repo serves (macronode omnigate, each substrate role),
the method label, and the command line: --help, --version, --check-config,
exit code 2 on bad values."""
import json
import os
import subprocess
import tempfile
import time

from harness import *
from profiles import metrics_text, start_profile


def run_cli(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGATE_")}
    e.update(env or {})
    return subprocess.run([OMNIGATE] + list(args), capture_output=True, text=True, timeout=10,
                          env=e)


def test_metrics_pass_promtool_and_count():
    srv = start_omnigate()
    http("GET", srv.url + "/healthz")
    http("GET", srv.url + "/nope")
    http("POST", srv.url + "/healthz", body=b"x")
    raw(srv.port, b"GET / HTTP/1.1\r\nHost : t\r\n\r\n")
    st, h, body = http("GET", srv.admin_url + "/metrics")
    check(st == 200 and h["content-type"].startswith("text/plain; version=0.0.4"), h)
    promtool_check(body, "omnigate micronode")
    text = body.decode()
    check(metric_value(text, "http_requests_total",
                       {"route": "/healthz", "method": "GET", "status": "200"}) == 1)
    check(metric_value(text, "http_requests_total", {"route": "unmatched", "status": "404"}) == 1)
    check(metric_value(text, "rejected_total", {"reason": "method_not_allowed"}) == 1)
    check(metric_value(text, "rejected_total", {"reason": "bad_request"}) == 1)
    check(metric_value(text, "request_latency_seconds_count", {"route": "/healthz"}) >= 1)
    check(metric_value(text, "open_connections") is not None)
    check(metric_value(text, "process_open_fds") > 0)
    # The in-process mailbox's channel families, before any channel exists.
    check(metric_value(text, "mailbox_channel_depth", {"channel": "_other"}) == 0, text)
    check(metric_value(text, "mailbox_channels") == 0, text)


def test_every_metrics_endpoint_passes_promtool():
    """macronode: omnigate (with the remote backend's families) and the three
    substrate roles, each after traffic, so sparse families have series."""
    p = start_profile("macronode")
    for path in ("/v1/view/user-007", "/v1/feed/news?limit=3", "/v1/search?q=user-01",
                 "/v1/index/clip-1", "/v1/view/nobody", "/nope"):
        p.get(path)
    p.get("/v1/o", method="PUT", body=b"promtool")
    http("POST", p.subs["storage"].admin_url + "/faults?latency_ms=0")
    endpoints = [("omnigate", p.og.admin_url)] + \
        [("substrate " + role, s.admin_url) for role, s in sorted(p.subs.items())]
    for what, url in endpoints:
        st, h, body = http("GET", url + "/metrics")
        check(st == 200 and h["content-type"].startswith("text/plain; version=0.0.4"), (what, h))
        promtool_check(body, what)
    text = p.metrics()
    check(metric_value(text, "downstream_connections", {"service": "index"}) >= 1, text)
    check(metric_value(text, "downstream_requests_total", {"service": "storage"}) >= 1, text)
    for role, name in (("index", "substrate_index_names"), ("storage", "substrate_storage_objects"),
                       ("mailbox", "substrate_mailbox_channels")):
        m = metrics_text(p.subs[role].admin_url)
        for fam in (name, "substrate_bytes_in_total", "substrate_bytes_out_total"):
            check("# HELP %s " % fam in m, "%s: no HELP for %s" % (role, fam))
        check(metric_value(m, "substrate_requests_total", {"role": role}) >= 1, m)
    # The seeded channels: the mailbox service's channel families have series.
    m = metrics_text(p.subs["mailbox"].admin_url)
    check(metric_value(m, "mailbox_channel_depth", {"channel": "news"}) >= 1, m)
    check(metric_value(m, "mailbox_channels") == metric_value(m, "substrate_mailbox_channels"), m)


def test_head_refused_early_is_not_counted_as_delete():
    """Regression: a head refused before it ended kept method 0 (llhttp's
    DELETE) in the metric and the log line. A method that was read is named;
    one that never was is "unknown"."""
    srv = start_omnigate("--header-count-max", "8")
    many = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-N: v\r\n" * 20 + b"\r\n"
    check(status_of(raw(srv.port, many)) == 431)
    check(status_of(raw(srv.port, b"BREW /healthz HTTP/1.1\r\nHost: t\r\n\r\n")) == 400)
    check(status_of(raw(srv.port, b"PROPFIND /healthz HTTP/1.1\r\nHost: t\r\n"
                         b"Connection: close\r\n\r\n")) == 405)
    st, _, body = http("GET", srv.admin_url + "/metrics")
    text = body.decode()
    promtool_check(body)
    check(metric_value(text, "http_requests_total",
                       {"route": "unmatched", "method": "GET", "status": "431"}) == 1, text)
    check(metric_value(text, "http_requests_total",
                       {"route": "unmatched", "method": "unknown", "status": "400"}) == 1, text)
    check(metric_value(text, "http_requests_total",
                       {"route": "/healthz", "method": "OTHER", "status": "405"}) == 1, text)
    check(metric_value(text, "request_latency_seconds_count", {"method": "unknown"}) == 1, text)
    check('method="DELETE"' not in text, "nothing was a DELETE")
    deadline = time.time() + 5
    while time.time() < deadline:
        reqs = {j["status"]: j for j in srv.log_json() if j.get("event") == "request"}
        if {400, 405, 431} <= set(reqs):
            break
        time.sleep(0.05)
    check(reqs[431]["method"] == "GET", reqs[431])
    check(reqs[400]["method"] == "unknown", reqs[400])
    check(reqs[405]["method"] == "PROPFIND", reqs[405])


def test_healthz_and_readyz():
    srv = start_omnigate()
    for base in (srv.url, srv.admin_url):
        st, _, body = http("GET", base + "/healthz")
        check(st == 200 and json.loads(body) == {"status": "ok"})
        st, _, body = http("GET", base + "/readyz")
        check(st == 200 and json.loads(body) == {"ready": True, "amnesia": True}, body)
    st, h, body = http("HEAD", srv.url + "/healthz")
    check(st == 200 and body == b"" and h["content-length"] == "15", h)


def test_help_and_version():
    r = run_cli("--help")
    check(r.returncode == 0, r.stderr)
    for flag in ("--header-max", "--body-max", "--head-timeout", "--body-min-rate",
                 "--body-grace", "--request-timeout", "--idle-timeout", "--max-connections",
                 "--inflight-max", "--write-timeout", "--drain-grace", "--config", "--bind",
                 "OMNIGATE_HEADER_MAX"):
        check(flag in r.stdout, "--help lacks %s" % flag)
    r = run_cli("--version")
    check(r.returncode == 0 and r.stdout.startswith("omnigate "), r.stdout)


def test_check_config_and_exit_code_2():
    d = tempfile.mkdtemp()
    good = os.path.join(d, "good.ini")
    with open(good, "w") as f:
        f.write("[server]\nworkers = 2\n[limits]\nheader_max = 8KiB\nbody_max = 2MiB\n")
    r = run_cli("--config", good, "--check-config")
    check(r.returncode == 0, r.stderr)
    cases = [
        (["--header-max", "lots"], None, ["header_max", "lots", "flag --header-max", "size"]),
        (["--idle-timeout", "5"], None, ["idle_timeout", "5", "duration"]),
        (["--max-connections", "0"], None, ["max_connections", "0", "allowed 1 to"]),
        ([], {"OMNIGATE_BODY_MAX": "1TB"}, ["body_max", "1TB", "env OMNIGATE_BODY_MAX"]),
        ([], {"OMNIGATE_NOPE": "1"}, ["OMNIGATE_NOPE"]),
        (["--no-such-flag", "1"], None, ["no-such-flag"]),
    ]
    bad = os.path.join(d, "bad.ini")
    with open(bad, "w") as f:
        f.write("[limits]\nhead_timeout = forever\n")
    cases.append((["--config", bad], None, ["head_timeout", "forever", bad, "duration"]))
    for args, env, words in cases:
        r = run_cli(*(args + ["--check-config"]), env=env)
        check(r.returncode == 2, (args, env, r.returncode, r.stderr))
        lines = r.stderr.strip().splitlines()
        check(len(lines) == 1, "one error line: %r" % r.stderr)
        for w in words:
            check(w in lines[0], "%r not in %r" % (w, lines[0]))
    # the same error stops a real start, before anything listens
    r = run_cli("--bind", "127.0.0.1:%d" % free_port(), "--header-max", "1")
    check(r.returncode == 2 and "header_max" in r.stderr, r.stderr)


if __name__ == "__main__":
    run_tests(globals())
