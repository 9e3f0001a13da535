"""Capabilities and policy over real processes, in both profiles: every /v1
route refuses missing, forged, expired, under-scoped, wrong-route and
wrong-method tokens before any downstream call; policy bundles (tenant
denial with an audit event, default deny, anonymous search), SIGHUP reload
of a changed or broken bundle, tokens minted by pymacaroons, and no token
text in any log line."""
import json
import os
import shutil
import signal
import subprocess
import time

from harness import *
from profiles import *

ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
POLICY_DIR = os.path.join(ROOT_DIR, "testing", "policy")
NEEDS = {"/v1/view/": "view.read", "/v1/index/": "index.read", "/v1/search": "search.read",
         "/v1/feed/": "feed.read", "/v1/o/": "object.read", "/v1/media/": "media.read"}
SCOPES = ALL_SCOPES.split(",")


def routes(p):
    """(method, path, body, headers, good status, scope) for every /v1 route."""
    st, _, man = p.get("/v1/index/clip-1")
    check(st == 200, "index clip-1 %d" % st)
    addr = man["obj"]
    return [
        ("GET", "/v1/view/user-001", None, {}, 200, "view.read"),
        ("HEAD", "/v1/view/user-001", None, {}, 200, "view.read"),
        ("GET", "/v1/index/clip-1", None, {}, 200, "index.read"),
        ("GET", "/v1/search?q=user-00&limit=2", None, {}, 200, "search.read"),
        ("GET", "/v1/feed/news?limit=1", None, {}, 200, "feed.read"),
        ("GET", "/v1/o/" + addr, None, {"Range": "bytes=0-9"}, 206, "object.read"),
        ("HEAD", "/v1/o/" + addr, None, {}, 200, "object.read"),
        ("PUT", "/v1/o", b"auth test body", {"Content-Type": "application/octet-stream"}, 201,
         "object.write"),
        ("GET", "/v1/media/clip-1", None, {"Range": "bytes=0-99"}, 206, "media.read"),
    ]


def call(p, method, path, body, headers, token):
    h = dict(headers)
    h.update(auth(token))
    st, hd, raw_body = http(method, p.og.url + path, body=body, headers=h, timeout=5)
    try:
        doc = json.loads(raw_body) if raw_body else None
    except ValueError:
        doc = raw_body
    return st, hd, doc


def no_token_in_logs(p, *tokens):
    text = p.log_text()
    for t in tokens:
        check(t not in text, "a token appears in the log")
        check(t[-40:] not in text, "a token's signature appears in the log")
    for s in p.subs.values():
        with open(s.logpath, errors="replace") as f:
            sub = f.read()
        for t in tokens:
            check(t[-40:] not in sub, "a token appears in a substrate log")


def downstream_total(p):
    """Calls omnigate made, and (macronode) calls the substrates answered."""
    return (p.downstream_requests(), p.substrate_requests() if p.macro else 0.0)


# ------------------------------------------------------------ capabilities


def good_tokens_work(prof):
    p = start_profile(prof)
    for method, path, body, hd, want, _ in routes(p):
        st, h, d = call(p, method, path, body, hd, p.token)
        check(st == want, "%s %s: %d, want %d: %r" % (method, path, st, want, d))
    # curl as the client: bearer header in, WWW-Authenticate out.
    out = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-H",
                          "Authorization: Bearer " + p.token, p.og.url + "/v1/view/user-002"],
                         capture_output=True, text=True, timeout=10)
    check(out.stdout.startswith("HTTP/1.1 200"), out.stdout[:200])
    out = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null",
                          p.og.url + "/v1/view/user-002"], capture_output=True, text=True,
                         timeout=10)
    check(out.stdout.startswith("HTTP/1.1 401") and
          "www-authenticate: bearer" in out.stdout.lower(), out.stdout[:300])
    no_token_in_logs(p, p.token)


