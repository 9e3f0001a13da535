"""A small OAP/1 client for tests (docs/OAP.md): frame encoder/decoder with
the struct module, HELLO, DATA payloads, response streams with credit.

    c = OapClient.tcp(port)            # or OapClient.unix(path)
    c.hello()
    code, hdr, body = c.call(1, {"op": "has", "obj": addr})
"""
import json
import socket
import struct

HDR = struct.Struct(">IHHHH16sHQ")  # len ver flags code app tenant cap_len corr_id
HDR_BYTES = 38
assert HDR.size == HDR_BYTES

REQ, RESP, EVENT, START, END, ACK_REQ, COMP, APP_E2E = (1 << i for i in range(8))
CREDIT_FLAGS = EVENT | ACK_REQ
INITIAL_CREDIT = 4
APP_HELLO, APP_STORAGE, APP_INDEX, APP_MAILBOX = 0, 1, 2, 3
ZERO_TENANT = b"\0" * 16


class Frame:
    __slots__ = ("len", "ver", "flags", "code", "app", "tenant", "cap", "corr", "payload")

    def __repr__(self):
        return "Frame(flags=%#x code=%d app=%d corr=%d len=%d)" % (
            self.flags, self.code, self.app, self.corr, self.len)

    def data(self):
        """Split the payload as a DATA payload: (header dict, body bytes)."""
        return data_split(self.payload)


def encode(flags, app, corr, payload=b"", code=0, tenant=ZERO_TENANT, cap=b"", ver=1,
           length=None):
    """One frame. `length` and `ver` may be forced to build invalid frames."""
    n = HDR_BYTES + len(cap) + len(payload)
    return HDR.pack(n if length is None else length, ver, flags, code, app, tenant, len(cap),
                    corr) + cap + payload


def data_payload(hdr, body=b""):
    h = hdr if isinstance(hdr, bytes) else json.dumps(hdr, separators=(",", ":")).encode()
    return struct.pack(">H", len(h)) + h + body


def data_split(p):
    (n,) = struct.unpack_from(">H", p)
    return json.loads(p[2:2 + n]), p[2 + n:]


def mailbox_messages(body):
    """The messages of a recv/peek/dead answer body, each with its "body" as
    bytes: the JSON in front, then each message's "len" bytes in order
    (docs/OAP.md "Mailbox answers"). Raises ValueError when the lengths do
    not account for every byte after the JSON."""
    text = body.decode("latin-1")  # one character per byte: offsets are byte offsets
    doc, end = json.JSONDecoder().raw_decode(text)
    msgs = doc["messages"]
    for m in msgs:
        m["body"] = body[end:end + m["len"]]
        if len(m["body"]) != m["len"]:
            raise ValueError("a body runs past the answer")
        end += m["len"]
    if end != len(body):
        raise ValueError("%d bytes after the last body" % (len(body) - end))
    return msgs


def credit_frame(app, corr, n, tenant=ZERO_TENANT):
    return encode(CREDIT_FLAGS, app, corr, struct.pack(">I", n), tenant=tenant)


def decode(buf):
    """Parse one frame from the start of buf: (Frame, rest) or (None, buf)."""
    if len(buf) < HDR_BYTES:
        return None, buf
    f = Frame()
    (f.len, f.ver, f.flags, f.code, f.app, f.tenant, cap_len, f.corr) = HDR.unpack_from(buf)
    if f.len < HDR_BYTES:
        raise ValueError("bad len %d" % f.len)
    if len(buf) < f.len:
        return None, buf
    f.cap = buf[HDR_BYTES:HDR_BYTES + cap_len]
    f.payload = buf[HDR_BYTES + cap_len:f.len]
    return f, buf[f.len:]


