#!/usr/bin/python3
"""The mailbox over HTTP against Redis Streams, in one run, same message.

  mailbox.py [--seconds 4] [--rounds 3] [--conns 32] [--size 256]
             [--channels 256] [--batch 10] [--samples 200]
             [--modes micronode,always,batch] [--build DIR] [--json FILE]
             [--publish]

Three modes, each an omnigate stack and the Redis set up to keep messages
the same way (a redis-server of its own on a free loopback port, its own
directory, stopped by PID; never the system service):

  micronode  omnigate --demo, mailbox in RAM (amnesia)
             against redis-server --save '' --appendonly no
  always     macronode, mailbox service --data-dir --no-amnesia --fsync always
             (a 201 after the fdatasync that covers it; concurrent sends share
             one: group commit) against --appendonly yes --appendfsync always
             (a reply after the AOF write and fsync of its event-loop turn)
  batch      macronode, --fsync batch (a 201 after the write, fsync every
             100 ms) against --appendonly yes --appendfsync everysec

Per mode, in alternating order (omnigate then Redis, then Redis then
omnigate, ...) for --rounds rounds:

  send       --conns closed-loop connections, one load-generator thread:
             wrk (mailbox-send.lua) POSTs to /v1/mailbox/s:NNNNNNNNNNNN;
             redis-benchmark runs XADD s:__rand_int__ * body BODY (-r
             --channels), for about --seconds. Both: the same --size-byte
             JSON body on --channels channels / streams. req/s, p50/p99,
             errors (wrk: non-2xx and socket errors; Redis: entries stored
             short of the requests made), server CPU per send.
  recv+ack   the same connections drain what the sends left: receive up to
             --batch messages (GET ?max=N&lease=30s; XREADGROUP GROUP g cI
             COUNT N STREAMS key >), then ack their ids (POST .../ack
             {"ids":[...]}; XACK key g id...), until every channel is empty.
             There is no C load generator for "read, then ack what was read",
             so one asyncio driver here speaks both protocols with the same
             structure (buffered read, synchronous parse); it is likely the
             bottleneck on its own core, which is why server CPU per message
             is reported next to messages/s.
  long-poll  one receiver parks (GET ?max=1&wait=5s; XREADGROUP ... BLOCK
             5000), 10 ms later a second connection sends; the time from
             before the send is written to the receiver's whole answer,
             --samples times per round (p50/p99 over all rounds).

The servers run on CPU 0 and every load generator on CPU 1 (perflib's
pinning). omnigate's rate bucket is on but never reached
(perflib.unreached_rate); Redis has none. Writes build/perf/mailbox.json;
--publish copies it to docs/perf/mailbox.json for render-docs.py. Exit 1 if
any run had an error.
"""
import argparse
import asyncio
import csv
import io
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib  # noqa: E402

MODES = {
    "micronode": {"profile": "micronode", "fsync": None,
                  "redis": ["--save", "", "--appendonly", "no"],
                  "peer": "--save '' --appendonly no"},
    "always": {"profile": "macronode", "fsync": "always",
               "redis": ["--save", "", "--appendonly", "yes", "--appendfsync", "always"],
               "peer": "--appendonly yes --appendfsync always"},
    "batch": {"profile": "macronode", "fsync": "batch",
              "redis": ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
              "peer": "--appendonly yes --appendfsync everysec"},
}
SCOPES = "mailbox.read,mailbox.write"
LEASE = "30s"
LP_CHANNEL = "lp"
PARK_S = 0.010


def channel(i):
    """The i-th channel / stream: redis-benchmark's expansion of
    s:__rand_int__, so both servers see the same names."""
    return "s:%012d" % i


def json_body(size):
    """A JSON object of exactly `size` bytes."""
    pad = size - len('{"pad":""}')
    if pad < 0:
        raise SystemExit("mailbox: --size must be at least 10")
    return '{"pad":"%s"}' % ("x" * pad)


# --- one protocol connection each, alike: a read buffer, a synchronous parse