def missing_and_malformed(prof):
    p = start_profile(prof)
    rs = routes(p)
    before = downstream_total(p)
    for method, path, body, hd, _, _ in rs:
        st, h, d = call(p, method, path, body, hd, None)
        check(st == 401, "%s %s without a token: %d" % (method, path, st))
        check(h.get("www-authenticate", "").startswith("Bearer"), h)
        if method != "HEAD":
            check(d["error"] == "unauth" and d["corr_id"], d)
        for bad in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer !!!notbase64!!!",
                    "Bearer " + "A" * 300, "bearer%s" % p.token):
            h2 = dict(hd, Authorization=bad)
            st, h, d = http(method, p.og.url + path, body=body, headers=h2, timeout=5)
            check(st == 401, "%s %s with %r: %d" % (method, path, bad[:20], st))
            check("www-authenticate" in h, h)
    after = downstream_total(p)
    check(before == after, "downstream called for rejected requests: %r -> %r" % (before, after))
    no_token_in_logs(p, p.token)


def forged_and_expired(prof):
    p = start_profile(prof)
    rs = routes(p)
    other, _ = write_keyfile("other-%s.keys" % prof)  # same key id, another secret
    forged = mint(keyfile=other)
    unknown_kf, _ = write_keyfile("unknown-%s.keys" % prof, key_id="k9")
    unknown = mint(keyfile=unknown_kf, key_id="k9")
    expired = mint(ttl="60s", now=int(time.time()) - 3600)
    cases = [(forged, "bad_signature"), (unknown, "unknown_key"), (expired, "expired"),
             (p.token[:-4] + ("AAAA" if not p.token.endswith("AAAA") else "BBBB"), None)]
    before = downstream_total(p)
    for tok, why in cases:
        for method, path, body, hd, _, _ in rs:
            st, h, d = call(p, method, path, body, hd, tok)
            check(st == 401, "%s %s (%s): %d %r" % (method, path, why, st, d))
            check("invalid_token" in h.get("www-authenticate", ""), h)
            if method != "HEAD" and why:
                check(d["error"] == "unauth" and why in d["reason"], d)
    after = downstream_total(p)
    check(before == after, "downstream called for rejected requests: %r -> %r" % (before, after))
    m = p.metrics()
    check((metric_value(m, "auth_requests_total", {"outcome": "unauth"}) or 0) >= 4 * len(rs))
    no_token_in_logs(p, p.token, forged, unknown, expired)


def scope_route_method(prof):
    p = start_profile(prof)
    rs = routes(p)
    tokens = [p.token]
    before = downstream_total(p)
    # A token lacking exactly the route's scope.
    for method, path, body, hd, _, scope in rs:
        tok = mint(scope=",".join(s for s in SCOPES if s != scope))
        tokens.append(tok)
        st, h, d = call(p, method, path, body, hd, tok)
        check(st == 403, "%s %s without %s: %d" % (method, path, scope, st))
        if method != "HEAD":
            check(d["error"] == "forbidden" and "missing_scope" in d["reason"], d)
    # A route-restricted token: only under /v1/index/.
    rt = mint(route="/v1/index/")
    tokens.append(rt)
    for method, path, body, hd, _, _ in rs:
        if path.startswith("/v1/index/"):
            continue
        st, _, d = call(p, method, path, body, hd, rt)
        check(st == 403, "route token on %s %s: %d" % (method, path, st))
    # A GET-only token cannot PUT.
    gt = mint(method="GET")
    tokens.append(gt)
    st, _, d = call(p, "PUT", "/v1/o", b"x", {}, gt)
    check(st == 403 and "wrong_method" in d["reason"], (st, d))
    st, _, d = call(p, "HEAD", "/v1/view/user-001", None, {}, gt)
    check(st == 403, "GET token used with HEAD: %d" % st)
    after = downstream_total(p)
    check(before == after, "downstream called for rejected requests: %r -> %r" % (before, after))
    # ... and each of them works where it is valid.
    st, _, d = call(p, "GET", "/v1/index/clip-1", None, {}, rt)
    check(st == 200 and d["kind"] == "media", (st, d))
    st, _, d = call(p, "GET", "/v1/view/user-001", None, {}, gt)
    check(st == 200 and d["name"] == "user-001", st)
    st, _, d = call(p, "GET", "/v1/view/user-001", None, {}, mint(scope="view.read"))
    check(st == 200, "view.read alone: %d" % st)
    m = p.metrics()
    check((metric_value(m, "auth_requests_total", {"outcome": "forbidden"}) or 0) >= len(rs) + 8)
    no_token_in_logs(p, *tokens)


