#!/usr/bin/python3
"""aiortc_peer.py: a WebRTC peer for parleyd that nobody here wrote the WebRTC stack of.

It creates or joins a parleyd room over REST, signals over the room's WebSocket channel
(default) or over REST long-polling, and makes a real aiortc DataChannel connection with
every peer the room protocol pairs it with (docs/api.md: an `offer-request` makes it offer,
an `offer` makes it answer). Then it exchanges deterministic messages over the channel and
checks them byte for byte, in order.

Run it with /usr/bin/python3: aiortc is Debian's python3-aiortc 1.4.0 (aioice 0.8.0), the
WebSocket client Debian's python3-websockets 10.4.

  aiortc_peer.py --server http://127.0.0.1:8080 --token USER_JWT --create [--topology mesh]
  aiortc_peer.py --server http://127.0.0.1:8080 --token USER_JWT --join ROOM_ID
      [--signaling ws|rest] [--messages N] [--sizes 1:65536] [--echo] [--seed S]
      [--peers K] [--trickle] [--timeout SECS] [--ice-address ADDR] [--show-sdp]
      [--heartbeat SECS] [--use-server-ice] [--corrupt I] [--verbose]

ICE address. aioice never gathers 127.0.0.1 (it skips loopback), so two aiortc peers on one
machine meet on the machine's own non-loopback address. This script finds it at run time:
the first `scope global` IPv4 address of `ip -4 -o addr` (e.g. 192.0.2.2), or --ice-address.
It then gathers host candidates on that one address only (aioice's interface enumeration is
replaced for this process), so a peer offers exactly one candidate and no IPv6 or second
interface makes the result depend on the machine. No STUN/TURN server is used unless
--use-server-ice is given (the iceServers of the create/join answer; parleyd's default is a
public STUN server, which a test machine without outside network must not be sent to).
Exit code 4 when no such address exists.

Output: one JSON object per line on stdout (diagnostics from aiortc go to stderr):
  {"event":"joined","roomId","peerId","signaling","iceAddress","peers":[...]}
  {"event":"offer-request","peer"}      an offer-request envelope arrived (we offer to peer)
  {"event":"offer-sent","to","id","bytes"}   (the envelope id from the ack / the 202)
  {"event":"offer-received","from","bytes"} {"event":"answer-sent","to","id","bytes"}
  {"event":"answer-received","from","bytes"}
  {"event":"candidate-sent","to","n"}    (--trickle only)
  {"event":"candidate","from","action":"added"|"dropped","reason"?,"candidate"?}
  {"event":"end-of-candidates","from"}  a trickled null (or "" candidate) was applied
  {"event":"open","peer","ms","role","label","id"}    ms: since the join answered
  {"event":"sent","peer","n","bytes"}
  {"event":"recv_ok","peer","n","bytes"}  every expected message arrived, verified, in order
  {"event":"session-done","peer"}      both directions verified (see "Channel protocol")
  {"event":"peer-joined"|"peer-left","peer"}
  {"event":"heartbeat","via":"ws"|"rest"}   a heartbeat was answered (the token renewed)
  {"event":"done","sessions","left"}   every session (--peers of them) finished and the peer
                                       left the room ("left": the WebSocket's close code,
                                       1000, or the REST leave-room status, 204)
  {"event":"error","detail"}           then the exit code is non-zero
  With --show-sdp the offer/answer events carry the SDP ("sdp").
Exit codes: 0 success; 1 a protocol error, a mismatch, a refused request, a failed
connection; 2 bad arguments; 3 --timeout passed (default 30 s); 4 environment (aiortc or
websockets not importable, no non-loopback IPv4 address).

Sessions. One RTCPeerConnection per remote peer. On `offer-request` for peer P the script
creates a connection and a DataChannel labelled "parley" (ordered, reliable), offers to P
(`to` = P) and waits for P's answer; on an `offer` from P it answers (`to` = P). --peers K
(default 1) is how many sessions must finish before the peer leaves the room and exits 0;
in a mesh room of three peers every peer has --peers 2.

Candidates. aiortc puts all its candidates into the SDP with a=end-of-candidates and does
not trickle. Trickled candidates from the other side (envelope `candidate`, object
{"candidate","sdpMid","sdpMLineIndex"} or a bare string) are accepted: the "candidate:"
prefix is stripped; sdpMid is taken from sdpMLineIndex when only that is given, and is the
data m-line's for a bare string (aiortc 1.4.0 silently drops a candidate without sdpMid);
`.local` (mDNS) addresses are dropped (aioice would try to resolve them by multicast); tcp
and prflx candidates are dropped (aioice pairs neither). `null` (and a {"candidate":""}
object) is the end of candidates: aiortc 1.4.0's addIceCandidate(None) raises, so it is
handed to the ICE transport directly. Candidates that arrive before the offer/answer they
belong to are kept until it is applied. --trickle makes this peer trickle too (for testing
the receiving side of another client): its SDP goes out without a=candidate and
a=end-of-candidates lines; then each candidate follows as an object, then a made-up mDNS
candidate as a bare string ("candidate:1 1 udp 2122260223 <uuid>.local 9 typ host"), then
null.

What aiortc 1.4.0 does on the wire (what another client meets):
  - As offerer it always uses the legacy SCTP SDP form:
      m=application 43667 DTLS/SCTP 5000
      a=sctpmap:5000 webrtc-datachannel 65535
    As answerer it mirrors the offer: to "UDP/DTLS/SCTP webrtc-datachannel" with
    a=sctp-port it answers "m=application PORT UDP/DTLS/SCTP webrtc-datachannel" and
    "a=sctp-port:5000".
  - a=max-message-size:65536 always; it ignores the remote's value when sending (a 200000
    byte message goes out to a peer that advertised 16384) and accepts any size.
  - Offer a=setup:actpass (it refuses an offer with anything else); answer a=setup:active.
    So the offerer is the DTLS server, the answerer the DTLS client.
  - The SCTP side is picked by the ICE role, not the DTLS role: the controlling peer (the
    offerer) sends the SCTP INIT and gives its channels odd stream ids, the controlled
    peer (the answerer) waits for the INIT and uses even ids. An aiortc answerer never
    sends INIT (unless the offer is ice-lite): the offering side must.
  - The o= line is "o=- S S IN IP4 0.0.0.0" with S from the clock (seconds), so two SDPs
    made in the same second have the same o= line; no a=ice-options:trickle; ICE and DTLS
    attributes (a=ice-ufrag, a=ice-pwd, one a=fingerprint:sha-256 of an ECDSA P-256
    certificate, a=setup) come at media level after the candidates.
  - Candidates: "a=candidate:<32 hex digits> 1 udp 2130706431 192.0.2.2 43667 typ host",
    only host candidates without STUN; the m= port and c= address are the candidate's.
  - A text message is decoded as UTF-8 by aiortc: send valid UTF-8 in text messages.

Channel protocol. Messages are data or control. Control messages are text messages whose
first character is '#'; data text never contains '#':
  "#hello {json}"  first message on the channel: {"mode":"send"|"echo","n":N,"seed":S,
                   "sizes":"LO:HI","peerId":...}. The receiver checks seed and sizes equal
                   its own.
  "#fin {json}"    "I received and verified every data message I expected from you"
                   ({"n":count}).
  "#bye"           "I got your #fin too": this side's session is done.
In send mode a peer sends, after #hello, N data messages: message i of the stream of peer P
(P = the sender's peerId) is text for even i and binary for odd i; its size in bytes is
  i == 0: LO;  i == 1 or 2: HI;  otherwise, with h = the first 8 bytes of
  SHA-256("parley/<seed>/<P>/<i>/size") as a big-endian integer, e0 = bitlen(max(LO,1))-1,
  e1 = bitlen(HI)-1, e = e0 + (h mod 2^32) mod (e1-e0+1), a = max(LO, 2^e),
  b = min(HI, 2^(e+1)-1): size = a + (h >> 32) mod (b-a+1)   (spread evenly over powers of 2)
and its bytes come from the stream SHA-256("parley/<seed>/<P>/<i>/0") ||
SHA-256(".../1") || ...: binary messages are its first `size` bytes; text messages map its
bytes b one by one: b >= 0xF8 with at least 2 bytes of room left gives "é" (2 bytes of
UTF-8), any other b gives "A..Za..z0..9-_"[b & 63], until the message has `size` bytes.
In echo mode a peer sends no stream of its own (#hello n = 0) and sends back every data
message it gets, as it got it (after checking it). A send-mode peer facing an echo peer
expects its own stream back; facing a send-mode peer, the remote's stream of its #hello n.
A session is done on one side when it has all the data it expected and the other side's
#fin; it then sends #bye, and closes the connection when the other side's #bye arrives or
the other side closes (or 3 s later), so no message in flight is cut off.
"""

