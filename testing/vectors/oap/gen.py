#!/usr/bin/python3
"""Generate the OAP/1 golden vectors (docs/OAP.md "Golden vectors").

An encoder independent of liboap: the C unit tests decode these files to the
fields listed in docs/OAP.md and re-encode them to the same bytes. Also
writes the seed corpora for tests/fuzz/oap_decode and tests/fuzz/oap_data_hdr.
The COMP vector needs the `zstd` command. The slice-proof vectors need the
`b3sum` command (the object's address) and a built omnigate-substrate (the
proof's values, read back from a running storage service: the unit test
checks them against b3sum's address). Run from anywhere:
    /usr/bin/python3 testing/vectors/oap/gen.py
"""
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
FUZZ_DEC = os.path.join(ROOT, "tests", "fuzz", "corpus", "oap_decode")
FUZZ_HDR = os.path.join(ROOT, "tests", "fuzz", "corpus", "oap_data_hdr")

REQ, RESP, EVENT, START, END, ACK_REQ, COMP, APP_E2E = (1 << i for i in range(8))
TENANT = bytes.fromhex("0123456789abcdef0011223344556677")
ZERO_TENANT = bytes(16)
HELLO_ADDR = "b3:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"


def frame(flags, code, app, tenant, corr, payload=b"", cap=b"", ver=1, length=None,
          cap_len=None):
    n = 38 + len(cap) + len(payload) if length is None else length
    cl = len(cap) if cap_len is None else cap_len
    return struct.pack(">IHHHH16sHQ", n, ver, flags, code, app, tenant, cl, corr) + cap + payload


def data(hdr, body=b""):
    h = hdr.encode()
    return struct.pack(">H", len(h)) + h + body


def zstd(raw):
    return subprocess.run(["zstd", "-q", "-c", "-19", "--no-check"], input=raw,
                          stdout=subprocess.PIPE, check=True).stdout


hello_req = frame(REQ, 0, 0, ZERO_TENANT, 1,
                  b'{"max_frame":1048576,"max_inflight":64,"flags":255,"versions":[1]}')
hello_resp = frame(RESP, 200, 0, ZERO_TENANT, 1,
                   b'{"max_frame":65536,"max_inflight":32,"flags":127,"versions":[1]}')
start_nocap = frame(REQ | START, 0, 1, TENANT, 7,
                    data('{"op":"GET","obj":"%s"}' % HELLO_ADDR))
start_cap = frame(REQ | START, 0, 1, TENANT, 8, data('{"op":"PUT"}', b"hello"),
                  cap=b"macaroon-bytes")
data_hdr = frame(RESP, 200, 1, TENANT, 9, data('{"obj":"%s","size":5}' % HELLO_ADDR, b"hello"))
stream_start = frame(RESP | START, 200, 1, TENANT, 10, data('{"size":12}', b"abcd"))
stream_mid = frame(RESP, 200, 1, TENANT, 10, b"efgh")
stream_end = frame(RESP | END, 200, 1, TENANT, 10, b"ijkl")
credit = frame(EVENT | ACK_REQ, 0, 1, TENANT, 10, struct.pack(">I", 16))
comp_plain = data('{"obj":"%s","size":4096}' % HELLO_ADDR, b"a" * 4096)
comp = frame(RESP | COMP, 200, 1, TENANT, 11, zstd(comp_plain))

# Slice proofs: an object of three 64 KiB groups (the last 1000 bytes),
# byte i = i % 251; the proof of bytes 65536-131071 (group 1 alone).
PROOF_OBJ = bytes(i % 251 for i in range(2 * 65536 + 1000))


def b3sum(raw):
    out = subprocess.run(["b3sum", "--no-names"], input=raw, stdout=subprocess.PIPE, check=True)
    return "b3:" + out.stdout.decode().strip()