def pymacaroons_tokens(prof):
    p = start_profile(prof)
    v2 = oracle_mint()
    v1 = oracle_mint(v1=True)
    for tok in (v2, v1):
        st, _, d = p.get("/v1/view/user-042", token=tok)
        check(st == 200 and d["name"] == "user-042", (st, d))
        st, _, d = p.get("/v1/search?q=article-00&limit=2", token=tok)
        check(st == 200 and d["names"] == ["article-000", "article-001"], (st, d))
    wrong = oracle_mint(secret="00" * 32)
    st, _, d = p.get("/v1/view/user-042", token=wrong)
    check(st == 401 and "bad_signature" in d["reason"], (st, d))
    past = oracle_mint(expires=int(time.time()) - 10)
    st, _, d = p.get("/v1/view/user-042", token=past)
    check(st == 401 and "expired" in d["reason"], (st, d))
    narrow = oracle_mint(route="/v1/index/")
    st, _, _ = p.get("/v1/view/user-042", token=narrow)
    check(st == 403, "route caveat ignored: %d" % st)
    st, _, _ = p.get("/v1/index/user-042", token=narrow)
    check(st == 200, "route caveat too strict: %d" % st)
    no_token_in_logs(p, v1, v2, wrong, past, narrow)


# ------------------------------------------------------------------ policy


def tenant_denied_with_audit(prof):
    p = start_profile(prof, "--policy-file", os.path.join(POLICY_DIR, "tenant-feed-deny.json"))
    blocked = mint(tenant="blocked-co")
    before = downstream_total(p)
    corr = "audit-%s-1" % prof
    st, h, d = p.get("/v1/feed/news?limit=2", token=blocked, headers={"X-Corr-ID": corr})
    check_error(st, d, 403, "forbidden", "blocked tenant on feed")
    check(d["reason"] == "feed access suspended for tenant blocked-co", d)
    check(h.get("x-corr-id") == corr and d["corr_id"] == corr, (h, d))
    check(downstream_total(p) == before, "downstream called for a policy-denied request")
    # The same tenant elsewhere, and another tenant on the feed, pass.
    st, _, _ = p.get("/v1/view/user-001", token=blocked)
    check(st == 200, "blocked-co on a view: %d" % st)
    st, _, d = p.get("/v1/feed/news?limit=2")
    check(st == 200 and len(d["messages"]) == 2, "demo on the feed: %d" % st)
    # Exactly one audit event, with rule, route, tenant and corr_id.
    deadline = time.time() + 2
    events = []
    while time.time() < deadline:
        events = [j for j in p.og.log_json() if j.get("event") == "policy_denied"]
        if events:
            break
        time.sleep(0.05)
    check(len(events) == 1, "policy_denied events: %r" % events)
    ev = events[0]
    check(ev["rule"] == "deny-feed-blocked-co" and ev["tenant"] == "blocked-co", ev)
    check(ev["route"] == "/v1/feed/{channel}" and ev["corr_id"] == corr, ev)
    check(ev["reason"] == d.get("reason", ev["reason"]) or ev["reason"].startswith("feed"), ev)
    lines = [l for l in p.og.log_lines() if '"policy_denied"' in l]
    check(len(lines) == 1 and blocked not in lines[0] and blocked[-40:] not in lines[0], lines)
    m = p.metrics()
    check(metric_value(m, "auth_requests_total",
                       {"class": "authed", "outcome": "policy_denied"}) == 1, "policy metric")
    check((metric_value(m, "rejected_total", {"reason": "forbidden"}) or 0) >= 1)
    no_token_in_logs(p, p.token, blocked)