import argparse
import asyncio
import hashlib
import http.client
import itertools
import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_TIMEOUT, EXIT_ENV = 0, 1, 2, 3, 4
LABEL = "parley"
ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
LINGER = 3.0  # seconds a finished session waits for the other side's #bye or close
HIGH_WATER = 1 << 20  # stop queueing on the channel above this many buffered bytes


def emit(event, **fields):
    obj = {"event": event}
    obj.update(fields)
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Failure(Exception):
    """A reportable failure: protocol, mismatch, refused request."""


# ----------------------------------------------------------------------------------------
# Deterministic messages


def msg_size(seed, sender, i, lo, hi):
    if i == 0:
        return lo
    if i in (1, 2):
        return hi
    h = int.from_bytes(hashlib.sha256(("parley/%s/%s/%d/size" % (seed, sender, i)).encode())
                       .digest()[:8], "big")
    e0 = max(lo, 1).bit_length() - 1
    e1 = hi.bit_length() - 1
    e = e0 + (h & 0xFFFFFFFF) % (e1 - e0 + 1)
    a = max(lo, 1 << e)
    b = min(hi, (1 << (e + 1)) - 1)
    return a + (h >> 32) % (b - a + 1)


def _stream(key, n):
    out = bytearray()
    k = 0
    while len(out) < n:
        out += hashlib.sha256(("%s/%d" % (key, k)).encode()).digest()
        k += 1
    return bytes(out[:n])