MORE = object()  # a parse that needs more bytes


class Conn:
    """A keep-alive connection: send() writes one request, reply() waits for
    the next whole answer. Subclasses parse their protocol from the buffer
    (MORE when more bytes are needed)."""

    def __init__(self, reader, writer):
        self.r, self.w, self.buf = reader, writer, bytearray()

    @classmethod
    async def open(cls, port):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    def send(self, data):
        self.w.write(data)

    async def reply(self, timeout=30):
        while True:
            got = self.parse()
            if got is not MORE:
                return got
            chunk = await asyncio.wait_for(self.r.read(65536), timeout)
            if not chunk:
                raise ConnectionError("peer closed")
            self.buf += chunk

    async def call(self, data):
        self.send(data)
        return await self.reply()

    def close(self):
        self.w.close()


class HttpConn(Conn):
    """HTTP/1.1 answers with Content-Length (omnigate always sends it):
    (status, parsed JSON body)."""

    def parse(self):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return MORE
        head = bytes(self.buf[:end]).split(b"\r\n")
        n = 0
        for line in head[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        if len(self.buf) < end + 4 + n:
            return MORE
        body = bytes(self.buf[end + 4:end + 4 + n])
        del self.buf[:end + 4 + n]
        return int(head[0].split(b" ", 2)[1]), json.loads(body) if body else None


class Refused(Exception):
    """An error answer (RESP `-ERR`, an HTTP status that is not the one asked)."""


def resp_parse(buf, i):
    """One RESP2 value from buf at i: (value, next index), or MORE. A nil is
    None."""
    e = buf.find(b"\r\n", i)
    if e < 0:
        return MORE
    t, line = buf[i:i + 1], bytes(buf[i + 1:e])
    if t == b"+":
        return line.decode(), e + 2
    if t == b"-":
        return Refused(line.decode()), e + 2
    if t == b":":
        return int(line), e + 2
    n = int(line)
    if t == b"$":
        if n < 0:
            return None, e + 2
        if len(buf) < e + 2 + n + 2:
            return MORE
        return bytes(buf[e + 2:e + 2 + n]), e + 4 + n
    if n < 0:
        return None, e + 2
    out, j = [], e + 2
    for _ in range(n):
        got = resp_parse(buf, j)
        if got is MORE:
            return MORE
        v, j = got
        out.append(v)
    return out, j


class RedisConn(Conn):
    def parse(self):
        got = resp_parse(self.buf, 0) if self.buf else MORE
        if got is MORE:
            return MORE
        v, j = got
        del self.buf[:j]
        return v


def resp(*args):
    """A command in RESP2."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


# --- the two servers' protocols, behind one interface for the drivers --------


class OmnigateApi:
    name = "omnigate"
    conn = HttpConn

    def __init__(self, port, token, body):
        self.port = port
        self.auth = b"Authorization: Bearer %s\r\n" % token.encode()
        self.body = body.encode()

    def _req(self, method, path, body=None):
        extra = b""
        if body is not None:
            extra = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        return b"%s %s HTTP/1.1\r\nHost: bench\r\n%s%s\r\n%s" % (
            method.encode(), path.encode(), self.auth, extra, body or b"")

    def recv_req(self, ch, n, wait=None, consumer=None):
        q = "?max=%d&lease=%s" % (n, LEASE) + ("&wait=%s" % wait if wait else "")
        return self._req("GET", "/v1/mailbox/%s%s" % (ch, q))

    def recv_ids(self, ans):
        status, js = ans
        if status != 200:
            raise Refused("receive answered %d %s" % (status, js))
        return [m["id"] for m in js["messages"]]

    def ack_req(self, ch, ids):
        return self._req("POST", "/v1/mailbox/%s/ack" % ch, json.dumps({"ids": ids}).encode())

    def acked(self, ans):
        status, js = ans
        return js["acked"] if status == 200 else -1

    def send_req(self, ch):
        return self._req("POST", "/v1/mailbox/%s" % ch, self.body)

    def sent(self, ans):
        return ans[0] == 201


class RedisApi:
    name = "redis"
    conn = RedisConn

    def __init__(self, port, body):
        self.port = port
        self.body = body.encode()

    def recv_req(self, ch, n, wait=None, consumer="c0"):
        block = ("BLOCK", int(wait.rstrip("s")) * 1000) if wait else ()
        return resp("XREADGROUP", "GROUP", "g", consumer, "COUNT", n, *block, "STREAMS", ch, ">")

    def recv_ids(self, ans):
        if isinstance(ans, Refused):
            raise ans
        return [e[0] for e in ans[0][1]] if ans else []

    def ack_req(self, ch, ids):
        return resp("XACK", ch, "g", *ids)

    def acked(self, ans):
        return ans if isinstance(ans, int) else -1

    def send_req(self, ch):
        return resp("XADD", ch, "*", "body", self.body)

    def sent(self, ans):
        return isinstance(ans, bytes)


# --- drivers (asyncio, on the load CPUs) -------------------------------------


def rusage_s(who):
    u = resource.getrusage(who)
    return u.ru_utime + u.ru_stime


async def drain(api, conns, channels, batch, limit_s):
    """recv+ack until every channel is empty (or limit_s): messages, errors,
    empty receives, seconds."""
    live = list(channels)
    stats = {"messages": 0, "errors": 0, "empty": 0}
    t0 = time.monotonic()

    async def one(i, conn):
        k = i
        while live and time.monotonic() - t0 < limit_s:
            ch = live[k % len(live)]
            k += 1
            try:
                ids = api.recv_ids(await conn.call(api.recv_req(ch, batch, consumer="c%d" % i)))
            except Refused as e:
                stats["errors"] += 1
                print("mailbox: %s receive: %s" % (api.name, e), file=sys.stderr)
                continue
            if not ids:
                stats["empty"] += 1
                if ch in live:
                    live.remove(ch)
                continue
            n = api.acked(await conn.call(api.ack_req(ch, ids)))
            if n != len(ids):
                stats["errors"] += 1
            stats["messages"] += max(n, 0)

    cs = [await api.conn.open(api.port) for _ in range(conns)]
    t0 = time.monotonic()
    await asyncio.gather(*(one(i, c) for i, c in enumerate(cs)))
    stats["seconds"] = time.monotonic() - t0
    stats["drained"] = not live
    for c in cs:
        c.close()
    return stats


async def longpoll(api, samples):
    """Latency (ms) from before a send is written to the parked receiver's
    whole answer, `samples` times; and the errors. A refused send is an
    error at once (both connections are opened anew, the receiver unparked)."""
    async def answered(conn):
        got = await conn.reply()
        return got, time.perf_counter()

    lat, errors, rx, tx = [], 0, None, None
    for _ in range(samples):
        if rx is None:
            rx, tx = await api.conn.open(api.port), await api.conn.open(api.port)
        rx.send(api.recv_req(LP_CHANNEL, 1, wait="5s"))
        waiter = asyncio.ensure_future(answered(rx))
        await asyncio.sleep(PARK_S)
        t0 = time.perf_counter()
        if api.sent(await tx.call(api.send_req(LP_CHANNEL))):
            got, t1 = await waiter
            try:
                ids = api.recv_ids(got)
            except Refused:
                ids = []
            if len(ids) == 1 and api.acked(await tx.call(api.ack_req(LP_CHANNEL, ids))) == 1:
                lat.append(1000 * (t1 - t0))
                continue
        waiter.cancel()
        errors += 1
        rx.close()
        tx.close()
        rx = None
    if rx is not None:
        rx.close()
        tx.close()
    return lat, errors


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# --- servers -----------------------------------------------------------------


class Redis:
    """redis-server on a free loopback port with its own directory, pinned
    like omnigate's servers, stopped by PID."""

    def __init__(self, args, tmp):
        self.dir = tempfile.mkdtemp(prefix="redis-", dir=tmp)
        self.port = perflib.free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--daemonize", "no", "--logfile", os.path.join(self.dir, "redis.log")] + args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=perflib.pin(perflib.SERVER_CPUS))
        perflib.wait_port(self.port, self.proc)

    def command(self, *cmds):
        """Pipelined commands, their replies."""
        async def run():
            c = await RedisConn.open(self.port)
            c.send(b"".join(resp(*cmd) for cmd in cmds))
            out = [await c.reply() for _ in cmds]
            c.close()
            return out
        return asyncio.run(run())

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the measurements ----------------------------------------------------------


def measured(pids, fn):
    """fn() with the servers' CPU seconds and the load generators' (this
    process and its children) over it."""
    c0 = sum(perflib.cpu_seconds(p) for p in pids)
    l0 = rusage_s(resource.RUSAGE_SELF) + rusage_s(resource.RUSAGE_CHILDREN)
    out = fn()
    c1 = sum(perflib.cpu_seconds(p) for p in pids)
    l1 = rusage_s(resource.RUSAGE_SELF) + rusage_s(resource.RUSAGE_CHILDREN)
    return out, c1 - c0, l1 - l0


def og_send(stack, token, body, a):
    env = {"MB_TOKEN": token, "MB_BODY": body, "MB_CHANNELS": str(a.channels)}

    def run():
        return perflib.wrk(stack.url, "mailbox-send.lua", a.seconds, a.conns, env=env)
    w, cpu, load = measured(stack.pids, run)
    secs = w["requests"] / max(w["rps"], 1e-9)
    return {"rps": w["rps"], "p50_ms": w["p50_ms"], "p99_ms": w["p99_ms"], "requests": w["requests"],
            "errors": w["non2xx"] + w["socket_errors"],
            "cpu_us": 1e6 * cpu / max(w["requests"], 1), "loader_cpu": load / max(secs, 1e-9),
            "seconds": secs}


def redis_stored(rd, channels):
    return sum(rd.command(*[("XLEN", channel(i)) for i in range(channels)]))


def redis_send(rd, body, a, n):
    before = redis_stored(rd, a.channels)
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(rd.port), "-c", str(a.conns),
           "-n", str(n), "-r", str(a.channels), "--csv", "XADD", "s:__rand_int__", "*", "body", body]

    def run():
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.seconds * 20 + 60,
                           preexec_fn=perflib.pin(perflib.LOAD_CPUS))
        return r, time.monotonic() - t0
    (r, secs), cpu, load = measured([rd.proc.pid], run)
    rows = [row for row in csv.reader(io.StringIO(r.stdout)) if len(row) >= 7]
    if r.returncode != 0 or len(rows) < 2:
        raise RuntimeError("redis-benchmark: %s %s" % (r.stdout[-500:], r.stderr[-500:]))
    row = dict(zip(rows[0], rows[-1]))
    stored = redis_stored(rd, a.channels) - before
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"]), "requests": n,
            "errors": n - stored + r.stderr.count("Error"),
            "cpu_us": 1e6 * cpu / max(n, 1), "loader_cpu": load / max(secs, 1e-9), "seconds": secs}


