"""A local stand-in for the 7TV API v3, for parleyd's 7TV proxy tests.

Stdlib only (http.server); run with /usr/bin/python3. It serves the three paths parleyd
fetches, with the JSON shapes 7TV documents and returns:

  GET /v3/emote-sets/global          the global emote set
  GET /v3/emote-sets/<id>            an emote set (404 for an unknown id)
  GET /v3/users/<platform>/<id>      a user connection {id, platform, username, emote_set}

An emote set is {id, name, flags, tags, immutable, privileged, emotes, emote_count,
capacity, owner}; each emote {id, name (the set's alias), flags, timestamp, actor_id,
data:{id, name, flags, lifecycle, state, listed, animated, owner,
host:{url:"//cdn.7tv.app/emote/<id>", files:[{name, static_name, width, height,
frame_count, size, format}, ...]}}}.

Control endpoints (for tests):
  POST /_control {"mode": M, "delay_s": S, "declare_length": B, "reset": B}
      mode: ok (default), 500, 404, garbage (200, not JSON), badshape (200, JSON of the
      wrong shape), huge (200, a 50 MiB body streamed without Content-Length, or with it
      when declare_length), slow (the normal answer after delay_s), timeout (no answer
      until the mode changes or the server stops, at most 60 s). reset: zero the counters.
  GET /_stats -> {"counts": {path: n}, "total": n}: requests to /v3/... since the last reset

In a test:
    with Fake7TV() as fake:
        Server(PARLEY_7TV_API=fake.url) ...; fake.control(mode="500"); fake.count(path)

Standalone: /usr/bin/python3 fake7tv.py [--port N] prints its base URL and serves until
interrupted.
"""

import argparse
import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HUGE_BYTES = 50 << 20
MODES = ("ok", "500", "404", "garbage", "badshape", "huge", "slow", "timeout")


def files_for(width, height, formats=("AVIF", "WEBP")):
    """host.files as 7TV lists them: for each scale, one file per format."""
    out = []
    for scale in (1, 2, 3, 4):
        for fmt in formats:
            ext = fmt.lower()
            out.append({"name": "%dx.%s" % (scale, ext), "static_name": "%dx_static.%s" % (scale, ext),
                        "width": width * scale, "height": height * scale, "frame_count": 1,
                        "size": 1000 * scale, "format": fmt})
    return out


OWNER = {"id": "60867b015e01df61570ab900", "username": "someone", "display_name": "Someone",
         "avatar_url": "", "style": {}, "roles": []}


def emote(eid, alias, name=None, animated=False, width=32, height=32, host_url=None,
          files=None):
    """One entry of an emote set: the set's alias for the emote and the emote itself."""
    return {
        "id": eid, "name": alias, "flags": 0, "timestamp": 1657664526409, "actor_id": None,
        "data": {
            "id": eid, "name": name or alias, "flags": 0, "lifecycle": 3,
            "state": ["LISTED"], "listed": True, "animated": animated, "owner": OWNER,
            "host": {"url": host_url if host_url is not None else "//cdn.7tv.app/emote/" + eid,
                     "files": files if files is not None else files_for(width, height)},
        },
    }


def emote_set(sid, name, emotes):
    return {"id": sid, "name": name, "flags": 0, "tags": [], "immutable": False,
            "privileged": False, "emotes": emotes, "emote_count": len(emotes),
            "capacity": 1000, "owner": OWNER}


GLOBAL_ID = "62cdd34e72a832540de95857"
SET_ID = "01HKQT8EWR000ESSWF3625XCS4"
EMPTY_SET_ID = "01HKQT8EWR000ESSWF3625XCS5"

# Entries parleyd must skip (each is wrong in one way) sit between good ones.
_no_alias = emote("60e5d610a69fc8d27f2737b7", None, name="FeelsDankMan")
del _no_alias["name"]
_no_data = emote("60ae958e229664e8667aea39", "NoData")
del _no_data["data"]

GLOBAL_EMOTES = [
    emote("60ae958e229664e8667aea38", "peepoSad"),
    emote("01F6MQ33FG000FFJ97ZB8MWV52", "catJAM", name="CatJam_original", animated=True,
          width=28, height=32),
    emote("60aeab8df6a2c3b332d21139", "Clap", files=files_for(40, 32, formats=("AVIF",))),
    emote("6042089e77137b000de9e669", "EZ",
          host_url="https://cdn.7tv.app/emote/6042089e77137b000de9e669"),
    _no_alias,
    emote("60ae958e229664e8667aea3a", "PlainHttp", host_url="http://cdn.7tv.app/emote/x"),
    emote("60ae958e229664e8667aea3b", "Script", host_url="javascript:alert(1)//"),
    emote("60ae958e229664e8667aea3c", "Quote", host_url='//cdn.7tv.app/emote/x"><script>'),
    _no_data,
    emote("../../etc/passwd", "BadId"),
    emote("60ae958e229664e8667aea3d", "two words"),
    emote("60ae958e229664e8667aea3e", "NoFiles", files=[]),
    emote("60ae958e229664e8667aea3f", "BadWidth",
          files=[{"name": "1x.webp", "width": -1, "height": 32, "format": "WEBP"}]),
    emote("60ae958e229664e8667aea40", "BadFile",
          files=[{"name": "../1x.webp", "width": 32, "height": 32, "format": "WEBP"}]),
    "not an emote",
]

SETS = {
    "global": emote_set(GLOBAL_ID, "7TV Global Emotes", GLOBAL_EMOTES),
    SET_ID: emote_set(SET_ID, "forsen's Emotes", [
        emote("01GB2T4QZ8000FJ5F4XZV3QQ4E", "forsenE"),
        emote("60ae958e229664e8667aea38", "sadge", name="peepoSad"),
    ]),
    EMPTY_SET_ID: emote_set(EMPTY_SET_ID, "empty", []),
}


