"""WebSocket helpers for the integration tests of GET /signaling/ws (notes/ws-decisions.md).

Two clients:

  WsConn  the `websockets` library (Debian python3-websockets 10.4, asyncio API) driven from
          a background event-loop thread, so tests stay synchronous and the library keeps
          answering the server's pings while a test blocks on REST calls. Every received
          message is queued with its arrival time (time.monotonic()).
  RawWS   a plain socket that does the HTTP upgrade itself and sends whatever frames a test
          asks for (unmasked, reserved bits, bad opcodes, fragmented, oversized, invalid
          UTF-8, control frames) and reads frames one by one, close codes included.

API (add, don't rename):
  ws_url(server, token=None, path=WS_PATH) -> "ws://127.0.0.1:port/signaling/ws?token=..."
  ws_connect(server_or_peer, token=None, via="query"|"header", subprotocols=None,
             headers=None, timeout=5, **kw) -> WsConn   (raises WsHandshakeError on non-101)
  WsConn: .send(str|bytes) .send_json(obj) .recv(timeout) .recv_json(timeout)
          .recv_timed(timeout) -> (t_monotonic, msg) .expect_nothing(quiet)
          .collect(quiet, limit) .ping(data, timeout) .close(code, reason, timeout)
          .wait_closed(timeout) -> (code, reason) .abort() .closed .close_code .close_reason
          .subprotocol .response_headers
  raw_upgrade(server, token=None, via="query", ...) -> RawWS (status 101 or not: .status
          .headers .body; .ok is True for a verified 101)
  RawWS: .send_frame(opcode, payload, fin, mask, rsv, mask_key) .send_text .send_json
          .send_binary .send_ping .send_pong .send_close(code, reason) .send_raw(bytes)
          .recv_frame(timeout) -> Frame | None (EOF) .recv_message(timeout) -> Message
          .recv_json(timeout) .wait_close(timeout) -> (code | None, reason) .pings .pongs
          .messages .eof .reset .close()
  encode_frame(...) ; parse_close(payload) ; accept_key(key)
  ws_request(server, token=None, ...) -> harness.RawResponse: a handshake request whose
          answer is read as plain HTTP (for the 4xx cases)
  raise_nofile(n) -> the new soft limit ; rss_kb(pid) ; ws_metric(server, name, **labels)
  collect_until(conn, pred, timeout) ; OP_* opcodes ; CLOSE_* codes
  WsTestCase(ParleyTestCase): .ws(...) / .raw(...) open sockets closed at cleanup,
          .peer_obj(peer), .assertEnvelope(e, type, peer_or_room, from, to, **fields),
          .assertAck(msg, ref), .assertWsError(msg, code, ref), .assertRawClose(raw, codes)
"""

import asyncio
import base64
import hashlib
import json
import os
import queue
import socket
import struct
import threading
import time
import urllib.parse

from harness import (ID_RE, ParleyTestCase, _addr, metrics, read_http_response, raw_socket,
                     scaled)

try:  # Debian's python3-websockets: only with /usr/bin/python3
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - reported by the tests that need it
    websockets = None

WS_PATH = "/signaling/ws"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_REPLACED = 4001
CLOSE_TIMEOUT = 4002


class WsHandshakeError(AssertionError):
    """The server did not answer the upgrade with 101."""

    def __init__(self, status, headers=None, msg=None):
        super().__init__(msg or "WebSocket handshake answered %r" % (status,))
        self.status = status
        self.headers = headers or {}


class WsClosed(AssertionError):
    """recv() on a closed WsConn."""

    def __init__(self, code, reason):
        super().__init__("WebSocket closed (code %r, reason %r)" % (code, reason))
        self.code = code
        self.reason = reason


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def _server_of(x):
    """A Server (or (host, port)) from a Server or a harness Peer."""
    return getattr(x, "server", x) if hasattr(x, "peer_id") else x


def _token_of(x, token):
    if token is not None:
        return token
    return getattr(x, "token", None)


def ws_url(server, token=None, path=WS_PATH):
    host, port = _addr(server)
    url = "ws://%s:%d%s" % (host, port, path)
    if token is not None:
        url += ("&" if "?" in path else "?") + "token=" + urllib.parse.quote(token, safe="")
    return url


# ----------------------------------------------------------------------------------------
# The websockets library on a background loop


