"""Capability tokens interoperate with pymacaroons both ways (DESIGN §7):
tokens minted by pymacaroons (v1 and v2) verify in `omnigate verify`, tokens
from `omnigate mint` verify in pymacaroons, and a wrong key fails both ways.
macaroon_oracle.py runs under /usr/bin/python3, where pymacaroons lives."""
import atexit
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time

from harness import *

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = ["/usr/bin/python3", os.path.join(HERE, "macaroon_oracle.py")]
SECRET = secrets.token_hex(32)
OTHER = secrets.token_hex(32)
NOW = int(time.time())
_dir = tempfile.mkdtemp(prefix="og-mac-")
atexit.register(shutil.rmtree, _dir, True)


def keyfile(text, mode=0o600, name="root.keys"):
    path = os.path.join(_dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


KEYS = keyfile("# test keys\nk1 = %s\nk2 = %s\n" % (SECRET, OTHER))


def og(*args, stdin=None):
    p = subprocess.run([OMNIGATE] + list(args), input=stdin, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def og_verify(token, *extra):
    rc, out, err = og("verify", "--root-keys", KEYS, *extra, token)
    check(out, "no output: %s" % err)
    return rc, json.loads(out)


def oracle(*args):
    p = subprocess.run(ORACLE + list(args), capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def py_mint(secret, *extra, v1=False):
    args = ["mint", "--secret", secret, "--key-id", "k1", "--tenant", "acme",
            "--scope", "view.read,media.read", "--expires", str(NOW + 600)] + list(extra)
    if v1:
        args.append("--v1")
    rc, out, err = oracle(*args)
    check(rc == 0, "oracle mint failed: %s" % err)
    return out


def test_pymacaroons_v1_and_v2_verify_in_omnigate():
    for v1 in (False, True):
        tok = py_mint(SECRET, "--route", "/v1/media/", "--method", "GET,HEAD", v1=v1)
        rc, res = og_verify(tok)
        check(rc == 0 and res["ok"], "v1=%s: %s" % (v1, res))
        check(res["tenant"] == "acme" and res["key_id"] == "k1", res)
        check(sorted(res["scopes"]) == ["media.read", "view.read"], res)
        check(res["expires"] == NOW + 600, res)
        rc, res = og_verify(tok, "--method", "GET", "--path", "/v1/media/cat")
        check(rc == 0, res)
        rc, res = og_verify(tok, "--method", "POST", "--path", "/v1/media/cat")
        check(rc == 1 and res["error"] == "forbidden" and res["reason"] == "wrong_method", res)
        rc, res = og_verify(tok, "--method", "GET", "--path", "/v1/o/x")
        check(rc == 1 and res["reason"] == "wrong_route", res)


def test_omnigate_mint_verifies_in_pymacaroons():
    for flag in ([], ["--v1"]):
        rc, tok, err = og("mint", "--root-keys", KEYS, "--key-id", "k1", "--tenant", "acme",
                          "--scope", "view.read,feed.read", "--ttl", "10m", "--route", "/v1/",
                          "--method", "GET", *flag)
        check(rc == 0 and tok, "mint failed: %s" % err)
        rc, out, err = oracle("verify", "--secret", SECRET, "--now", str(NOW), "--tenant", "acme",
                              "--scope", "feed.read", "--path", "/v1/feed/x", "--method", "GET",
                              tok)
        check(rc == 0, "pymacaroons refused %s: %s %s" % (flag, out, err))
        res = json.loads(out)
        check(res["key_id"] == "k1" and res["tenant"] == "acme", res)
        check(res["scopes"] == ["feed.read", "view.read"], res)
        check(NOW + 590 <= res["expires"] <= NOW + 700, res)
        # pymacaroons' verifier enforces the caveats too.
        rc, out, _ = oracle("verify", "--secret", SECRET, "--now", str(NOW), "--method", "POST",
                            tok)
        check(rc == 1, "pymacaroons accepted a POST: %s" % out)
        rc, out, _ = oracle("verify", "--secret", SECRET, "--now", str(NOW + 3600), tok)
        check(rc == 1, "pymacaroons accepted an expired token: %s" % out)


def test_wrong_key_fails_both_ways():
    tok = py_mint(OTHER)  # names k1 but signed with k2's secret
    rc, res = og_verify(tok)
    check(rc == 1 and res["reason"] == "bad_signature" and res["error"] == "unauth", res)
    rc, tok, err = og("mint", "--root-keys", KEYS, "--key-id", "k1", "--tenant", "acme",
                      "--scope", "view.read", "--ttl", "1h")
    check(rc == 0, err)
    rc, out, _ = oracle("verify", "--secret", OTHER, "--now", str(NOW), tok)
    check(rc == 1, "pymacaroons accepted a wrong key: %s" % out)
    rc, out, _ = oracle("verify", "--secret", SECRET, "--now", str(NOW), tok)
    check(rc == 0, out)


def test_unknown_caveat_and_expiry_refused():
    tok = py_mint(SECRET, "--caveat", "time < 2099-01-01T00:00")
    rc, res = og_verify(tok)
    check(rc == 1 and res["reason"] == "unknown_caveat", res)
    rc, tok, _ = og("mint", "--root-keys", KEYS, "--key-id", "k2", "--tenant", "acme",
                    "--scope", "view.read", "--ttl", "60", "--now", "1000")
    rc, res = og_verify(tok, "--now", "1059")
    check(rc == 0 and res["key_id"] == "k2", res)
    rc, res = og_verify(tok, "--now", "1060")
    check(rc == 1 and res["reason"] == "expired", res)


def test_malformed_tokens_and_stdin():
    for bad in ("x", "AAAA", "MDAwZWxvY2F0aW9uIAowMDAwaWRlbnRpZmllciBrMTphYmMK",
                "MDAwZWxvY2F0aW9uIAowMDE2aWRlbnRpZmllciBrMTphYmMKMDAxNmNpZCB0ZW5hbnQgPSBhY21lCg=="):
        rc, res = og_verify(bad)
        check(rc == 1 and res["reason"] == "malformed_token", (bad, res))
    tok = py_mint(SECRET)
    rc, out, err = og("verify", "--root-keys", KEYS, "-", stdin=tok + "\n")
    check(rc == 0 and json.loads(out)["ok"], out + err)


def test_key_file_mode_enforced():
    loose = keyfile("k1 = %s\n" % SECRET, mode=0o644, name="loose.keys")
    rc, out, err = og("mint", "--root-keys", loose, "--key-id", "k1", "--tenant", "acme",
                      "--scope", "view.read", "--ttl", "1h")
    check(rc != 0 and not out, out)
    check(loose in err and "0600" in err, err)
    check(SECRET not in err, "secret leaked")


if __name__ == "__main__":
    run_tests(globals())
