"""Verified byte ranges (docs/API.md "Verified ranges"): every 206 is checked
64 KiB group by group against the object's BLAKE3 address with a slice
proof from storage; a corrupting storage service gets its bad group cut
before a byte of it is sent; the outboard route and `omnigate verify-range`
let a client check a range it got from anywhere. Real processes, real
sockets, curl for downloads, b3sum for addresses."""
import json
import os
import subprocess
import tempfile

from harness import *
from profiles import auth, mint, profile_tests, start_profile

G = 65536
TMP = tempfile.mkdtemp(prefix="ranges-")

# Ranges of a 4 MiB object (clip-4, 64 groups): at the start, inside one
# group, across a group boundary, the middle, the end, a suffix, aligned
# whole groups, and the whole object as a range.
RANGES = ["0-99", "1000-2000", "65535-65536", "100000-300000", "2097152-2162687",
          "4000000-4194303", "-500", "4194000-", "0-4194303", "131071-131072"]


def b3(data):
    out = subprocess.run(["b3sum", "--no-names"], input=data, check=True, capture_output=True)
    return "b3:" + out.stdout.decode().strip()


def span(r, size):
    a, b = r.split("-")
    if a == "":
        return size - int(b), size - 1
    return int(a), (min(int(b), size - 1) if b else size - 1)


def curl(p, path, rng=None, out=None):
    """(exit code, status, bytes written) of a curl download."""
    out = out or os.path.join(TMP, "out")
    args = ["curl", "-s", "-o", out, "-w", "%{http_code}", "-H",
            "Authorization: Bearer " + p.token, p.og.url + path]
    if rng:
        args[1:1] = ["-r", rng]
    r = subprocess.run(args, capture_output=True, timeout=30)
    with open(out, "rb") as f:
        return r.returncode, int(r.stdout or b"0"), f.read()


def whole(p, name):
    rc, st, data = curl(p, "/v1/media/" + name)
    check(rc == 0 and st == 200, (rc, st))
    return data


def range_kind(p):
    return p.metric("integrity_failures_total", {"kind": "range"}) or 0


# The verified group cache would answer repeated ranges without storage:
# the tests that count storage's answers turn it off.
NO_CACHE = ("--range-cache", "0")


def every_range_is_verified(prof):
    p = start_profile(prof, *NO_CACHE)
    data = whole(p, "clip-4")
    check(len(data) == 4 << 20)
    before = p.metric("downstream_requests_total", {"op": "proof"}) or 0
    for r in RANGES:
        a, b = span(r, len(data))
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        check(rc == 0 and st == 206, (r, rc, st))
        check(got == data[a:b + 1], "range %s: wrong bytes" % r)
    # Every range of this 64-group object asked storage for its proof.
    proofs = (p.metric("downstream_requests_total", {"op": "proof"}) or 0) - before
    check(proofs == len(RANGES), "proofs %s for %d ranges" % (proofs, len(RANGES)))
    # An object of one group (clip-1 is 512 KiB: use a small PUT) is its
    # own proof: read whole, hashed, sliced.
    small = os.urandom(5000)
    st, _, doc = p.get("/v1/o", method="PUT", body=small)
    check(st in (200, 201), (st, doc))
    rc, st, got = curl(p, "/v1/o/" + doc["obj"], "100-199")
    check(rc == 0 and st == 206 and got == small[100:200], (rc, st, len(got)))
    check(range_kind(p) == 0)


profile_tests(globals(), "every_range_is_verified", every_range_is_verified)


def start_corrupting(op):
    """macronode whose storage flips a byte in every answer of op."""
    return start_profile("macronode", *NO_CACHE,
                         sub_extra={"storage": ["--corrupt-rate", "1", "--corrupt-op", op]})


def test_corrupt_group_is_cut_before_its_bytes():
    p = start_profile("macronode", *NO_CACHE)
    data = whole(p, "clip-4")
    p.faults("storage", corrupt_rate="1", corrupt_op="get")
    cuts = []
    for r in RANGES:
        a, b = span(r, len(data))
        before = range_kind(p)
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        # Never a wrong byte: what came is a prefix of the true range ...
        check(got == data[a:a + len(got)] if st == 206 else True, "range %s: wrong bytes" % r)
        check(range_kind(p) == before + 1, "range %s: failures %s -> %s" % (r, before, range_kind(p)))
        if st == 502:
            # ... the first group was bad: a clean error, no body bytes.
            check(json.loads(got)["error"] == "bad_gateway", got[:200])
            continue
        # ... or a 206 cut short (curl 18: fewer bytes than Content-Length)
        # exactly where a group begins.
        check(st == 206 and rc == 18 and len(got) < b - a + 1, (r, st, rc, len(got)))
        cuts.append(r)
        check((a + len(got)) % G == 0, "range %s cut at %d, inside a group" % (r, a + len(got)))
    # The corrupted byte falls anywhere in the groups read, so some range
    # lost a later group and was cut (the whole object as a range has 63
    # chances in 64 alone; all ten ranges miss it about once in 2000 runs).
    check(len(cuts) >= 1, "cut: %s" % cuts)
    # The log names the object and the group.
    ev = [json.loads(l) for l in p.log_text().splitlines()
          if l.startswith("{") and "integrity_failure" in l]
    check(ev and all(e["kind"] == "range" for e in ev), ev[:3])
    check(any("group" in e for e in ev), ev[:3])
    # Healthy storage again: the same ranges are whole.
    p.faults("storage", corrupt_rate="0")
    for r in RANGES:
        a, b = span(r, len(data))
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        check(rc == 0 and st == 206 and got == data[a:b + 1], (r, rc, st))