class _Loop:
    """One asyncio loop in a daemon thread for the whole test process."""

    _lock = threading.Lock()
    _loop = None

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                t = threading.Thread(target=loop.run_forever, name="ws-loop", daemon=True)
                t.start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro, timeout):
        fut = asyncio.run_coroutine_threadsafe(coro, cls.get())
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise


_CLOSED = object()


class WsConn:
    """A client socket of the `websockets` library; see the module doc."""

    def __init__(self, proto):
        self.proto = proto
        self.q = queue.Queue()
        self.closed_at = None
        self.received = 0
        self._closed_seen = False
        self.loop = _Loop.get()
        asyncio.run_coroutine_threadsafe(self._reader(), self.loop)

    async def _reader(self):
        try:
            async for msg in self.proto:
                self.received += 1
                self.q.put((time.monotonic(), msg))
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception as e:  # noqa: B902 - handed to the test thread
            self.q.put((time.monotonic(), e))
        finally:
            self.closed_at = time.monotonic()
            self.q.put((self.closed_at, _CLOSED))

    # -- properties -------------------------------------------------------------------
    @property
    def subprotocol(self):
        return self.proto.subprotocol

    @property
    def response_headers(self):
        return self.proto.response_headers

    @property
    def close_code(self):
        """The code of the close frame the server sent (1006 if none came), None while
        open."""
        return self.proto.close_code

    @property
    def close_reason(self):
        return self.proto.close_reason

    @property
    def closed(self):
        return self.closed_at is not None

    # -- sending ----------------------------------------------------------------------
    def send(self, data, timeout=5):
        """Sends a message (str: text, bytes: binary, a list of str: one text message in
        that many fragments). WsClosed when the connection is closed."""
        try:
            _Loop.run(self.proto.send(data), timeout)
        except websockets.exceptions.ConnectionClosed:
            raise WsClosed(self.close_code, self.close_reason) from None

    def send_json(self, obj, timeout=5):
        self.send(json.dumps(obj), timeout)

    def ping(self, data=None, timeout=5):
        """Sends a ping and waits for its pong; returns the round-trip time."""
        t0 = time.monotonic()

        async def go():
            waiter = await self.proto.ping(data)
            await asyncio.wait_for(waiter, timeout)

        _Loop.run(go(), timeout + 1)
        return time.monotonic() - t0

    # -- receiving --------------------------------------------------------------------
    def recv_timed(self, timeout=5):
        """(arrival time, message). Raises WsClosed once the connection is closed and
        everything received before was taken, socket.timeout when nothing comes."""
        try:
            t, msg = self.q.get(timeout=timeout)
        except queue.Empty:
            raise socket.timeout("no WebSocket message within %.1f s" % timeout) from None
        if msg is _CLOSED:
            self.q.put((t, msg))  # every later call sees it too
            raise WsClosed(self.close_code, self.close_reason)
        if isinstance(msg, BaseException):
            raise msg
        return t, msg

    def recv(self, timeout=5):
        return self.recv_timed(timeout)[1]

    def recv_json(self, timeout=5):
        msg = self.recv(timeout)
        if not isinstance(msg, str):
            raise AssertionError("expected a text message, got %r" % (msg[:200],))
        return json.loads(msg)

    def collect(self, quiet=0.3, limit=10000, timeout=30):
        """Every JSON message until none arrives for `quiet` seconds (or the socket closes).
        Bounded by limit messages and timeout seconds."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < limit and time.monotonic() < deadline:
            try:
                out.append(self.recv_json(quiet))
            except (socket.timeout, WsClosed):
                break
        return out

    def expect_nothing(self, quiet=0.3):
        """Asserts no message arrives within quiet seconds (a close is fine)."""
        try:
            msg = self.recv(quiet)
        except (socket.timeout, WsClosed):
            return
        raise AssertionError("unexpected WebSocket message: %r" % (msg,))

    def recv_until(self, pred, timeout=5):
        """Messages (JSON) until pred(msg) is true; returns (match, skipped list)."""
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching message within %.1f s; got %r"
                                     % (timeout, skipped))
            m = self.recv_json(left)
            if pred(m):
                return m, skipped
            skipped.append(m)

    # -- closing ----------------------------------------------------------------------
    def wait_closed(self, timeout=5):
        """Waits until the connection is closed, discarding messages; returns (close code,
        reason). AssertionError if still open after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("WebSocket still open after %.1f s" % timeout)
            try:
                self.recv(left)
            except WsClosed as e:
                return e.code, e.reason
            except socket.timeout:
                continue

    def close(self, code=1000, reason="", timeout=5):
        """Closing handshake; returns the code the server answered with."""
        try:
            _Loop.run(self.proto.close(code, reason), timeout)
        except Exception:  # noqa: B902 - the state tells
            pass
        return self.close_code

    def abort(self):
        """Drops the TCP connection without a closing handshake."""
        tr = self.proto.transport
        if tr is not None:
            self.loop.call_soon_threadsafe(tr.abort)