class OapClient:
    def __init__(self, sock, timeout=10.0):
        self.s = sock
        self.s.settimeout(timeout)
        self.buf = b""
        self.next_corr = 1
        self.pending = {}  # corr -> frames read for it while waiting for another

    @classmethod
    def tcp(cls, port, host="127.0.0.1", timeout=10.0):
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, timeout)

    @classmethod
    def unix(cls, path, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(path)
        return cls(s, timeout)

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def corr(self):
        c = self.next_corr
        self.next_corr += 1
        return c

    def read_frame(self):
        """The next frame off the wire; None when the peer closed."""
        while True:
            f, self.buf = decode(self.buf)
            if f is not None:
                return f
            chunk = self.s.recv(1 << 20)
            if not chunk:
                return None
            self.buf += chunk

    def read_until_close(self):
        frames = []
        while True:
            try:
                f = self.read_frame()
            except (ConnectionResetError, socket.timeout):
                return frames
            if f is None:
                return frames
            frames.append(f)

    def hello(self, limits=None):
        lim = limits or {"max_frame": 1048576, "max_inflight": 64, "flags": 255, "versions": [1]}
        corr = self.corr()
        self.send(encode(REQ, APP_HELLO, corr, json.dumps(lim).encode()))
        f = self.read_frame()
        assert f is not None and f.corr == corr and f.flags & RESP, f
        return f.code, json.loads(f.payload)

    def request(self, app, hdr, body=b"", corr=None, flags=REQ):
        corr = self.corr() if corr is None else corr
        self.send(encode(flags, app, corr, data_payload(hdr, body)))
        return corr

    def response(self, corr, grant=INITIAL_CREDIT, on_frame=None):
        """Read the whole response to corr, granting credit for streams
        (`grant` frames each time the initial or previous grant is used up).
        Returns (code, header dict, body bytes)."""
        frames = self._frames_for(corr)
        f = next(frames)
        if not (f.flags & START) or (f.flags & END):
            hdr, body = f.data()
            return f.code, hdr, body
        hdr, body = f.data()
        parts = [body]
        left = INITIAL_CREDIT - 1
        while True:
            if left == 0:
                self.send(credit_frame(f.app, corr, grant))
                left = grant
            f = next(frames)
            if on_frame:
                on_frame(f)
            parts.append(f.payload)
            left -= 1
            if f.flags & END:
                return f.code, hdr, b"".join(parts)

    def _frames_for(self, corr):
        while True:
            q = self.pending.get(corr)
            if q:
                yield q.pop(0)
                continue
            f = self.read_frame()
            if f is None:
                raise ConnectionError("peer closed while waiting for corr %d" % corr)
            if f.corr == corr:
                yield f
            else:
                self.pending.setdefault(f.corr, []).append(f)

    def call(self, app, hdr, body=b""):
        return self.response(self.request(app, hdr, body))

    def put_stream(self, app, hdr, body, chunk=65536):
        """A request stream (START / data / END), honouring the server's credit.
        Returns the response (code, hdr, body)."""
        corr = self.corr()
        first = data_payload(hdr, b"")
        room = chunk - len(first)
        pieces = [first + body[:room]]
        off = room
        while off < len(body):
            pieces.append(body[off:off + chunk])
            off += chunk
        credit = INITIAL_CREDIT
        for i, p in enumerate(pieces):
            fl = REQ | (START if i == 0 else 0) | (END if i == len(pieces) - 1 else 0)
            while credit == 0:
                f = self.read_frame()
                if f is None:
                    raise ConnectionError("closed during upload")
                if f.corr == corr and (f.flags & CREDIT_FLAGS) == CREDIT_FLAGS:
                    credit += struct.unpack(">I", f.payload)[0]
                elif f.corr == corr:
                    hdr_, body_ = f.data()
                    return f.code, hdr_, body_
                else:
                    self.pending.setdefault(f.corr, []).append(f)
            self.send(encode(fl, app, corr, p))
            credit -= 1
        while True:
            f = self.read_frame()
            if f is None:
                raise ConnectionError("closed after upload")
            if f.corr == corr and (f.flags & CREDIT_FLAGS) == CREDIT_FLAGS:
                continue
            if f.corr == corr:
                self.pending.setdefault(corr, []).insert(0, f)
                return self.response(corr)
            self.pending.setdefault(f.corr, []).append(f)