def proof_from_storage(addr):
    """The proof body of group 1, as the reference storage service answers."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    from oap_client import OapClient
    sub = os.path.join(ROOT, "build", "omnigate-substrate")
    socks = [socket.socket() for _ in range(2)]
    for k in socks:
        k.bind(("127.0.0.1", 0))
    port, admin = (k.getsockname()[1] for k in socks)
    for k in socks:
        k.close()
    proc = subprocess.Popen([sub, "--role", "storage", "--listen", "127.0.0.1:%d" % port,
                             "--admin", "127.0.0.1:%d" % admin], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c = OapClient.tcp(port)
                break
            except OSError:
                time.sleep(0.05)
        c.hello()
        code, _, _ = c.call(1, {"op": "put"}, PROOF_OBJ)
        assert code == 201, code
        code, hdr, body = c.call(1, {"op": "proof", "obj": addr, "off": 65536, "len": 65536})
        assert code == 200 and hdr["first"] == 1 and hdr["last"] == 1, (code, hdr)
        return body
    finally:
        proc.terminate()
        proc.wait()


PROOF_ADDR = b3sum(PROOF_OBJ)
proof_req = frame(REQ, 0, 1, TENANT, 12,
                  data('{"op":"proof","obj":"%s","off":65536,"len":65536}' % PROOF_ADDR))
proof_resp = frame(RESP, 200, 1, TENANT, 12,
                   data('{"obj":"%s","size":%d,"groups":3,"first":1,"last":1}'
                        % (PROOF_ADDR, len(PROOF_OBJ)), proof_from_storage(PROOF_ADDR)))

valid = {
    "hello_req": hello_req,
    "hello_resp": hello_resp,
    "start_nocap": start_nocap,
    "start_cap": start_cap,
    "data_hdr": data_hdr,
    "stream": stream_start + stream_mid + stream_end,
    "end": stream_end,
    "credit": credit,
    "comp": comp,
    "proof_req": proof_req,
    "proof_resp": proof_resp,
}
invalid = {
    "bad_truncated": hello_req[:-5],
    "bad_too_large": frame(REQ, 0, 1, TENANT, 2, length=1048577),
    "bad_len": frame(REQ, 0, 1, TENANT, 2, length=37),
    "bad_version": frame(REQ, 0, 1, TENANT, 2, b"x", ver=2),
    "bad_flags": frame(REQ | 0x100, 0, 1, TENANT, 2, b"x"),
    "bad_cap_not_start": frame(REQ, 0, 1, TENANT, 2, b"x", cap=b"capa"),
    "bad_cap_len": frame(REQ | START, 0, 1, TENANT, 2, b"x", cap_len=100),
    # The frame is valid; its DATA payload is not (header_len past the end).
    "bad_data_hdr": frame(REQ, 0, 1, TENANT, 3, struct.pack(">H", 200) + b'{"op":"GET"}'),
    "bad_data_hdr_dup": frame(REQ, 0, 1, TENANT, 4, data('{"op":"GET","op":"PUT"}')),
    "bad_data_hdr_array": frame(REQ, 0, 1, TENANT, 5, data('["op"]')),
}


def write_hex(name, raw, comment):
    with open(os.path.join(HERE, name + ".hex"), "w") as f:
        f.write("# %s\n" % comment)
        for i in range(0, len(raw), 32):
            f.write(raw[i:i + 32].hex() + "\n")


def main():
    os.makedirs(FUZZ_DEC, exist_ok=True)
    os.makedirs(FUZZ_HDR, exist_ok=True)
    for name, raw in list(valid.items()) + list(invalid.items()):
        write_hex(name, raw, "OAP/1 golden vector %s, %d bytes; see docs/OAP.md" % (name, len(raw)))
        with open(os.path.join(FUZZ_DEC, name + ".bin"), "wb") as f:
            f.write(raw)
    with open(os.path.join(FUZZ_DEC, "all_valid.bin"), "wb") as f:
        f.write(b"".join(valid.values()))
    for name, raw in list(valid.items()) + list(invalid.items()):
        if len(raw) >= 38 and name not in ("hello_req", "hello_resp", "credit", "comp",
                                           "bad_truncated"):
            cl = struct.unpack(">H", raw[28:30])[0]
            payload = raw[38 + cl:struct.unpack(">I", raw[:4])[0]]
            if len(payload) >= 2:
                with open(os.path.join(FUZZ_HDR, name + ".bin"), "wb") as f:
                    f.write(payload)
    with open(os.path.join(FUZZ_HDR, "comp_plain.bin"), "wb") as f:
        f.write(comp_plain)
    with open(os.path.join(HERE, "comp_plain.hex"), "w") as f:
        f.write("# inflated payload of comp.hex\n")
        for i in range(0, len(comp_plain), 32):
            f.write(comp_plain[i:i + 32].hex() + "\n")


if __name__ == "__main__":
    main()
