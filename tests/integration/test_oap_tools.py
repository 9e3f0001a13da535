"""`omnigate hash` against b3sum, `omnigate oap-dump` on the golden vectors
(testing/vectors/oap, docs/OAP.md)."""
import glob
import json
import os
import subprocess
import tempfile

from harness import *

VEC = os.path.join(ROOT, "testing", "vectors", "oap")


def b3sum(path):
    out = subprocess.run(["b3sum", "--no-names", path], stdout=subprocess.PIPE, check=True)
    return "b3:" + out.stdout.decode().split()[0]


def vector_bytes(name):
    with open(os.path.join(VEC, name + ".hex")) as f:
        return bytes.fromhex("".join(l for l in f if not l.startswith("#")))


def dump(data):
    p = subprocess.run([OMNIGATE, "oap-dump"], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    return p.returncode, [json.loads(l) for l in p.stdout.decode().splitlines()]


def test_hash_matches_b3sum():
    sizes = [0, 1, 1023, 1024, 1025, 65535, 65536, 65537, 1048575, 1048576, 1048577, 3 * 65536 + 7]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for n in sizes:
            p = os.path.join(d, "f%d" % n)
            with open(p, "wb") as f:
                f.write(os.urandom(n))
            paths.append(p)
        out = subprocess.run([OMNIGATE, "hash"] + paths, stdout=subprocess.PIPE, check=True)
        lines = out.stdout.decode().splitlines()
        check(len(lines) == len(paths), lines)
        for line, p in zip(lines, paths):
            check(line == "%s  %s" % (b3sum(p), p), (line, p))


def test_hash_stdin_and_errors():
    data = os.urandom(200000)
    out = subprocess.run([OMNIGATE, "hash", "-"], input=data, stdout=subprocess.PIPE, check=True)
    want = subprocess.run(["b3sum", "--no-names"], input=data, stdout=subprocess.PIPE).stdout
    check(out.stdout.decode() == "b3:%s  -\n" % want.decode().strip(), out.stdout)
    with tempfile.NamedTemporaryFile() as f:
        p = subprocess.run([OMNIGATE, "hash", "/nonexistent/x", f.name], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        check(p.returncode == 1, p.returncode)
        check(b"/nonexistent/x" in p.stderr, p.stderr)
        check(p.stdout.decode() == "%s  %s\n" % (b3sum(f.name), f.name), p.stdout)


VALID = {
    "hello_req": [dict(flags=["REQ"], app_proto_id=0, corr_id=1, code=0)],
    "hello_resp": [dict(flags=["RESP"], app_proto_id=0, corr_id=1, code=200)],
    "start_nocap": [dict(flags=["REQ", "START"], app_proto_id=1, corr_id=7, cap_len=0)],
    "start_cap": [dict(flags=["REQ", "START"], corr_id=8, cap_len=14, payload_len=19)],
    "data_hdr": [dict(flags=["RESP"], code=200, corr_id=9, payload_len=93)],
    "stream": [dict(flags=["RESP", "START"], offset=0), dict(flags=["RESP"], offset=55),
               dict(flags=["RESP", "END"], offset=97)],
    "end": [dict(flags=["RESP", "END"], payload_len=4)],
    "credit": [dict(flags=["EVENT", "ACK_REQ"], credit=16, corr_id=10)],
    "comp": [dict(flags=["RESP", "COMP"], corr_id=11)],
    "proof_req": [dict(flags=["REQ"], app_proto_id=1, corr_id=12, payload_len=116)],
    "proof_resp": [dict(flags=["RESP"], code=200, corr_id=12, payload_len=219)],
}

INVALID = {
    "bad_truncated": ("truncated", 99),
    "bad_too_large": ("too_large", 0),
    "bad_len": ("bad_len", 0),
    "bad_version": ("bad_version", 4),
    "bad_flags": ("bad_flags", 6),
    "bad_cap_not_start": ("cap_not_start", 28),
    "bad_cap_len": ("cap_len", 28),
}


def test_dump_valid_vectors():
    for name, frames in VALID.items():
        rc, lines = dump(vector_bytes(name))
        check(rc == 0, (name, rc))
        check(len(lines) == len(frames), (name, lines))
        for got, want in zip(lines, frames):
            for k in ("len", "ver", "flags", "code", "app_proto_id", "tenant", "cap_len",
                      "corr_id", "payload_len"):
                check(k in got, (name, k))
            check(got["ver"] == 1)
            check(len(got["tenant"]) == 32)
            for k, v in want.items():
                check(got[k] == v, (name, k, got[k], v))
    rc, lines = dump(vector_bytes("data_hdr"))
    check(lines[0]["data_hdr"]["size"] == 5, lines)
    check(lines[0]["data_hdr"]["obj"].startswith("b3:ea8f163d"), lines)
    rc, lines = dump(vector_bytes("hello_req"))
    check(lines[0]["hello"] == {"max_frame": 1048576, "max_inflight": 64, "flags": 255,
                                "versions": [1]}, lines)
    # every valid vector back to back, one stream
    allv = b"".join(vector_bytes(n) for n in VALID)
    rc, lines = dump(allv)
    check(rc == 0 and len(lines) == sum(len(v) for v in VALID.values()), (rc, len(lines)))


def test_dump_invalid_vectors():
    for name, (err, off) in INVALID.items():
        rc, lines = dump(vector_bytes(name))
        check(rc != 0, (name, rc))
        check(lines[-1] == {"error": err, "offset": off}, (name, lines))
    # an error after a good frame reports the stream offset
    good = vector_bytes("end")
    rc, lines = dump(good + vector_bytes("bad_version"))
    check(rc != 0 and lines[0]["flags"] == ["RESP", "END"], lines)
    check(lines[-1] == {"error": "bad_version", "offset": len(good) + 4}, lines)
    # bad DATA headers are valid frames without data_hdr
    for name in ("bad_data_hdr", "bad_data_hdr_dup", "bad_data_hdr_array"):
        rc, lines = dump(vector_bytes(name))
        check(rc == 0 and len(lines) == 1 and "data_hdr" not in lines[0], (name, lines))


def test_all_vectors_listed():
    names = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(VEC, "*.hex"))}
    listed = set(VALID) | set(INVALID) | {"bad_data_hdr", "bad_data_hdr_dup",
                                          "bad_data_hdr_array", "comp_plain"}
    check(names == listed, names ^ listed)


if __name__ == "__main__":
    run_tests(globals())