def ws_connect(target, token=None, via="query", subprotocols=None, headers=None, timeout=5,
               path=WS_PATH, compression=None, max_size=2 ** 24, ping_interval=None, **kw):
    """Opens a WebSocket with the library. target: a Server or a Peer (whose token is used
    unless token is given). via: "query" (?token=) or "header" (Authorization: Bearer) or
    None (no token). The library's own keepalive pings are off unless ping_interval is
    given; it always answers the server's pings."""
    if websockets is None:
        raise AssertionError("python3-websockets is not importable (use /usr/bin/python3)")
    server = _server_of(target)
    token = _token_of(target, token)
    extra = dict(headers or {})
    if via == "query":
        url = ws_url(server, token, path)
    else:
        url = ws_url(server, None, path)
        if via == "header" and token is not None:
            extra["Authorization"] = "Bearer " + token

    async def go():
        return await websockets.connect(
            url, extra_headers=extra, subprotocols=subprotocols, open_timeout=timeout,
            compression=compression, max_size=max_size, ping_interval=ping_interval,
            close_timeout=timeout, **kw)

    try:
        proto = _Loop.run(go(), timeout + 2)
    except websockets.exceptions.InvalidStatusCode as e:
        raise WsHandshakeError(e.status_code, dict(e.headers)) from None
    return WsConn(proto)


def collect_until(conn, pred, timeout=5):
    """Messages (JSON) from conn until pred(list so far) is true; returns the list."""
    got = []
    deadline = time.monotonic() + timeout
    while not pred(got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("condition not met within %.1f s; got %r" % (timeout, got))
        try:
            got.append(conn.recv_json(left))
        except socket.timeout:
            continue
    return got


# ----------------------------------------------------------------------------------------
# Raw frames


def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None, length=None):
    """One frame as bytes. rsv: the 3 reserved bits as an int 0..7. length: the payload
    length written in the header (default: the real one)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        body = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
        return head + key + body
    return head + payload


def parse_close(payload):
    """(code, reason) of a close frame's payload; (None, "") when it has no code."""
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.payload = payload

    def __repr__(self):
        return "<Frame fin=%d op=%d len=%d %r>" % (self.fin, self.opcode, len(self.payload),
                                                   self.payload[:80])


class Message:
    """kind: "text" (data: str), "binary" (bytes), "close" (code, reason), "eof"."""

    def __init__(self, kind, data=None, code=None, reason="", t=None):
        self.kind = kind
        self.data = data
        self.code = code
        self.reason = reason
        self.t = t

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        if self.kind == "close":
            return "<Message close %r %r>" % (self.code, self.reason)
        return "<Message %s %r>" % (self.kind, (self.data or "")[:200])