def user(platform, uid, username, es):
    out = {"id": uid, "platform": platform.upper(), "username": username,
           "display_name": username, "linked_at": 1650000000000, "emote_capacity": 1000,
           "emote_set_id": es["id"] if es else None,
           "user": {"id": "60867b015e01df61570ab901", "username": username}}
    if es is not False:
        out["emote_set"] = es
    return out


USERS = {
    ("twitch", "44317909"): user("twitch", "44317909", "somestreamer", emote_set(
        "01H9QY7WZR0004M1GZTV1Y5S3N", "somestreamer's Emotes",
        [emote("01GZD0VXG0000DZRR1C5H6SE3Y", "wideHi", animated=True, width=64, height=32)])),
    ("youtube", "UC_nullset-1"): user("youtube", "UC_nullset-1", "noset", None),
    ("kick", "nosetkey"): user("kick", "nosetkey", "nokey", False),
}


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = "ok"
        self.delay_s = 0.0
        self.declare_length = False
        self.counts = {}
        self.release = threading.Event()  # set: waiting "timeout" answers give up


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake7tv"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        st = self.server.state
        if self.path != "/_control":
            return self._send(404, {"error": "not found"})
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self._send(400, {"error": "bad json"})
        mode = body.get("mode")
        if mode is not None and mode not in MODES:
            return self._send(400, {"error": "unknown mode %r" % mode})
        with st.lock:
            if mode is not None:
                st.mode = mode
                # Answers held by the previous "timeout" mode end now.
                st.release.set()
                st.release = threading.Event()
            if "delay_s" in body:
                st.delay_s = float(body["delay_s"])
            if "declare_length" in body:
                st.declare_length = bool(body["declare_length"])
            if body.get("reset"):
                st.counts = {}
        self._send(200, {"mode": st.mode, "delay_s": st.delay_s})

    def do_GET(self):
        st = self.server.state
        if self.path == "/_stats":
            with st.lock:
                counts = dict(st.counts)
            return self._send(200, {"counts": counts, "total": sum(counts.values())})
        if not self.path.startswith("/v3/"):
            return self._send(404, {"error": "not found"})
        with st.lock:
            st.counts[self.path] = st.counts.get(self.path, 0) + 1
            mode, delay, declare, release = st.mode, st.delay_s, st.declare_length, st.release
        if mode == "timeout":
            release.wait(60)
            self.close_connection = True
            return
        if mode == "slow":
            release.wait(delay)
        if mode == "500":
            return self._send(500, {"status_code": 500, "error": "Internal Server Error",
                                    "error_code": 0})
        if mode == "404":
            return self._send(404, {"status_code": 404, "error": "Unknown Emote Set",
                                    "error_code": 70440})
        if mode == "garbage":
            return self._send(200, b"<html>this is not { JSON", "text/html")
        if mode == "badshape":
            return self._send(200, [1, 2, 3])
        if mode == "huge":
            return self._huge(declare)
        self._answer()

    def _answer(self):
        m = re.match(r"^/v3/emote-sets/([^/?]+)$", self.path)
        if m:
            es = SETS.get(m.group(1))
            if es is None:
                return self._send(404, {"status_code": 404, "error": "Unknown Emote Set",
                                        "error_code": 70440})
            return self._send(200, es)
        m = re.match(r"^/v3/users/([^/?]+)/([^/?]+)$", self.path)
        if m:
            u = USERS.get((m.group(1), m.group(2)))
            if u is None:
                return self._send(404, {"status_code": 404, "error": "Unknown User",
                                        "error_code": 70442})
            return self._send(200, u)
        self._send(404, {"status_code": 404, "error": "Not Found", "error_code": 0})

    def _huge(self, declare):
        """A valid-looking start and then 50 MiB of whitespace, streamed."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if declare:
            self.send_header("Content-Length", str(HUGE_BYTES))
        self.end_headers()
        self.close_connection = True
        chunk = b" " * 65536
        sent = 0
        try:
            self.wfile.write(b'{"id":"x","emotes":[')
            while sent < HUGE_BYTES:
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            pass  # parleyd hung up once it had enough: what the test wants


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # parleyd may open dozens of connections at once (one per key it fetches).
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # A client that hung up early (parleyd cutting a huge body, a test closing) is
        # expected here, not worth a traceback.
        pass


class Fake7TV:
    """The fake on a free loopback port, served by a background thread."""

    def __init__(self, host="127.0.0.1", port=0):
        self.httpd = _Server((host, port), _Handler)
        self.httpd.state = _State()
        self.host, self.port = self.httpd.server_address[:2]
        self.url = "http://%s:%d/v3" % (self.host, self.port)
        self.thread = None
        self.stopped = False

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        with self.httpd.state.lock:
            self.httpd.state.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread:
            self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
        return False

    def _call(self, method, path, body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            r = conn.getresponse()
            out = json.loads(r.read() or b"null")
            if r.status != 200:
                raise AssertionError("fake7tv %s %s: %d %r" % (method, path, r.status, out))
            return out
        finally:
            conn.close()

    def control(self, **kw):
        """POST /_control with kw (mode=..., delay_s=..., declare_length=..., reset=...)."""
        return self._call("POST", "/_control", kw)

    def stats(self):
        """GET /_stats: {"counts": {path: n}, "total": n}."""
        return self._call("GET", "/_stats")

    def count(self, path=None):
        """Requests to /v3<path> (or to every path) since the last reset."""
        s = self.stats()
        return s["total"] if path is None else s["counts"].get("/v3" + path, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    fake = Fake7TV(a.host, a.port)
    print(fake.url, flush=True)
    try:
        fake.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