def message(seed, sender, i, lo, hi):
    """Message i of sender's stream: str for even i, bytes for odd i; `size` bytes either way
    (text counted in UTF-8)."""
    size = msg_size(seed, sender, i, lo, hi)
    raw = _stream("parley/%s/%s/%d" % (seed, sender, i), size)
    if i % 2:
        return raw
    out = []
    n = 0
    for b in raw:
        if n >= size:
            break
        if b >= 0xF8 and size - n >= 2:
            out.append("\u00e9")
            n += 2
        else:
            out.append(ALPHA[b & 63])
            n += 1
    return "".join(out)


def corrupt(m):
    """m with its middle byte changed, same type and size (--corrupt, a test of the checks)."""
    k = len(m) // 2
    if isinstance(m, bytes):
        return m[:k] + bytes([m[k] ^ 1]) + m[k + 1:] if m else b"x"
    c = m[k] if m else ""
    c2 = "\u00e8" if c == "\u00e9" else ALPHA[(ALPHA.index(c) + 1) % 64] if c else "x"
    return m[:k] + c2 + m[k + 1:]


def msg_len(m):
    return len(m.encode("utf-8")) if isinstance(m, str) else len(m)


def describe_mismatch(i, want, got):
    wt = "text" if isinstance(want, str) else "binary"
    gt = "text" if isinstance(got, str) else "binary"
    if wt != gt:
        return "message %d: expected %s of %d bytes, got %s of %d bytes" % (
            i, wt, msg_len(want), gt, msg_len(got))
    wb = want.encode() if isinstance(want, str) else want
    gb = got.encode() if isinstance(got, str) else got
    off = next((k for k in range(min(len(wb), len(gb))) if wb[k] != gb[k]), min(len(wb), len(gb)))
    return "message %d (%s): expected %d bytes, got %d bytes, first difference at byte %d" % (
        i, wt, len(wb), len(gb), off)


# ----------------------------------------------------------------------------------------
# Environment


