#!/usr/bin/python3
"""Load against the reference services: several connections, each keeping
DEPTH requests in flight (multiplexed by corr_id), for a fixed time per
operation. Prints one JSON line per operation: ops/s and latency p50/p99.

    OMNIGATE_BUILD=build testing/performance/substrate-load.py [--seconds 3]
        [--conns 4] [--depth 16]

Operations: index resolve, storage 4 KiB get, storage 64 KiB range get (of a
1 MiB object), mailbox send, mailbox recv+ack. Python is the client, so the
numbers are a floor set by the client as much as by the service; they are
for comparing builds, not for absolute claims.
"""
import argparse
import json
import os
import select
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
import harness  # noqa: E402
from oap_client import (APP_INDEX, APP_MAILBOX, APP_STORAGE, REQ, OapClient,  # noqa: E402
                        data_payload, decode, encode)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


def run(port, app, make_req, seconds, conns, depth, on_resp=None):
    """make_req(i) → (hdr dict, body). Returns the result dict."""
    cs = [OapClient.tcp(port) for _ in range(conns)]
    for c in cs:
        c.hello()
    sent_at = [dict() for _ in cs]
    lat, codes = [], {}
    n = 0
    t_end = time.time() + seconds

    def fire(ci):
        nonlocal n
        c = cs[ci]
        hdr, body = make_req(n)
        corr = c.corr()
        sent_at[ci][corr] = (time.perf_counter(), hdr)
        c.send(encode(REQ, app, corr, data_payload(hdr, body)))
        n += 1

    for ci in range(conns):
        for _ in range(depth):
            fire(ci)
    done = 0
    t0 = time.time()
    by_sock = {c.s: i for i, c in enumerate(cs)}
    while any(sent_at):
        r, _, _ = select.select([c.s for c in cs], [], [], 5)
        if not r:
            raise RuntimeError("no answer within 5 s")
        for s in r:
            ci = by_sock[s]
            c = cs[ci]
            c.buf += s.recv(1 << 20)
            while True:
                f, c.buf = decode(c.buf)
                if f is None:
                    break
                sent = sent_at[ci].pop(f.corr, None)
                if sent is None:
                    continue
                lat.append(time.perf_counter() - sent[0])
                codes[f.code] = codes.get(f.code, 0) + 1
                if on_resp:
                    on_resp(c, f, sent[1])
                done += 1
                if time.time() < t_end:
                    fire(ci)
    elapsed = time.time() - t0
    for c in cs:
        c.close()
    return {"ops": done, "ops_per_s": round(done / elapsed, 1),
            "p50_ms": round(pct(lat, 0.50) * 1000, 3), "p99_ms": round(pct(lat, 0.99) * 1000, 3),
            "codes": codes, "conns": conns, "depth": depth}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--depth", type=int, default=16)
    a = ap.parse_args()
    common = (a.seconds, a.conns, a.depth)

    idx = harness.start_substrate("index")
    sto = harness.start_substrate("storage")
    mbx = harness.start_substrate("mailbox")
    try:
        c = OapClient.tcp(idx.port)
        for i in range(1000):
            c.call(APP_INDEX, {"op": "put", "name": "page/%04d" % i},
                   json.dumps({"parts": {"n": i}}).encode())
        c.close()
        res = run(idx.port, APP_INDEX,
                  lambda i: ({"op": "resolve", "name": "page/%04d" % (i % 1000)}, b""), *common)
        print(json.dumps(dict(op="index.resolve", **res)), flush=True)

        c = OapClient.tcp(sto.port)
        small = [c.call(APP_STORAGE, {"op": "put"}, os.urandom(4096))[1]["obj"]
                 for _ in range(64)]
        big = c.put_stream(APP_STORAGE, {"op": "put"}, os.urandom(1 << 20))[1]["obj"]
        c.close()
        res = run(sto.port, APP_STORAGE,
                  lambda i: ({"op": "get", "obj": small[i % 64]}, b""), *common)
        print(json.dumps(dict(op="storage.get_4k", **res)), flush=True)
        res = run(sto.port, APP_STORAGE,
                  lambda i: ({"op": "get", "obj": big, "off": (i % 15) * 65536,
                              "len": 65536 - 200}, b""), *common)
        print(json.dumps(dict(op="storage.range_64k", **res)), flush=True)

        body = b"m" * 256
        # 1000 channels of depth 1000: room for a million sends.
        res = run(mbx.port, APP_MAILBOX,
                  lambda i: ({"op": "send", "channel": "bench-%d" % (i % 1000)}, body), *common)
        print(json.dumps(dict(op="mailbox.send", **res)), flush=True)

        got = {"msgs": 0}

        def ack(c, f, req):
            # Ack what a recv returned, on the same connection (fire and
            # forget: the pump ignores answers it did not time).
            hdr, b = f.data()
            if hdr.get("count"):
                ids = [m["id"] for m in json.loads(b)["messages"]]
                got["msgs"] += len(ids)
                c.send(encode(REQ, APP_MAILBOX, 1 << 62 | f.corr,
                              data_payload({"op": "ack", "channel": req["channel"],
                                            "ids": ids})))

        res = run(mbx.port, APP_MAILBOX,
                  lambda i: ({"op": "recv", "channel": "bench-%d" % (i % 1000), "max": 1}, b""),
                  *common, on_resp=ack)
        print(json.dumps(dict(op="mailbox.recv_ack", messages=got["msgs"], **res)), flush=True)
    finally:
        for s in (idx, sto, mbx):
            s.stop()


if __name__ == "__main__":
    main()