def recv_ack(api, pids, a):
    def run():
        return asyncio.run(drain(api, a.conns, [channel(i) for i in range(a.channels)], a.batch,
                                 max(30.0, 10 * a.seconds)))
    s, cpu, load = measured(pids, run)
    return {"msgs_per_s": s["messages"] / max(s["seconds"], 1e-9), "messages": s["messages"],
            "seconds": s["seconds"], "empty_receives": s["empty"], "drained": s["drained"],
            "errors": s["errors"] + (0 if s["drained"] else 1),
            "cpu_us_per_msg": 1e6 * cpu / max(s["messages"], 1),
            "loader_cpu": load / max(s["seconds"], 1e-9)}


def lp(api, a):
    t0 = time.monotonic()
    lat, errors = asyncio.run(longpoll(api, a.samples))
    return {"samples_ms": [round(x, 4) for x in lat], "errors": errors,
            "seconds": time.monotonic() - t0}


def run_mode(mode, a, body, tmp):
    m = MODES[mode]
    sub = {}
    if m["fsync"]:
        data = tempfile.mkdtemp(prefix="mailbox-data-", dir=tmp)
        sub = {"mailbox": ["--data-dir", data, "--no-amnesia", "--fsync", m["fsync"]]}
    # The in-process depth cap (micronode) is raised so that no send is
    # refused for it; the mailbox service keeps its 1 000 per channel, which
    # --channels spreads (256 channels hold 256 000 messages).
    stack = perflib.Stack(a.build, profile=m["profile"], sub_extra=sub,
                          extra=["--mailbox-depth-max", "1000000"])
    rd = None
    try:
        rd = Redis(m["redis"], tmp)
        rd.command(*[("XGROUP", "CREATE", ch, "g", "0", "MKSTREAM")
                     for ch in [channel(i) for i in range(a.channels)] + [LP_CHANNEL]])
        token = stack.token(SCOPES)
        og_api, rd_api = OmnigateApi(stack.port, token, body), RedisApi(rd.port, body)
        # Warm both (and learn Redis' rate, to size its request count), then
        # drain what the warm-up sent.
        perflib.wrk(stack.url, "mailbox-send.lua", 1, a.conns,
                    env={"MB_TOKEN": token, "MB_BODY": body, "MB_CHANNELS": str(a.channels)})
        rate = redis_send(rd, body, a, 2000)["rps"]
        for api, pids in ((og_api, stack.pids), (rd_api, [rd.proc.pid])):
            recv_ack(api, pids, a)
        runs = {"omnigate": [], "redis": []}
        for i in range(a.rounds):
            order = ("omnigate", "redis") if i % 2 == 0 else ("redis", "omnigate")
            for name in order:
                if name == "omnigate":
                    r = {"send": og_send(stack, token, body, a),
                         "recv_ack": recv_ack(og_api, stack.pids, a), "longpoll": lp(og_api, a)}
                else:
                    r = {"send": redis_send(rd, body, a, max(1000, int(rate * a.seconds)))}
                    rate = r["send"]["rps"]
                    r["recv_ack"] = recv_ack(rd_api, [rd.proc.pid], a)
                    r["longpoll"] = lp(rd_api, a)
                runs[name].append(r)
                s, q, l = r["send"], r["recv_ack"], r["longpoll"]["samples_ms"]
                print("%-9s %-8s send %8.0f req/s p50 %.2f p99 %.2f ms cpu %.1f us err %d (%.1f s) | "
                      "recv+ack %8.0f msg/s cpu %.1f us/msg err %d (%.1f s) | "
                      "long-poll p50 %.2f p99 %.2f ms err %d (%.1f s)"
                      % (mode, name, s["rps"], s["p50_ms"], s["p99_ms"], s["cpu_us"], s["errors"],
                         s["seconds"], q["msgs_per_s"], q["cpu_us_per_msg"], q["errors"], q["seconds"],
                         percentile(l, 50) or -1, percentile(l, 99) or -1, r["longpoll"]["errors"],
                         r["longpoll"]["seconds"]), file=sys.stderr, flush=True)
    finally:
        if rd:
            rd.close()
        stack.close()
    return {"peer": m["peer"], "runs": runs, "median": {n: summary(rs) for n, rs in runs.items()}}