class RawWS:
    """A WebSocket client on a plain socket; see raw_upgrade()."""

    def __init__(self, sock, key):
        self.sock = sock
        self.key = key
        self.buf = b""
        self.status = None
        self.headers = {}
        self.body = b""
        self.head_raw = b""
        self.ok = False
        self.eof = False
        self.reset = False
        self.pings = []  # (time, payload) of every ping received
        self.pongs = []  # (time, payload) of every pong received
        self.messages = []  # Message objects collected by wait_close()
        self.close_received = None  # (code, reason) once a close frame arrived
        self.close_sent = False
        self.closed_at = None
        self.auto_pong = True

    # -- handshake --------------------------------------------------------------------
    def _read_head(self, timeout):
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if time.monotonic() >= deadline:
                raise socket.timeout("no handshake answer within %.1f s" % timeout)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
                self.reset = True
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head_raw = head
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.status = None
        for ln in lines[1:]:
            if b":" in ln:
                k, v = ln.split(b":", 1)
                self.headers[k.decode("latin-1").strip().lower()] = v.decode("latin-1").strip()
        if self.status != 101:
            n = int(self.headers.get("content-length", "0") or 0)
            while len(self.buf) < n and time.monotonic() < deadline:
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    break
                self.buf += chunk
            self.body, self.buf = self.buf[:n], self.buf[n:]
        return True

    def json_body(self):
        return json.loads(self.body.decode())

    # -- sending ----------------------------------------------------------------------
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None,
                   length=None):
        self.sock.sendall(encode_frame(opcode, payload, fin, mask, rsv, mask_key, length))

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text, **kw)

    def send_json(self, obj, **kw):
        self.send_text(json.dumps(obj), **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_ping(self, data=b"", **kw):
        self.send_frame(OP_PING, data, **kw)

    def send_pong(self, data=b"", **kw):
        self.send_frame(OP_PONG, data, **kw)

    def send_close(self, code=1000, reason="", **kw):
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        self.send_frame(OP_CLOSE, payload, **kw)
        self.close_sent = True

    # -- receiving --------------------------------------------------------------------
    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("frame read timed out")
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                self.reset = True
                chunk = b""
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
        return True

    def recv_frame(self, timeout=5):
        """The next frame, None on EOF (or reset) before a whole frame; socket.timeout when
        nothing complete arrives in time."""
        deadline = time.monotonic() + timeout
        if not self._fill(2, deadline):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if not self._fill(4, deadline):
                return None
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            if not self._fill(10, deadline):
                return None
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            if not self._fill(pos + 4, deadline):
                return None
            key = self.buf[pos:pos + 4]
            pos += 4
        if not self._fill(pos + n, deadline):
            return None
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        if masked:
            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)

    def recv_message(self, timeout=5, reply_close=True):
        """The next data message (fragments joined) or the close: a Message. Pings are
        recorded and answered (unless .auto_pong is False), pongs recorded. A close frame
        is echoed (reply_close) unless we sent one first. Returns Message("eof") on EOF."""
        deadline = time.monotonic() + timeout
        parts = []
        kind = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no message within %.1f s" % timeout)
            f = self.recv_frame(left)
            now = time.monotonic()
            if f is None:
                return Message("eof", t=now)
            if f.masked:
                raise AssertionError("server sent a masked frame: %r" % (f,))
            if f.opcode == OP_PING:
                self.pings.append((now, f.payload))
                if self.auto_pong and not self.close_sent:
                    try:
                        self.send_pong(f.payload)
                    except OSError:
                        pass
                continue
            if f.opcode == OP_PONG:
                self.pongs.append((now, f.payload))
                continue
            if f.opcode == OP_CLOSE:
                code, reason = parse_close(f.payload)
                self.close_received = (code, reason)
                if reply_close and not self.close_sent:
                    try:
                        self.send_close(code if code is not None else 1000)
                    except OSError:
                        pass
                return Message("close", code=code, reason=reason, t=now)
            if f.opcode in (OP_TEXT, OP_BINARY):
                if kind is not None:
                    raise AssertionError("server started a message inside another: %r" % (f,))
                kind = "text" if f.opcode == OP_TEXT else "binary"
                parts = [f.payload]
            elif f.opcode == OP_CONT:
                if kind is None:
                    raise AssertionError("server sent an orphan continuation frame")
                parts.append(f.payload)
            else:
                raise AssertionError("server sent opcode %d" % f.opcode)
            if f.fin:
                data = b"".join(parts)
                if kind == "text":
                    return Message("text", data.decode("utf-8"), t=now)
                return Message("binary", data, t=now)

    def wait_pongs(self, n, timeout=5):
        """Reads frames until n pongs in all have come; a data frame meanwhile is an error
        (callers use it when nothing else is due). AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while len(self.pongs) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%d pong(s) expected, %d came within %.1f s"
                                     % (n, len(self.pongs), timeout))
            f = self.recv_frame(left)
            if f is None:
                raise AssertionError("connection ended while waiting for a pong")
            if f.opcode == OP_PONG:
                self.pongs.append((time.monotonic(), f.payload))
            else:
                raise AssertionError("expected a pong, got %r" % (f,))

    def recv_json(self, timeout=5):
        m = self.recv_message(timeout)
        if m.kind != "text":
            raise AssertionError("expected a text message, got %r" % (m,))
        return m.json()

    def wait_close(self, timeout=5, reply_close=True):
        """Reads until a close frame or EOF: (code, reason) of the close frame, or (None,
        "eof"/"reset") when the connection ended without one. Data messages meanwhile are
        kept in .messages. AssertionError if neither happens within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("connection neither closed nor sent a close frame "
                                     "within %.1f s" % timeout)
            try:
                m = self.recv_message(left, reply_close)
            except socket.timeout:
                continue
            if m.kind == "close":
                self.closed_at = m.t
                return m.code, m.reason
            if m.kind == "eof":
                self.closed_at = m.t
                return None, "reset" if self.reset else "eof"
            self.messages.append(m)

    def wait_eof(self, timeout=5):
        """After a close: True when the server closes the TCP connection within timeout
        (frames meanwhile are discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                f = self.recv_frame(deadline - time.monotonic())
            except socket.timeout:
                return False
            if f is None:
                return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


def _handshake_bytes(host_port, path, token, via, key, version, protocols, headers, upgrade,
                     connection, raw_query):
    target = path
    if token is not None and via == "query":
        q = raw_query if raw_query is not None else urllib.parse.quote(token, safe="")
        target += ("&" if "?" in path else "?") + "token=" + q
    lines = ["GET %s HTTP/1.1" % target, "Host: %s" % host_port]
    if upgrade:
        lines.append("Upgrade: %s" % upgrade)
    if connection:
        lines.append("Connection: %s" % connection)
    if key is not None:
        lines.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    if protocols:
        lines.append("Sec-WebSocket-Protocol: %s" % ", ".join(protocols))
    if token is not None and via == "header":
        lines.append("Authorization: Bearer %s" % token)
    for k, v in (headers or {}).items():
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_upgrade(target, token=None, via="query", path=WS_PATH, protocols=None, headers=None,
                key=None, version="13", upgrade="websocket", connection="Upgrade",
                rcvbuf=None, timeout=5, raw_query=None, check=True):
    """Connects, sends the upgrade request and reads the answer's head. target: a Server
    or Peer (the Peer's token unless token is given; token "" or via None sends none).
    rcvbuf: SO_RCVBUF set before connecting. raw_query: the token's query value as sent
    (no encoding). check=True: a 101 must carry the right Sec-WebSocket-Accept,
    Upgrade and Connection headers (AssertionError otherwise) and sets .ok. A non-101
    answer's body is read (Content-Length) into .body."""
    server = _server_of(target)
    token = _token_of(target, token) if via is not None else None
    host, port = _addr(server)
    if rcvbuf is not None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect((host, port))
    else:
        sock = raw_socket(server, timeout)
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode()
    ws = RawWS(sock, key)
    try:
        sock.sendall(_handshake_bytes("%s:%d" % (host, port), path, token, via, key, version,
                                      protocols, headers, upgrade, connection, raw_query))
        ws._read_head(timeout)
    except BaseException:
        ws.close()
        raise
    if ws.status == 101 and check:
        h = ws.headers
        problems = []
        if h.get("sec-websocket-accept") != accept_key(key):
            problems.append("Sec-WebSocket-Accept %r" % h.get("sec-websocket-accept"))
        if h.get("upgrade", "").lower() != "websocket":
            problems.append("Upgrade %r" % h.get("upgrade"))
        if "upgrade" not in [t.strip().lower() for t in h.get("connection", "").split(",")]:
            problems.append("Connection %r" % h.get("connection"))
        if problems:
            ws.close()
            raise AssertionError("bad 101 answer (%s): %r" % (", ".join(problems), ws.head_raw))
        ws.ok = True
    return ws


def ws_request(target, token=None, via="query", timeout=5, **kw):
    """An upgrade (or plain) request to the WebSocket path whose answer is not expected to
    be 101: returns a harness.RawResponse-like object (.status .headers .body .json()),
    status 101 included (then the connection is closed at once)."""
    ws = raw_upgrade(target, token, via, timeout=timeout, check=False, **kw)
    ws.close()
    return ws


# ----------------------------------------------------------------------------------------
# Process and metrics helpers


def raise_nofile(n):
    """Raises this process's RLIMIT_NOFILE soft limit to at least n (up to the hard limit);
    returns the soft limit now in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb(pid):
    """VmRSS of a process in KiB (from /proc/<pid>/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def ws_metric(server, name, **labels):
    """The sum of a metric's samples (0 when absent)."""
    return metrics(server).sum(name, **labels)


def http_response(sock, timeout=5):
    """harness.read_http_response, re-exported for the tests."""
    return read_http_response(sock, timeout)


# ----------------------------------------------------------------------------------------
# unittest base


_MISSING = object()


class WsTestCase(ParleyTestCase):
    """ParleyTestCase plus sockets that are dropped at cleanup (before the server stops)."""

    def ws(self, target, **kw):
        c = ws_connect(target, **kw)
        self.addCleanup(c.abort)
        return c

    def raw(self, target, **kw):
        r = raw_upgrade(target, **kw)
        self.addCleanup(r.close)
        if kw.get("check", True) and r.status != 101:
            self.fail("upgrade answered %r: %r" % (r.status, r.head_raw + b"\r\n\r\n" + r.body))
        return r

    def peer_obj(self, p):
        return {"peerId": p.peer_id, "userId": p.user_id,
                "name": p.name if p.name is not None else p.user_id}

    def assertEnvelope(self, e, type_, room_id, from_, to, **extra):
        self.assertIsInstance(e, dict)
        self.assertEqual(e.get("type"), type_, e)
        self.assertIsInstance(e.get("id"), str, e)
        self.assertRegex(e["id"], ID_RE, e)
        self.assertEqual(e.get("roomId"), room_id, e)
        self.assertIn("from", e)
        self.assertEqual(e["from"], from_, e)
        self.assertIn("to", e)
        self.assertEqual(e["to"], to, e)
        self.assertIsInstance(e.get("ts"), int, e)
        self.assertLess(abs(e["ts"] - time.time() * 1000), 120000, "ts %r far from now" % e)
        for k, v in extra.items():
            self.assertIn(k, e, e)
            self.assertEqual(e[k], v, e)
        return e

    def assertAck(self, m, ref, id_=None):
        self.assertEqual(m.get("type"), "ack", m)
        self.assertIn("ref", m, m)
        self.assertEqual(m["ref"], ref, m)
        self.assertIs(type(m["ref"]), type(ref), m)
        self.assertIsInstance(m.get("id"), str, m)
        self.assertRegex(m["id"], ID_RE, m)
        if id_ is not None:
            self.assertEqual(m["id"], id_, m)
        return m["id"]

    def assertWsError(self, m, code, ref=_MISSING):
        self.assertEqual(m.get("type"), "error", m)
        self.assertEqual(m.get("code"), code, m)
        self.assertIsInstance(m.get("message"), str, m)
        self.assertTrue(m["message"], m)
        if ref is not _MISSING:
            self.assertIn("ref", m, m)
            self.assertEqual(m["ref"], ref, m)
            self.assertIs(type(m["ref"]), type(ref), m)
        return m

    def assertRawClose(self, r, codes, timeout=5, allow_eof=False):
        """Waits for the close of a RawWS; asserts its code is one of codes (an int or a
        tuple); allow_eof: a connection dropped without a close frame passes too."""
        if isinstance(codes, int):
            codes = (codes,)
        code, reason = r.wait_close(scaled(timeout))
        if code is None and allow_eof:
            return None
        self.assertIn(code, codes, "close code %r (%r), expected %r; messages %r"
                      % (code, reason, codes, r.messages[:5]))
        return code


def raw_upgrade_many(server, tokens, timeout=10, protocols=None):
    """Opens len(tokens) raw WebSockets in a burst: every connection is made and its
    upgrade request sent before any answer is read. Returns the RawWS list (each .status
    set; a 101 is verified as in raw_upgrade)."""
    host, port = _addr(server)
    out = []
    try:
        for tok in tokens:
            key = base64.b64encode(os.urandom(16)).decode()
            s = socket.create_connection((host, port), timeout=timeout)
            ws = RawWS(s, key)
            out.append(ws)
            s.sendall(_handshake_bytes("%s:%d" % (host, port), WS_PATH, tok, "query", key, "13",
                                       protocols, None, "websocket", "Upgrade", None))
        for ws in out:
            ws._read_head(timeout)
            if ws.status == 101 and ws.headers.get("sec-websocket-accept") == accept_key(ws.key):
                ws.ok = True
    except BaseException:
        for ws in out:
            ws.close()
        raise
    return out