def test_ranges_in_pieces_that_straddle_groups():
    # A storage service with 20 KiB frames streams a range in ~20 KiB
    # pieces: groups are gathered across pieces before they are checked.
    p = start_profile("macronode", *NO_CACHE, sub_extra={"storage": ["--max-frame", "20KiB"]})
    data = whole(p, "clip-4")
    for r in RANGES:
        a, b = span(r, len(data))
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        check(rc == 0 and st == 206 and got == data[a:b + 1], (r, rc, st))
    p.faults("storage", corrupt_rate="1", corrupt_op="get")
    for r in ("0-4194303", "100000-900000"):
        a, b = span(r, len(data))
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        check(got == data[a:a + len(got)] if st == 206 else st == 502, (r, st))
        check(st == 502 or (a + len(got)) % G == 0, (r, len(got)))
    check(range_kind(p) == 2, range_kind(p))


def range_cache_serves_verified_groups(prof):
    p = start_profile(prof, "--range-cache", "1MiB")
    data = whole(p, "clip-4")
    ranges = ["100000-165535", "1000-2000", "4000000-4194303", "-500"]
    for r in ranges:  # first time: proof and groups from storage
        a, b = span(r, len(data))
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        check(rc == 0 and st == 206 and got == data[a:b + 1], (r, rc, st))
    calls = p.metric("downstream_requests_total", {"service": "storage"})
    hits = p.metric("range_cache_hits_total") or 0
    for r in ranges:  # again: every group is cached, no storage call at all
        a, b = span(r, len(data))
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        check(rc == 0 and st == 206 and got == data[a:b + 1], (r, rc, st))
    check(p.metric("downstream_requests_total", {"service": "storage"}) == calls,
          "cached ranges called storage")
    check(p.metric("range_cache_hits_total") == hits + len(ranges))
    # Cache-Control: no-cache goes to storage (has, proof, get) and checks again.
    st, _, got = p.get("/v1/media/clip-4", headers={"Range": "bytes=1000-2000",
                                                    "Cache-Control": "max-age=0, no-cache"})
    check(st == 206 and got == data[1000:2001], st)
    check(p.metric("downstream_requests_total", {"service": "storage"}) == calls + 3,
          (calls, p.metric("downstream_requests_total", {"service": "storage"})))
    # HEAD and If-None-Match of a cached object need no storage call either.
    st, h, _ = p.get("/v1/media/clip-4", method="HEAD", headers={"Range": "bytes=5-9"})
    check(st == 206 and h["content-range"] == "bytes 5-9/%d" % len(data), (st, h))
    # The budget holds: 40 groups of 64 KiB do not fit in 1 MiB.
    for g in range(40):
        curl(p, "/v1/media/clip-4", "%d-%d" % (g * G + 7, g * G + 8))
    check(p.metric("range_cache_bytes") <= 1 << 20, p.metric("range_cache_bytes"))
    check(p.metric("range_cache_evictions_total") > 0)
    if p.macro:
        # Cached groups were checked when they were stored: a storage node
        # that now corrupts everything cannot reach them, and a range that
        # needs storage is still checked.
        p.faults("storage", corrupt_rate="1", corrupt_op="get")
        last = "%d-%d" % (39 * G + 7, 39 * G + 8)
        rc, st, got = curl(p, "/v1/media/clip-4", last)
        check(st == 206 and got == data[39 * G + 7:39 * G + 9], (st, got))
        before = range_kind(p)
        rc, st, got = curl(p, "/v1/media/clip-4", "%d-%d" % (2 * G, 2 * G + 10))
        check(st == 502 and range_kind(p) == before + 1, (st, range_kind(p)))


profile_tests(globals(), "range_cache_serves_verified_groups", range_cache_serves_verified_groups)


def test_corrupt_proof_is_502_with_no_bytes():
    p = start_corrupting("proof")
    for r in RANGES:
        before = range_kind(p)
        rc, st, got = curl(p, "/v1/media/clip-4", r)
        check(st == 502 and json.loads(got)["error"] == "bad_gateway", (r, st, got[:200]))
        check(range_kind(p) == before + 1)
    # Whole objects do not use proofs: still served (and hashed whole).
    rc, st, got = curl(p, "/v1/media/clip-4")
    check(rc == 0 and st == 200 and len(got) == 4 << 20, (rc, st))