def find_ice_address():
    """The first scope-global IPv4 address of this machine (`ip -4 -o addr`)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=5).stdout
        for m in re.finditer(r"\binet (\d+\.\d+\.\d+\.\d+)/", out):
            if not m.group(1).startswith("127."):
                return m.group(1)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import socket
        import netifaces
        for ifname in netifaces.interfaces():
            for a in netifaces.ifaddresses(ifname).get(socket.AF_INET, []):
                if not a["addr"].startswith("127."):
                    return a["addr"]
    except Exception:  # noqa: BLE001 - best effort fallback
        pass
    return None


# ----------------------------------------------------------------------------------------
# HTTP (blocking; called from executor threads)


class Http:
    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("--server must be an http:// URL (got %r)" % base)
        self.host = u.hostname
        self.port = u.port or 80
        self.prefix = u.path.rstrip("/")
        self.base = base.rstrip("/")

    def request(self, method, path, body=None, token=None, timeout=15):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {}
            data = None
            if token:
                headers["Authorization"] = "Bearer " + token
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, self.prefix + path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                js = json.loads(raw) if raw else None
            except ValueError:
                js = None
            return resp.status, js, raw
        finally:
            conn.close()


def http_error(what, status, js, raw):
    detail = raw[:300].decode("utf-8", "replace") if raw else ""
    return Failure("%s: HTTP %s %s" % (what, status, detail))


# ----------------------------------------------------------------------------------------
# Signaling transports: both deliver envelopes to app.inbox and post signals


class WsSignaling:
    name = "ws"

    def __init__(self, app):
        self.app = app
        self.ws = None
        self.refs = itertools.count(1)
        self.pending = {}
        self.leaving = False
        self.tasks = []

    async def start(self):
        import websockets
        self.websockets = websockets
        url = self.app.http.base.replace("http", "ws", 1) + "/signaling/ws?token=" + \
            urllib.parse.quote(self.app.token, safe="")
        self.ws = await websockets.connect(url, subprotocols=["parley.v1"], ping_interval=None,
                                           max_size=1 << 22, open_timeout=10, close_timeout=3)
        if self.ws.subprotocol != "parley.v1":
            raise Failure("websocket: subprotocol %r, expected parley.v1" % self.ws.subprotocol)
        self.tasks.append(asyncio.ensure_future(self.reader()))
        self.tasks.append(asyncio.ensure_future(self.heartbeats()))

    async def reader(self):
        try:
            async for text in self.ws:
                if not isinstance(text, str):
                    self.app.fail("websocket: binary message from the server")
                    return
                msg = json.loads(text)
                t = msg.get("type")
                if t == "ack":
                    fut = self.pending.pop(msg.get("ref"), None)
                    if fut and not fut.done():
                        fut.set_result(msg.get("id"))
                elif t == "error" and "from" not in msg:
                    err = "websocket error %s: %s" % (msg.get("code"), msg.get("message"))
                    fut = self.pending.pop(msg.get("ref"), None)
                    if fut and not fut.done():
                        fut.set_exception(Failure(err))
                    else:
                        self.app.fail(err)
                elif t == "heartbeat" and "from" not in msg:
                    if msg.get("signalingToken"):
                        self.app.token = msg["signalingToken"]
                    fut = self.pending.pop(msg.get("ref"), None)
                    if fut and not fut.done():
                        fut.set_result(None)
                else:
                    self.app.deliver(msg)
        except self.websockets.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001
            self.app.fail("websocket reader: %r" % (e,))
            return
        if not self.leaving:
            self.app.fail("websocket closed by the server: code %s reason %r" % (
                self.ws.close_code, self.ws.close_reason))

    async def heartbeats(self):
        while True:
            await asyncio.sleep(self.app.heartbeat_interval)
            try:
                await self.request({"type": "heartbeat"})
            except Exception as e:  # noqa: BLE001
                if not self.leaving:
                    self.app.fail("heartbeat: %s" % (e,))
                return
            emit("heartbeat", via="ws")

    async def request(self, msg):
        ref = next(self.refs)
        fut = asyncio.get_running_loop().create_future()
        self.pending[ref] = fut
        msg = dict(msg, ref=ref)
        await self.ws.send(json.dumps(msg))
        return await asyncio.wait_for(fut, 15)

    async def send(self, kind, to, **fields):
        """Posts an offer, answer or candidate; returns the envelope id (from the ack)."""
        return await self.request(dict(fields, type=kind, to=to))

    async def leave(self):
        self.leaving = True
        for t in self.tasks[1:]:
            t.cancel()
        try:
            await self.ws.send(json.dumps({"type": "leave"}))
            await asyncio.wait_for(self.ws.wait_closed(), 3)
        except Exception:  # noqa: BLE001 - best effort
            pass
        code = self.ws.close_code
        if self.tasks:
            self.tasks[0].cancel()
        return code

    async def stop(self):
        self.leaving = True
        for t in self.tasks:
            t.cancel()
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 3)
            except Exception:  # noqa: BLE001
                pass


class RestSignaling:
    name = "rest"
    POLL_WAIT = 10  # seconds of GET events?wait=

    def __init__(self, app):
        self.app = app
        self.stopping = threading.Event()
        self.hb_task = None

    async def start(self):
        loop = asyncio.get_running_loop()
        t = threading.Thread(target=self.poller, args=(loop,), daemon=True)
        t.start()
        self.hb_task = asyncio.ensure_future(self.heartbeats())

    def poller(self, loop):
        path = "/signaling/events/%s?wait=%d" % (self.app.room_id, self.POLL_WAIT)
        while not self.stopping.is_set():
            try:
                status, js, raw = self.app.http.request("GET", path, token=self.app.token,
                                                        timeout=self.POLL_WAIT + 15)
            except Exception as e:  # noqa: BLE001
                if not self.stopping.is_set():
                    loop.call_soon_threadsafe(self.app.fail, "GET events: %r" % (e,))
                return
            if self.stopping.is_set():
                return
            if status != 200 or not isinstance(js, dict) or not isinstance(js.get("events"), list):
                loop.call_soon_threadsafe(self.app.fail,
                                          str(http_error("GET events", status, js, raw)))
                return
            for env in js["events"]:
                loop.call_soon_threadsafe(self.app.deliver, env)

    async def post(self, path, body, want):
        body = dict(body, roomId=self.app.room_id)
        loop = asyncio.get_running_loop()
        status, js, raw = await loop.run_in_executor(
            None, lambda: self.app.http.request("POST", path, body, token=self.app.token))
        if status != want:
            raise http_error("POST " + path, status, js, raw)
        return js

    async def heartbeats(self):
        while True:
            await asyncio.sleep(self.app.heartbeat_interval)
            try:
                js = await self.post("/signaling/heartbeat", {}, 200)
                if js and js.get("signalingToken"):
                    self.app.token = js["signalingToken"]
                emit("heartbeat", via="rest")
            except Exception as e:  # noqa: BLE001
                if not self.stopping.is_set():
                    self.app.fail("heartbeat: %s" % (e,))
                return

    async def send(self, kind, to, **fields):
        js = await self.post("/signaling/" + kind, dict(fields, to=to), 202)
        return (js or {}).get("id")

    async def leave(self):
        self.stopping.set()
        if self.hb_task:
            self.hb_task.cancel()
        loop = asyncio.get_running_loop()
        status, _, _ = await loop.run_in_executor(
            None, lambda: self.app.http.request("POST", "/signaling/leave-room",
                                                {"roomId": self.app.room_id},
                                                token=self.app.token, timeout=5))
        return status

    async def stop(self):
        self.stopping.set()
        if self.hb_task:
            self.hb_task.cancel()


# ----------------------------------------------------------------------------------------
# One WebRTC session with one remote peer


class Session:
    def __init__(self, app, remote, role):
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
        self.app = app
        self.remote = remote
        self.role = role  # "offerer" | "answerer"
        servers = []
        if app.args.use_server_ice:
            for s in app.ice_servers:
                servers.append(RTCIceServer(urls=s.get("urls"), username=s.get("username"),
                                            credential=s.get("credential")))
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.channel = None
        self.remote_set = False
        self.pending_cands = []
        self.end_applied = False
        self.remote_mode = None
        self.expect = None  # (sender stream id, count)
        self.recv_n = 0
        self.recv_bytes = 0
        self.recv_done = False
        self.remote_fin = False
        self.remote_bye = False
        self.remote_closed = False
        self.succeeded = False
        self.finished = False
        self.closing = False
        self.sent_n = 0
        self.sent_bytes = 0
        self.pc.on("connectionstatechange", self.on_pc_state)

    # -- signaling side

    def attach(self, ch):
        self.channel = ch
        ch.on("message", self.on_message)
        ch.on("close", self.on_channel_close)

    async def make_offer(self):
        ch = self.pc.createDataChannel(LABEL)
        self.attach(ch)
        ch.on("open", lambda: self.on_open(ch))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send_description("offer")

    async def take_offer(self, sdp):
        from aiortc import RTCSessionDescription

        @self.pc.on("datachannel")
        def on_dc(ch):
            if ch.label != LABEL:
                self.app.fail("datachannel from %s labelled %r, expected %r" % (
                    self.remote, ch.label, LABEL))
                return
            self.attach(ch)
            if ch.readyState == "open":  # aiortc opens a remote channel before announcing it
                self.on_open(ch)
            else:
                ch.on("open", lambda: self.on_open(ch))

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self.remote_set = True
        await self.flush_candidates()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.send_description("answer")

    async def take_answer(self, sdp):
        from aiortc import RTCSessionDescription
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.remote_set = True
        await self.flush_candidates()

    async def send_description(self, kind):
        sdp = self.pc.localDescription.sdp
        cands = []
        if self.app.args.trickle:
            lines = sdp.split("\r\n")
            cands = [ln[2:] for ln in lines if ln.startswith("a=candidate:")]
            sdp = "\r\n".join(ln for ln in lines if not ln.startswith("a=candidate:")
                              and ln != "a=end-of-candidates")
        env_id = await self.app.sig.send(kind, self.remote, sdp=sdp)
        ev = {"to": self.remote, "id": env_id, "bytes": len(sdp.encode())}
        if self.app.args.show_sdp:
            ev["sdp"] = sdp
        emit(kind + "-sent", **ev)
        if self.app.args.trickle:
            mid = self.pc.sctp.mid if self.pc.sctp else "0"
            n = 0
            for c in cands:
                await self.app.sig.send("candidate", self.remote, candidate={
                    "candidate": c, "sdpMid": mid, "sdpMLineIndex": 0})
                n += 1
            # a browser's mDNS host candidate, as a bare string (the API allows both forms)
            fake = "candidate:1 1 udp 2122260223 %s.local 9 typ host" % uuid.uuid4()
            await self.app.sig.send("candidate", self.remote, candidate=fake)
            await self.app.sig.send("candidate", self.remote, candidate=None)
            emit("candidate-sent", to=self.remote, n=n + 2)

    async def on_candidate(self, cand):
        if not self.remote_set:
            self.pending_cands.append(cand)
            return
        await self.apply_candidate(cand)

    async def flush_candidates(self):
        pend, self.pending_cands = self.pending_cands, []
        for c in pend:
            await self.apply_candidate(c)

    def mid_for(self, index):
        mids = []
        for ln in self.pc.remoteDescription.sdp.splitlines():
            if ln.startswith("m="):
                mids.append(None)
            elif ln.startswith("a=mid:") and mids:
                mids[-1] = ln[6:].strip()
        if isinstance(index, int) and 0 <= index < len(mids):
            return mids[index]
        return None

    async def apply_candidate(self, cand):
        from aiortc.sdp import candidate_from_sdp
        if isinstance(cand, str):
            cand = {"candidate": cand}
        if cand is not None and not isinstance(cand, dict):
            raise Failure("candidate from %s: neither object, string nor null: %r" % (
                self.remote, cand))
        text = None if cand is None else cand.get("candidate")
        if cand is None or text == "" or text is None:
            # End of candidates. aiortc 1.4.0's addIceCandidate(None) raises AttributeError,
            # so the ICE transport of the data m-line gets it directly.
            if not self.end_applied and self.pc.sctp is not None:
                self.end_applied = True
                await self.pc.sctp.transport.transport.addRemoteCandidate(None)
            emit("end-of-candidates", **{"from": self.remote})
            return
        if not isinstance(text, str):
            raise Failure("candidate from %s: candidate is not a string: %r" % (self.remote, cand))
        line = text.strip()
        for prefix in ("a=", "candidate:"):
            if line.startswith(prefix):
                line = line[len(prefix):]
        try:
            c = candidate_from_sdp(line)
        except Exception as e:  # noqa: BLE001
            raise Failure("candidate from %s unparsable (%r): %r" % (self.remote, e, text))
        reason = None
        if c.ip.endswith(".local"):
            reason = "mdns"
        elif c.protocol.lower() != "udp":
            reason = "tcp"
        elif c.type not in ("host", "srflx", "relay"):
            reason = c.type
        mid = cand.get("sdpMid")
        if mid is None and cand.get("sdpMLineIndex") is not None:
            mid = self.mid_for(cand.get("sdpMLineIndex"))
        elif mid is None and self.pc.sctp is not None:
            mid = self.pc.sctp.mid  # a bare string: the one data m-line
        if reason is None and (self.pc.sctp is None or mid != self.pc.sctp.mid):
            reason = "unknown mid %r" % (mid,)
        if reason:
            emit("candidate", **{"from": self.remote, "action": "dropped", "reason": reason,
                                 "candidate": text})
            return
        c.sdpMid = mid
        await self.pc.addIceCandidate(c)
        emit("candidate", **{"from": self.remote, "action": "added", "type": c.type,
                             "address": "%s:%d" % (c.ip, c.port)})

    # -- data channel side

    def on_open(self, ch):
        if getattr(self, "_opened", False):
            return
        self._opened = True
        emit("open", peer=self.remote, ms=int((time.monotonic() - self.app.t_join) * 1000),
             role=self.role, label=ch.label, id=ch.id)
        a = self.app.args
        hello = {"mode": "echo" if a.echo else "send", "n": 0 if a.echo else a.messages,
                 "seed": a.seed, "sizes": "%d:%d" % (a.lo, a.hi), "peerId": self.app.peer_id}
        ch.send("#hello " + json.dumps(hello))
        if not a.echo:
            self.app.spawn(self.send_stream(ch))

    async def send_stream(self, ch):
        a = self.app.args
        ch.bufferedAmountLowThreshold = HIGH_WATER // 4
        low = asyncio.Event()
        ch.on("bufferedamountlow", low.set)
        for i in range(a.messages):
            while ch.bufferedAmount > HIGH_WATER and ch.readyState == "open":
                low.clear()
                try:
                    await asyncio.wait_for(low.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
            if ch.readyState != "open":
                if not self.succeeded:
                    self.app.fail("channel to %s closed after %d of %d messages sent" % (
                        self.remote, i, a.messages))
                return
            m = message(a.seed, self.app.peer_id, i, a.lo, a.hi)
            if i == a.corrupt:
                m = corrupt(m)
            ch.send(m)
            self.sent_n += 1
            self.sent_bytes += msg_len(m)
            if i % 8 == 7:
                await asyncio.sleep(0)
        emit("sent", peer=self.remote, n=self.sent_n, bytes=self.sent_bytes)

    def on_message(self, m):
        try:
            self.handle_message(m)
        except Failure as e:
            self.app.fail(str(e))

    def handle_message(self, m):
        a = self.app.args
        if isinstance(m, str) and m.startswith("#"):
            word, _, rest = m.partition(" ")
            if word == "#hello":
                h = json.loads(rest)
                if h.get("seed") != a.seed or h.get("sizes") != "%d:%d" % (a.lo, a.hi):
                    raise Failure("peer %s uses seed %r sizes %r; this one %r %r" % (
                        self.remote, h.get("seed"), h.get("sizes"), a.seed,
                        "%d:%d" % (a.lo, a.hi)))
                self.remote_mode = h.get("mode")
                if self.remote_mode == "echo":
                    if a.echo:
                        raise Failure("both sides are in echo mode")
                    self.expect = (self.app.peer_id, a.messages)
                elif self.remote_mode == "send":
                    self.expect = (self.remote, int(h.get("n", 0)))
                else:
                    raise Failure("peer %s: #hello with mode %r" % (self.remote, self.remote_mode))
                self.check_recv_done()
            elif word == "#fin":
                self.remote_fin = True
                self.check_success()
            elif word == "#bye":
                self.remote_bye = True
                self.check_close()
            else:
                raise Failure("peer %s: unknown control message %r" % (self.remote, m[:80]))
            return
        if self.expect is None:
            raise Failure("peer %s: data before #hello" % self.remote)
        sender, count = self.expect
        i = self.recv_n
        if i >= count:
            raise Failure("peer %s: message %d beyond the %d expected" % (self.remote, i, count))
        want = message(a.seed, sender, i, a.lo, a.hi)
        if type(m) is not type(want) or m != want:
            raise Failure("from %s: %s" % (self.remote, describe_mismatch(i, want, m)))
        self.recv_n += 1
        self.recv_bytes += msg_len(m)
        if a.echo:
            self.channel.send(m)
        self.check_recv_done()

    def check_recv_done(self):
        if self.recv_done or self.expect is None or self.recv_n < self.expect[1]:
            return
        self.recv_done = True
        emit("recv_ok", peer=self.remote, n=self.recv_n, bytes=self.recv_bytes)
        self.channel.send("#fin " + json.dumps({"n": self.recv_n}))
        self.check_success()

    def check_success(self):
        if self.succeeded or not (self.recv_done and self.remote_fin):
            return
        self.succeeded = True
        self.channel.send("#bye")
        emit("session-done", peer=self.remote)
        self.app.spawn(self.linger())
        self.check_close()

    async def linger(self):
        await asyncio.sleep(LINGER)
        await self.close()

    def check_close(self):
        if self.succeeded and (self.remote_bye or self.remote_closed):
            self.app.spawn(self.close())

    async def close(self):
        if self.closing:
            return
        self.closing = True
        if self.channel is not None and self.channel.readyState == "open":
            # let what is queued go out before the association is torn down
            for _ in range(100):
                if self.channel.bufferedAmount == 0:
                    break
                await asyncio.sleep(0.01)
        await self.pc.close()
        self.finished = True
        self.app.session_finished(self)

    def on_channel_close(self):
        if self.closing:
            return
        if self.succeeded:
            self.remote_closed = True
            self.check_close()
        else:
            self.app.fail("channel with %s closed before the exchange finished (%s)" % (
                self.remote, self.progress()))

    def on_pc_state(self):
        st = self.pc.connectionState
        if st == "failed" and not self.closing:
            if self.succeeded:
                self.remote_closed = True
                self.check_close()
            else:
                self.app.fail("connection with %s failed (%s)" % (self.remote, self.progress()))

    def on_peer_left(self):
        if self.succeeded:
            self.remote_closed = True
            self.check_close()
        elif not self.finished:
            self.app.fail("peer %s left before the exchange finished (%s)" % (
                self.remote, self.progress()))

    def progress(self):
        return "role %s, ice %s, channel %s, sent %d, received %d/%s, fin %s" % (
            self.role, self.pc.iceConnectionState,
            self.channel.readyState if self.channel else "none", self.sent_n, self.recv_n,
            self.expect[1] if self.expect else "?", self.remote_fin)


# ----------------------------------------------------------------------------------------
# The peer


class App:
    def __init__(self, args, ice_address):
        self.args = args
        self.ice_address = ice_address
        self.http = Http(args.server)
        self.sessions = {}
        self.finished = 0
        self.failed = None
        self.done = None
        self.inbox = None
        self.tasks = set()
        self.t_join = time.monotonic()

    def spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)

        def fin(t):
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                e = t.exception()
                self.fail(str(e) if isinstance(e, Failure) else "%r" % (e,))
        t.add_done_callback(fin)
        return t

    def fail(self, detail):
        if self.done is not None and not self.done.done():
            self.done.set_exception(Failure(detail))

    def deliver(self, env):
        self.inbox.put_nowait(env)

    def session_finished(self, s):
        self.finished += 1
        if self.finished >= self.args.peers and not self.done.done():
            self.done.set_result(None)

    async def join(self):
        loop = asyncio.get_running_loop()
        a = self.args
        if a.create:
            body = {"topology": a.topology} if a.topology else {}
            status, js, raw = await loop.run_in_executor(
                None, lambda: self.http.request("POST", "/signaling/create-room", body,
                                                token=a.token))
            if status not in (200, 201):
                raise http_error("create-room", status, js, raw)
        else:
            status, js, raw = await loop.run_in_executor(
                None, lambda: self.http.request("POST", "/signaling/join-room",
                                                {"roomId": a.join}, token=a.token))
            if status != 200:
                raise http_error("join-room", status, js, raw)
        self.t_join = time.monotonic()
        self.room_id = js["roomId"]
        self.peer_id = js["peerId"]
        self.token = js["signalingToken"]
        self.ice_servers = js.get("iceServers") or []
        self.heartbeat_interval = max(1, int(js.get("heartbeatIntervalSeconds") or 30))
        if a.heartbeat:
            self.heartbeat_interval = min(self.heartbeat_interval, a.heartbeat)
        emit("joined", roomId=self.room_id, peerId=self.peer_id, signaling=a.signaling,
             iceAddress=self.ice_address, topology=(js.get("room") or {}).get("topology"),
             peers=[p.get("peerId") for p in js.get("peers", [])])

    async def run(self):
        loop = asyncio.get_running_loop()
        self.inbox = asyncio.Queue()
        self.done = loop.create_future()
        await self.join()
        self.sig = WsSignaling(self) if self.args.signaling == "ws" else RestSignaling(self)
        await self.sig.start()
        pump = self.spawn(self.pump())
        try:
            await self.done
        finally:
            pump.cancel()
        code = await self.sig.leave()
        emit("done", sessions=self.finished, left=code)

    async def pump(self):
        while True:
            env = await self.inbox.get()
            await self.handle(env)

    async def handle(self, env):
        t = env.get("type")
        frm = env.get("from")
        if t == "offer-request":
            peer = (env.get("peer") or {}).get("peerId")
            emit("offer-request", peer=peer, id=env.get("id"))
            if peer in self.sessions:
                raise Failure("second offer-request for %s" % peer)
            s = self.sessions[peer] = Session(self, peer, "offerer")
            await s.make_offer()
        elif t == "offer":
            ev = {"from": frm, "bytes": len(env.get("sdp", "").encode())}
            if self.args.show_sdp:
                ev["sdp"] = env.get("sdp")
            emit("offer-received", **ev)
            if not frm:
                raise Failure("offer without from (open offers are not used here)")
            if frm in self.sessions:
                raise Failure("offer from %s, which already has a session (role %s)" % (
                    frm, self.sessions[frm].role))
            s = self.sessions[frm] = Session(self, frm, "answerer")
            await s.take_offer(env["sdp"])
        elif t == "answer":
            ev = {"from": frm, "bytes": len(env.get("sdp", "").encode())}
            if self.args.show_sdp:
                ev["sdp"] = env.get("sdp")
            emit("answer-received", **ev)
            s = self.sessions.get(frm)
            if s is None or s.role != "offerer" or s.remote_set:
                raise Failure("unexpected answer from %s" % frm)
            await s.take_answer(env["sdp"])
        elif t == "candidate":
            s = self.sessions.get(frm)
            if s is None:
                raise Failure("candidate from %s, with whom there is no session" % frm)
            await s.on_candidate(env.get("candidate"))
        elif t == "peer-joined":
            emit("peer-joined", peer=(env.get("peer") or {}).get("peerId"))
        elif t == "peer-left":
            peer = (env.get("peer") or {}).get("peerId")
            emit("peer-left", peer=peer)
            if peer in self.sessions:
                self.sessions[peer].on_peer_left()
        elif t == "room-closed":
            raise Failure("room closed")
        elif t == "error":
            raise Failure("error envelope: %s %s" % (env.get("code"), env.get("message")))
        else:
            raise Failure("unknown envelope type %r" % (t,))

    async def shutdown(self):
        for s in self.sessions.values():
            try:
                await asyncio.wait_for(s.pc.close(), 3)
            except Exception:  # noqa: BLE001
                pass
        for t in list(self.tasks):
            t.cancel()
        sig = getattr(self, "sig", None)
        if sig is not None:
            await sig.stop()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="parleyd base URL, http://host:port")
    p.add_argument("--token", required=True, help="a user JWT")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--create", action="store_true", help="create a room")
    g.add_argument("--join", metavar="ROOM_ID", help="join this room")
    p.add_argument("--topology", choices=("mesh", "star", "overlay"),
                   help="with --create (default: the server's, mesh)")
    p.add_argument("--signaling", choices=("ws", "rest"), default="ws")
    p.add_argument("--messages", type=int, default=10, metavar="N")
    p.add_argument("--sizes", default="1:65536", metavar="LO:HI")
    p.add_argument("--echo", action="store_true", help="send back what arrives")
    p.add_argument("--seed", default="parley")
    p.add_argument("--peers", type=int, default=1, metavar="K",
                   help="sessions to finish before leaving (default 1)")
    p.add_argument("--trickle", action="store_true",
                   help="send candidates as candidate envelopes, not in the SDP")
    p.add_argument("--heartbeat", type=float, metavar="SECS",
                   help="heartbeat this often if it is more often than heartbeatIntervalSeconds")
    p.add_argument("--timeout", type=float, default=30.0, metavar="SECS")
    p.add_argument("--ice-address", help="the address to gather on (default: found at run time)")
    p.add_argument("--use-server-ice", action="store_true",
                   help="use the iceServers of the create/join answer (default: none)")
    p.add_argument("--show-sdp", action="store_true", help="put SDPs in the events")
    p.add_argument("--corrupt", type=int, default=-1, metavar="I",
                   help="testing aid: change one byte of data message I before sending it")
    p.add_argument("--verbose", action="store_true", help="aiortc/aioice debug log on stderr")
    a = p.parse_args(argv)
    if a.topology and not a.create:
        p.error("--topology goes with --create")
    m = re.match(r"^(\d+):(\d+)$", a.sizes)
    if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) < 1:
        p.error("--sizes must be LO:HI with 0 <= LO <= HI, HI >= 1")
    a.lo, a.hi = int(m.group(1)), int(m.group(2))
    if a.messages < 0 or a.peers < 1:
        p.error("--messages >= 0 and --peers >= 1")
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        stream=sys.stderr)
    try:
        import aioice.ice
        import aiortc  # noqa: F401
        import websockets  # noqa: F401
    except ImportError as e:
        emit("error", detail="not importable (run with /usr/bin/python3; Debian python3-aiortc "
                             "and python3-websockets): %s" % e)
        return EXIT_ENV
    addr = args.ice_address or find_ice_address()
    if not addr:
        emit("error", detail="no non-loopback IPv4 address on this machine (ip -4 addr); "
                             "aioice does not gather 127.0.0.1")
        return EXIT_ENV
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [addr]

    app = App(args, addr)

    async def amain():
        try:
            await asyncio.wait_for(app.run(), args.timeout)
            return EXIT_OK
        except asyncio.TimeoutError:
            emit("error", detail="timeout after %.0f s" % args.timeout, sessions={
                p: s.progress() for p, s in app.sessions.items()})
            return EXIT_TIMEOUT
        except Failure as e:
            emit("error", detail=str(e))
            return EXIT_FAIL
        except Exception as e:  # noqa: BLE001
            emit("error", detail="%s: %s" % (type(e).__name__, e))
            return EXIT_FAIL
        finally:
            await app.shutdown()

    return asyncio.run(amain())


if __name__ == "__main__":
    sys.exit(main())