def anon_search_only(prof):
    p = start_profile(prof, "--policy-file", os.path.join(POLICY_DIR, "tenant-feed-deny.json"))
    st, h, d = p.get("/v1/search?q=user-00&limit=3", token="")
    check(st == 200 and d["names"] == ["user-000", "user-001", "user-002"], (st, d))
    for path in ("/v1/view/user-001", "/v1/index/clip-1", "/v1/feed/news"):
        st, h, d = p.get(path, token="")
        check_error(st, d, 401, "unauth", "anonymous " + path)
        check(h.get("www-authenticate", "").startswith("Bearer"), h)
    # A bad token is not downgraded to anonymous, even where anonymous works.
    st, _, d = p.get("/v1/search?q=user-00", token=p.token[:-6] + "AAAAAA")
    check(st == 401, "a forged token on an anonymous route: %d" % st)
    m = p.metrics()
    check(metric_value(m, "auth_requests_total", {"class": "anon", "outcome": "allow"}) == 1, m)
    no_token_in_logs(p, p.token)


def default_deny(prof):
    p = start_profile(prof, "--policy-file",
                      os.path.join(POLICY_DIR, "views-only-default-deny.json"))
    before = downstream_total(p)
    for path in ("/v1/index/clip-1", "/v1/search?q=a", "/v1/feed/news"):
        st, _, d = p.get(path)
        check_error(st, d, 403, "forbidden", "default deny " + path)
        check(d["reason"] == "default", d)
    st, _, d = p.get("/v1/view/user-001", token="")
    check(st == 401, "default deny let anonymous in: %d" % st)
    check(downstream_total(p) == before, "downstream called for denied requests")
    st, _, d = p.get("/v1/view/user-001")
    check(st == 200 and d["name"] == "user-001", st)
    st, _, d = p.get("/v1/view/user-001", token=mint(scope="index.read"))
    check(st == 403, "view without view.read: %d" % st)
    events = [j for j in p.og.log_json() if j.get("event") == "policy_denied"]
    check(len(events) == 3 and all(e["rule"] == "default" for e in events), events)
    no_token_in_logs(p, p.token)


def wait_for(fn, timeout=4.0):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(0.05)