def test_verification_off_serves_ranges_as_read():
    # The switch that measures verification's cost: off, a corrupting
    # storage's bytes go out as read (what every other gateway does).
    p = start_profile("macronode", "--verify-ranges", "false")
    data = whole(p, "clip-4")
    p.faults("storage", corrupt_rate="1", corrupt_op="get")
    rc, st, got = curl(p, "/v1/media/clip-4", "100000-300000")
    check(rc == 0 and st == 206 and len(got) == 200001)
    check(got != data[100000:300001], "a corrupted range came back right")
    check(range_kind(p) == 0)
    check(p.metric("downstream_requests_total", {"op": "proof"}) is None)


def outboard_of(p, addr):
    rc, st, ob = curl(p, "/v1/o/%s/outboard" % addr, out=os.path.join(TMP, "ob"))
    check(rc == 0 and st == 200, (rc, st, ob[:200]))
    return ob


def outboard_and_verify_range(prof):
    p = start_profile(prof)
    data = whole(p, "clip-4")
    addr = b3(data)
    ob = outboard_of(p, addr)
    check(len(ob) == 64 * 32, len(ob))
    obf = os.path.join(TMP, "ob")

    def verify_obj(obj, rng, part, *extra):
        f = os.path.join(TMP, "part")
        with open(f, "wb") as fh:
            fh.write(part)
        return subprocess.run([OMNIGATE, "verify-range", obj, rng, f] + list(extra),
                              capture_output=True, text=True, timeout=30)

    def verify(rng, part, *extra):
        return verify_obj(addr, rng, part, *extra)

    # A range of whole groups, downloaded with curl -r: checked, exit 0.
    rc, st, part = curl(p, "/v1/media/clip-4", "131072-393215")
    check(st == 206)
    r = verify("131072-393215", part, "--outboard", obf)
    check(r.returncode == 0 and "ok: bytes 131072-393215" in r.stdout, (r.stdout, r.stderr))
    # The last group is short: its size comes from /SIZE.
    tail = data[4128768:]
    r = verify("4128768-4194303/4194304", tail, "--outboard", obf)
    check(r.returncode == 0, r.stderr)
    # One flipped byte: exit 1, naming the group.
    bad = bytearray(part)
    bad[70000] ^= 1
    r = verify("131072-393215", bytes(bad), "--outboard", obf)
    check(r.returncode == 1 and "group 3" in r.stderr, (r.returncode, r.stderr))
    # A range that starts inside a group: the whole groups are checked, the
    # rest named with the aligned range to fetch; exit 3.
    r = verify("100000-300000", data[100000:300001], "--outboard", obf)
    check(r.returncode == 3 and "ok: bytes 131072-262143" in r.stdout, (r.stdout, r.stderr))
    check("fetch bytes 65536-327679" in r.stderr, r.stderr)
    # A tampered outboard does not climb to the address: exit 1.
    tob = bytearray(ob)
    tob[5 * 32] ^= 0x80
    with open(obf, "wb") as fh:
        fh.write(tob)
    r = verify("131072-393215", part, "--outboard", obf)
    check(r.returncode == 1 and "outboard does not match" in r.stderr, r.stderr)
    if p.macro:
        # Straight from a storage service (the size comes with it).
        r = verify("4128768-4194303", tail, "--storage", "unix:" + p.storage_sock)
        check(r.returncode == 0, r.stderr)
    # Small objects have an empty outboard and are checked whole.
    small = os.urandom(3000)
    st, _, doc = p.get("/v1/o", method="PUT", body=small)
    check(outboard_of(p, doc["obj"]) == b"")
    r = verify_obj(doc["obj"], "0-2999/3000", small, "--outboard", obf)
    check(r.returncode == 0 and "the whole object" in r.stdout, (r.stdout, r.stderr))
    r = verify_obj(doc["obj"], "0-999", small[:1000], "--outboard", obf)
    check(r.returncode == 3 and "checked whole" in r.stderr, r.stderr)
    # A file that is not the range's length: exit 2.
    r = verify_obj(doc["obj"], "0-2999", small[:10], "--outboard", obf)
    check(r.returncode == 2 and "exactly" in r.stderr, r.stderr)
    # Unknown objects: 404; a bad address: 400.
    st, _, _ = p.get("/v1/o/b3:%s/outboard" % ("0" * 64))
    check(st == 404, st)
    st, _, _ = p.get("/v1/o/b3:xyz/outboard")
    check(st == 400, st)


profile_tests(globals(), "outboard_and_verify_range", outboard_and_verify_range)


def test_corrupt_outboard_is_502():
    p = start_corrupting("outboard")
    data = whole(p, "clip-4")
    rc, st, got = curl(p, "/v1/o/%s/outboard" % b3(data))
    check(st == 502, (st, got[:200]))
    check(p.metric("integrity_failures_total", {"kind": "outboard"}) == 1)


if __name__ == "__main__":
    run_tests(globals())