def summary(rs):
    """Medians over rounds; long-poll percentiles over every sample."""
    med = lambda k, f: statistics.median(r[k][f] for r in rs)  # noqa: E731
    lat = [x for r in rs for x in r["longpoll"]["samples_ms"]]
    return {"send_rps": med("send", "rps"), "send_p50_ms": med("send", "p50_ms"),
            "send_p99_ms": med("send", "p99_ms"), "send_cpu_us": med("send", "cpu_us"),
            "send_loader_cpu": med("send", "loader_cpu"),
            "recv_msgs_per_s": med("recv_ack", "msgs_per_s"),
            "recv_cpu_us_per_msg": med("recv_ack", "cpu_us_per_msg"),
            "recv_loader_cpu": med("recv_ack", "loader_cpu"),
            "lp_p50_ms": percentile(lat, 50), "lp_p99_ms": percentile(lat, 99),
            "lp_max_ms": max(lat) if lat else None, "lp_samples": len(lat),
            "errors": sum(r[k]["errors"] for r in rs for k in ("send", "recv_ack", "longpoll"))}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=4, help="each send run (whole seconds: wrk -d)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--conns", type=int, default=32)
    p.add_argument("--size", type=int, default=256, help="message body bytes (JSON)")
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--batch", type=int, default=10, help="messages per receive (max=N, COUNT N)")
    p.add_argument("--samples", type=int, default=200, help="long-poll sends per round")
    p.add_argument("--modes", default="micronode,always,batch")
    p.add_argument("--build", default=os.environ.get("OG_BUILD", "build"))
    p.add_argument("--json", default=os.path.join(perflib.ROOT, "build", "perf", "mailbox.json"))
    p.add_argument("--publish", action="store_true")
    a = p.parse_args()
    modes = a.modes.split(",")
    if any(m not in MODES for m in modes):
        sys.exit("mailbox: --modes is a list of %s" % ", ".join(MODES))
    for tool in ("wrk", "redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit("mailbox: needs %s (scripts/bootstrap installs it)" % tool)
    if not 1 <= a.batch <= 100:
        sys.exit("mailbox: --batch is 1 to 100 (the receive's max)")
    if perflib.LOAD_CPUS:
        os.sched_setaffinity(0, perflib.LOAD_CPUS)  # the drivers run here
    body = json_body(a.size)
    load_before = os.getloadavg()
    # Data directories on the disk the build is on (not a tmpfs): fsync is
    # what the durable modes measure.
    os.makedirs(os.path.join(perflib.ROOT, "build", "perf"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="mailbox-", dir=os.path.join(perflib.ROOT, "build", "perf"))
    try:
        res_modes = {m: run_mode(m, a, body, tmp) for m in modes}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"commit": perflib.git_commit(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cpus": os.cpu_count(), "loadavg_before": load_before[0], "loadavg_after": os.getloadavg()[0],
           "redis": subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.split()[2].replace("v=", ""),
           "config": {"seconds": a.seconds, "rounds": a.rounds, "conns": a.conns, "size": a.size,
                      "channels": a.channels, "batch": a.batch, "samples": a.samples,
                      "lease": LEASE, "park_ms": 1000 * PARK_S, "pinned": perflib.SERVER_CPUS is not None,
                      "send": "wrk -t1 (mailbox-send.lua) / redis-benchmark (1 thread), closed loop",
                      "recv_ack": "mailbox.py asyncio driver, both protocols",
                      "rate": "omnigate bucket on, never reached; Redis none"},
           "modes": res_modes,
           "errors": sum(r["median"][n]["errors"] for r in res_modes.values() for n in r["median"])}
    print("\n%-9s %-8s %9s %13s %9s %10s %10s %15s %6s" % (
        "mode", "server", "send/s", "p50/p99 ms", "CPU us", "recv msg/s", "CPU us/msg",
        "long-poll ms", "errors"))
    for mode, r in res_modes.items():
        for n in ("omnigate", "redis"):
            m = r["median"][n]
            print("%-9s %-8s %9.0f %6.2f/%6.2f %9.1f %10.0f %10.1f %7.2f/%7.2f %6d" % (
                mode, n, m["send_rps"], m["send_p50_ms"], m["send_p99_ms"], m["send_cpu_us"],
                m["recv_msgs_per_s"], m["recv_cpu_us_per_msg"], m["lp_p50_ms"] or -1,
                m["lp_p99_ms"] or -1, m["errors"]))
    print("load average %.2f before, %.2f after; errors %d" % (
        res["loadavg_before"], res["loadavg_after"], res["errors"]))
    perflib.save_result(res, a.json, "mailbox" if a.publish else None)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