def reload_policy(prof):
    path = os.path.join(TMP, "reload-%s.json" % prof)
    shutil.copy(os.path.join(POLICY_DIR, "empty.json"), path)
    p = start_profile(prof, "--policy-file", path)
    st, _, _ = p.get("/v1/feed/news?limit=1")
    check(st == 200, "allow-all bundle: %d" % st)
    with open(path + ".new", "w") as f:
        json.dump({"version": 1, "default_action": "allow", "rules": [
            {"id": "close-feed", "when": {"route": "/v1/feed/", "tenant": "demo"},
             "action": "deny", "reason": "feed closed by reload"}]}, f)
    os.replace(path + ".new", path)
    p.og.signal(signal.SIGHUP)
    check(wait_for(lambda: p.get("/v1/feed/news?limit=1")[0] == 403), "reload not applied")
    st, _, d = p.get("/v1/feed/news?limit=1")
    check(d["reason"] == "feed closed by reload", d)
    check(p.readyz()[0] == 200, "ready after a good reload")
    # A broken bundle: the old one stays, readiness says so.
    with open(path, "w") as f:
        f.write('{"version": 1, "default_action": "allow", "rules": [{"id": "x"')
    p.og.signal(signal.SIGHUP)
    st_doc = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(p.readyz()))
    check(st_doc, "readyz stayed 200 after a broken reload")
    missing = st_doc[1].get("missing", [])
    check("policy_ok" in missing or "last_reload_ok" in missing, st_doc)
    st, _, d = p.get("/v1/feed/news?limit=1")
    check(st == 403 and d["reason"] == "feed closed by reload", "old bundle lost: %r" % (d,))
    st, _, _ = p.get("/v1/view/user-001")
    check(st == 200, "reads stopped after a broken reload: %d" % st)
    check(any(j.get("event") == "reload_failed" for j in p.og.log_json()), "no reload_failed")
    # A unknown key (typo) is refused the same way.
    with open(path, "w") as f:
        json.dump({"version": 1, "default_action": "allow", "rules": [],
                   "defualt": "deny"}, f)
    p.og.signal(signal.SIGHUP)
    time.sleep(0.3)
    st, _, d = p.get("/v1/feed/news?limit=1")
    check(st == 403, "typo bundle replaced the policy: %d" % st)
    # Fixed again: back to allow, and ready.
    shutil.copy(os.path.join(POLICY_DIR, "empty.json"), path)
    p.og.signal(signal.SIGHUP)
    check(wait_for(lambda: p.get("/v1/feed/news?limit=1")[0] == 200), "fixed bundle not applied")
    check(wait_for(lambda: p.readyz()[0] == 200), "not ready after a good reload")
    no_token_in_logs(p, p.token)


for _n, _f in (("good_tokens_work", good_tokens_work),
               ("missing_and_malformed", missing_and_malformed),
               ("forged_and_expired", forged_and_expired),
               ("scope_route_method", scope_route_method),
               ("pymacaroons_tokens", pymacaroons_tokens),
               ("tenant_denied_with_audit", tenant_denied_with_audit),
               ("anon_search_only", anon_search_only),
               ("default_deny", default_deny),
               ("reload_policy", reload_policy)):
    profile_tests(globals(), _n, _f)


def test_rejections_never_reach_substrates__macronode():
    """A mixed burst of rejected requests (no token, forged, expired, wrong
    scope, wrong route, wrong method, policy denial) leaves every substrate's
    request counters unchanged."""
    p = start_profile("macronode", "--policy-file",
                      os.path.join(POLICY_DIR, "tenant-feed-deny.json"))
    other, _ = write_keyfile("burst-other.keys")
    toks = [None, mint(keyfile=other), mint(ttl="60s", now=int(time.time()) - 3600),
            mint(scope="media.read"), mint(route="/v1/media/"), mint(tenant="blocked-co")]
    time.sleep(0.2)
    before = [metrics_text(s.admin_url) for s in p.subs.values()]
    b = sum(metric_value(t, "substrate_requests_total") or 0 for t in before)
    n = 0
    for tok in toks:
        for path in ("/v1/view/user-001", "/v1/feed/news", "/v1/index/clip-1"):
            if tok is toks[-1] and not path.startswith("/v1/feed/"):
                continue  # blocked-co is only denied on the feed
            st, _, _ = p.get(path, token=tok if tok else "")
            check(st in (401, 403), "%s: %d" % (path, st))
            n += 1
    st, _, _ = call(p, "PUT", "/v1/o", b"x", {}, mint(method="GET"))
    check(st == 403)
    after = sum(metric_value(metrics_text(s.admin_url), "substrate_requests_total") or 0
                for s in p.subs.values())
    check(after == b, "substrates answered %d requests for %d rejections" % (after - b, n + 1))
    # Control: one allowed view does reach them.
    st, _, _ = p.get("/v1/view/user-001")
    check(st == 200)
    ctl = sum(metric_value(metrics_text(s.admin_url), "substrate_requests_total") or 0
              for s in p.subs.values())
    check(ctl >= after + 4, "control view not counted: %r -> %r" % (after, ctl))


if __name__ == "__main__":
    run_tests(globals())
