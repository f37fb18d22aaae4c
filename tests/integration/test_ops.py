"""Operations: health, readiness, metrics, logs, shutdown, CORS, rate limits, configuration
refusals at start-up, --help/--version/--insecure-dev, config file and precedence."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from harness import (raw_request, TEST_SECRET, Client, ParleyTestCase, Peer, Server, free_port,
                     jwt_encode, metrics, mint_token, raw_socket, read_http_response, req,
                     run_parleyd, scaled, uniq, wait_until)

METRIC_NAMES = [
    "parley_build_info", "parley_http_requests_total", "parley_http_request_duration_seconds",
    "parley_http_connections_open", "parley_http_connections_rejected_total", "parley_rooms",
    "parley_members", "parley_signals_queued", "parley_signals_delivered_total",
    "parley_signals_expired_total", "parley_rate_limited_total", "parley_longpolls_waiting",
]

CONFIG_ENV_NAMES = [
    "PARLEY_LISTEN", "PARLEY_STORE", "PARLEY_NODE_ID", "PARLEY_JWT_SECRET", "PARLEY_JWT_PUBLIC_KEY",
    "PARLEY_JWT_ISSUER", "PARLEY_JWT_AUDIENCE", "PARLEY_ALLOW_GUESTS", "PARLEY_ALLOWED_ORIGINS",
    "PARLEY_TRUSTED_PROXIES", "PARLEY_ROOM_TTL", "PARLEY_MEMBER_TTL", "PARLEY_SIGNAL_TTL",
    "PARLEY_MAX_BODY", "PARLEY_STUN_URLS", "PARLEY_TURN_URLS", "PARLEY_TURN_SECRET", "PARLEY_7TV_API",
    "PARLEY_MAX_CONNECTIONS", "PARLEY_HEADER_TIMEOUT", "PARLEY_IDLE_TIMEOUT", "PARLEY_TURN_TTL",
    "PARLEY_RL_CREATE_ROOM", "PARLEY_RL_JOIN_USER", "PARLEY_RL_JOIN_IP", "PARLEY_RL_SIGNAL",
    "PARLEY_RL_POLL", "PARLEY_RL_LIST", "PARLEY_RL_EMOJI_UPLOAD", "PARLEY_MAX_PEERS_DEFAULT",
    "PARLEY_MAX_PEERS_LIMIT", "PARLEY_LOG_LEVEL", "PARLEY_SHUTDOWN_TIMEOUT", "PARLEY_INSECURE_DEV",
]

VERSION_RE = re.compile(r"\b(\d+\.\d+\.\d+)\b")


def parleyd_version():
    p = run_parleyd(["--version"])
    m = VERSION_RE.search(p.stdout)
    return m.group(1) if m else None


class TestHealth(ParleyTestCase):
    def test_healthz(self):
        srv = self.server()
        r = req(srv, "GET", "/healthz")
        self.assertStatus(r, 200)
        self.assertJsonType(r)
        self.assertEqual(r.json(), {"status": "ok"})

    def test_readyz(self):
        srv = self.server()
        r = req(srv, "GET", "/readyz")
        self.assertStatus(r, 200)
        self.assertJsonType(r)
        self.assertEqual(r.json(), {"status": "ready"})

    def test_head_healthz(self):
        srv = self.server()
        g = req(srv, "GET", "/healthz")
        h = req(srv, "HEAD", "/healthz")
        self.assertStatus(h, 200)
        self.assertEqual(h.body, b"")
        self.assertEqual(h.headers.get("Content-Length"), str(len(g.body)))
        self.assertEqual(g.headers.get("Content-Length"), str(len(g.body)))
        self.assertEqual(h.headers.get("Content-Type"), g.headers.get("Content-Type"))
        # no body bytes on the wire: a GET pipelined after the HEAD parses cleanly
        with raw_socket(srv) as s:
            s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            first = read_http_response(s, head=True)
            second = read_http_response(s)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(second.status, 200, second)
        self.assertEqual(json.loads(second.body), {"status": "ok"})

    def test_head_rooms(self):
        srv = self.server()
        g = req(srv, "GET", "/signaling/rooms")
        h = req(srv, "HEAD", "/signaling/rooms")
        self.assertStatus(h, 200)
        self.assertEqual(h.body, b"")
        self.assertEqual(h.headers.get("Content-Length"), str(len(g.body)))

    def test_keepalive_reuses_connection(self):
        srv = self.server()
        with Client(srv) as c:
            for i in range(20):
                r = c.req("GET", "/healthz" if i % 2 else "/signaling/rooms")
                self.assertStatus(r, 200)
            self.assertEqual(c.reconnects, 0, "the server closed a keep-alive connection")
            self.assertEqual(metrics(srv).value("parley_http_connections_open"), 2)

    def test_unknown_path_and_wrong_method(self):
        srv = self.server()
        self.assertError(req(srv, "GET", "/no/such/path"), 404, "not_found")
        r = req(srv, "GET", "/signaling/create-room")
        self.assertError(r, 405, "method_not_allowed")
        self.assertIn("POST", r.headers.get("Allow", ""))
        r = req(srv, "POST", "/healthz", body={})
        self.assertError(r, 405, "method_not_allowed")
        self.assertIn("GET", r.headers.get("Allow", ""))


class TestMetrics(ParleyTestCase):
    def test_format_and_names(self):
        srv = self.server(PARLEY_NODE_ID="node-under-test")
        r = req(srv, "GET", "/metrics")
        self.assertStatus(r, 200)
        ctype = r.headers.get("Content-Type", "")
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertIn("version=0.0.4", ctype)
        m = metrics(srv)
        self.assertEqual(m.bad_lines, [])
        for name in METRIC_NAMES:
            self.assertTrue(m.has(name), "metric %s missing from:\n%s" % (name, m.text))
        self.assertEqual(m.types.get("parley_http_request_duration_seconds"), "histogram")
        self.assertEqual(m.types.get("parley_http_requests_total"), "counter")
        bi = m.get("parley_build_info")
        self.assertEqual(len(bi), 1, bi)
        self.assertEqual(bi[0][1].get("node"), "node-under-test")
        self.assertEqual(bi[0][1].get("version"), parleyd_version())
        self.assertEqual(bi[0][2], 1)
        for gauge in ("parley_rooms", "parley_members", "parley_signals_queued",
                      "parley_longpolls_waiting"):
            self.assertEqual(m.value(gauge), 0, gauge)

    def test_request_counters_move(self):
        srv = self.server()

        def healthz(m, name="parley_http_requests_total", **labels):
            return sum(v for n, lab, v in m.samples
                       if n == name and "healthz" in lab.get("route", "")
                       and all(lab.get(k) == x for k, x in labels.items()))

        m0 = metrics(srv)
        for _ in range(5):
            self.assertStatus(req(srv, "GET", "/healthz"), 200)
        m1 = metrics(srv)
        self.assertEqual(healthz(m1, method="GET", status="200") - healthz(m0, method="GET", status="200"), 5)
        self.assertEqual(healthz(m1, "parley_http_request_duration_seconds_count")
                         - healthz(m0, "parley_http_request_duration_seconds_count"), 5)
        inf = healthz(m1, "parley_http_request_duration_seconds_bucket", le="+Inf")
        self.assertEqual(inf, healthz(m1, "parley_http_request_duration_seconds_count"))
        # errors are counted under their status
        self.assertStatus(req(srv, "GET", "/signaling/rooms/" + "Z" * 22), 404)
        m2 = metrics(srv)
        self.assertGreaterEqual(m2.sum("parley_http_requests_total", status="404"), 1)
        self.assertGreater(m2.sum("parley_http_requests_total"), m1.sum("parley_http_requests_total"))

    def test_room_and_signal_gauges(self):
        srv = self.server()
        B = Peer.create(srv)
        m = metrics(srv)
        self.assertEqual(m.value("parley_rooms"), 1)
        self.assertEqual(m.value("parley_members"), 1)
        d0 = m.value("parley_signals_delivered_total")
        V = Peer.join(srv, B.room_id)
        m = metrics(srv)
        self.assertEqual(m.value("parley_members"), 2)
        self.assertEqual(m.value("parley_signals_queued"), 1)       # offer-request to B
        self.assertStatus(B.offer(to=V.peer_id), 202)
        self.assertEqual(metrics(srv).value("parley_signals_queued"), 2)
        self.assertStatus(V.get_offer(), 200)
        self.assertEqual(len(B.event_list()), 1)
        m = metrics(srv)
        self.assertEqual(m.value("parley_signals_queued"), 0)
        self.assertEqual(m.value("parley_signals_delivered_total") - d0, 2)
        self.assertStatus(V.leave(), 204)
        self.assertStatus(B.leave(), 204)
        m = metrics(srv)
        self.assertEqual(m.value("parley_rooms"), 0)
        self.assertEqual(m.value("parley_members"), 0)

    def test_connections_open(self):
        srv = self.server()
        base = metrics(srv).value("parley_http_connections_open")
        self.assertGreaterEqual(base, 1)   # the connection asking
        clients = [Client(srv) for _ in range(3)]
        try:
            for c in clients:
                self.assertStatus(c.req("GET", "/healthz"), 200)
            self.assertGreaterEqual(metrics(srv).value("parley_http_connections_open"), base + 3)
        finally:
            for c in clients:
                c.close()
        wait_until(lambda: metrics(srv).value("parley_http_connections_open") <= base, scaled(3))


class TestLogs(ParleyTestCase):
    def test_listening_line(self):
        srv = self.server(PARLEY_NODE_ID="node-log-test")
        lines = srv.find_log("listening")
        self.assertEqual(len(lines), 1, srv.log_tail())
        ln = lines[0]
        self.assertEqual(ln.get("addr"), "127.0.0.1:%d" % srv.port)
        if srv.store != "memory":
            self.assertTrue(str(ln.get("store", "")).startswith("redis"), ln)
        else:
            self.assertEqual(ln.get("store"), "memory")
        self.assertEqual(ln.get("node"), "node-log-test")
        self.assertEqual(ln.get("version"), parleyd_version())
        self.assertEqual(ln.get("level"), "info")
        self.assertTrue(ln.get("ts"))

    def test_one_request_line_per_request(self):
        srv = self.server()
        ids = [("R%021d" % i)[:22] for i in range(3)]
        for rid in ids:
            self.assertStatus(req(srv, "GET", "/signaling/rooms/" + rid), 404)
        tok = mint_token(uniq("logger"), "Logger")
        r = req(srv, "POST", "/signaling/create-room", body={}, token=tok)
        self.assertStatus(r, 201)
        sig = r.json()["signalingToken"]

        def req_lines(path):
            return [o for o in srv.log_lines() if o.get("msg") == "request" and o.get("path") == path]

        wait_until(lambda: req_lines("/signaling/create-room"), scaled(3))
        for rid in ids:
            got = req_lines("/signaling/rooms/" + rid)
            self.assertEqual(len(got), 1, got)
            ln = got[0]
            self.assertEqual(ln.get("method"), "GET")
            self.assertEqual(ln.get("status"), 404)
            self.assertIsInstance(ln.get("duration_ms"), (int, float))
            self.assertGreaterEqual(ln["duration_ms"], 0)
            self.assertIn("127.0.0.1", str(ln.get("peer")))
        got = req_lines("/signaling/create-room")
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0].get("method"), "POST")
        self.assertEqual(got[0].get("status"), 201)
        text = srv.log_text()
        self.assertNotIn(tok, text, "a bearer token was logged")
        self.assertNotIn(sig, text, "a signaling token was logged")
        self.assertNotIn(TEST_SECRET, text, "the JWT secret was logged")

    def test_log_level_warn_hides_requests(self):
        srv = self.server(PARLEY_LOG_LEVEL="warn")
        for _ in range(3):
            self.assertStatus(req(srv, "GET", "/healthz"), 200)
        srv.stop()
        self.assertEqual(srv.find_log("request"), [])
        self.assertEqual(srv.find_log("listening"), [])

    def test_shutdown_lines_sigterm(self):
        srv = self.server()
        self.assertEqual(srv.stop(signal.SIGTERM), 0)
        msgs = [o.get("msg") for o in srv.log_lines()]
        self.assertIn("shutdown", msgs)
        self.assertEqual(msgs[-1], "stopped", msgs[-5:])
        self.assertLess(msgs.index("shutdown"), len(msgs) - 1)

    def test_sigint_exits_zero(self):
        srv = self.server()
        t0 = time.monotonic()
        self.assertEqual(srv.stop(signal.SIGINT), 0)
        self.assertLess(time.monotonic() - t0, scaled(5))
        self.assertEqual(srv.log_lines()[-1].get("msg"), "stopped")

    def test_shutdown_with_idle_keepalive_connection(self):
        srv = self.server()
        c = Client(srv)
        try:
            self.assertStatus(c.req("GET", "/healthz"), 200)
            t0 = time.monotonic()
            self.assertEqual(srv.stop(signal.SIGTERM), 0)
            self.assertLess(time.monotonic() - t0, 5 + scaled(1))
        finally:
            c.close()


def rl_headers(test, r, limit):
    test.assertEqual(r.headers.get("RateLimit-Limit"), str(limit), r.headers)
    rem = int(r.headers.get("RateLimit-Remaining"))
    reset = int(r.headers.get("RateLimit-Reset"))
    test.assertGreaterEqual(rem, 0)
    test.assertLessEqual(rem, limit)
    test.assertGreaterEqual(reset, 0)
    test.assertLessEqual(reset, 60)
    return rem


class TestRateLimits(ParleyTestCase):
    def assert429(self, r):
        self.assertError(r, 429, "rate_limited")
        ra = r.headers.get("Retry-After")
        self.assertIsNotNone(ra, r.headers)
        self.assertTrue(ra.isdigit(), ra)
        self.assertGreaterEqual(int(ra), 1)
        self.assertLessEqual(int(ra), 60)
        self.assertEqual(r.headers.get("RateLimit-Remaining"), "0")

    def test_create_room_per_user(self):
        srv = self.server(PARLEY_RL_CREATE_ROOM="2/60")
        tok = mint_token(uniq("creator"))
        remaining = []
        for _ in range(2):
            r = req(srv, "POST", "/signaling/create-room", body={}, token=tok)
            self.assertStatus(r, 201)
            remaining.append(rl_headers(self, r, 2))
            sig = r.json()["signalingToken"]
            self.assertStatus(req(srv, "POST", "/signaling/leave-room",
                                  body={"roomId": r.json()["roomId"]}, token=sig), 204)
        self.assertEqual(remaining, [1, 0])
        r = req(srv, "POST", "/signaling/create-room", body={}, token=tok)
        self.assert429(r)
        self.assertEqual(r.headers.get("RateLimit-Limit"), "2")
        # per user: another user is not affected
        r = req(srv, "POST", "/signaling/create-room", body={}, token=mint_token(uniq("other")))
        self.assertStatus(r, 201)
        m = metrics(srv)
        self.assertGreaterEqual(m.sum("parley_rate_limited_total"), 1)
        self.assertTrue(any("create" in lab.get("scope", "") and v >= 1
                            for n, lab, v in m.samples if n == "parley_rate_limited_total"),
                        m.get("parley_rate_limited_total"))

    def test_limit_zero_disables(self):
        srv = self.server(PARLEY_RL_CREATE_ROOM="0")
        tok = mint_token(uniq("creator"))
        for _ in range(12):   # more than the default 10/60
            r = req(srv, "POST", "/signaling/create-room", body={}, token=tok)
            self.assertStatus(r, 201)
            self.assertStatus(req(srv, "POST", "/signaling/leave-room", body={"roomId": r.json()["roomId"]},
                                  token=r.json()["signalingToken"]), 204)

    def test_join_per_user(self):
        srv = self.server(PARLEY_RL_JOIN_USER="2/60", PARLEY_RL_JOIN_IP="0")
        B = Peer.create(srv)
        tok = mint_token(uniq("joiner"))
        rem = []
        for _ in range(2):
            r = req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id}, token=tok)
            self.assertStatus(r, 200)
            rem.append(rl_headers(self, r, 2))
        self.assertEqual(rem, [1, 0])
        self.assert429(req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id}, token=tok))
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id}, token=mint_token(uniq()))
        self.assertStatus(r, 200)

    def join(self, srv, room_id, **headers):
        return req(srv, "POST", "/signaling/join-room", body={"roomId": room_id},
                   token=mint_token(uniq("ip")), headers=headers or None)

    def test_join_per_ip_ignores_xff_from_untrusted_peer(self):
        srv = self.server(PARLEY_RL_JOIN_IP="3/60", PARLEY_RL_JOIN_USER="0")
        B = Peer.create(srv)
        for i in range(3):
            r = self.join(srv, B.room_id, **{"X-Forwarded-For": "203.0.113.%d" % (i + 1)})
            self.assertStatus(r, 200)
            self.assertEqual(r.headers.get("RateLimit-Limit"), "3")
        self.assert429(self.join(srv, B.room_id, **{"X-Forwarded-For": "203.0.113.99"}))
        self.assert429(self.join(srv, B.room_id, Forwarded="for=203.0.113.98"))
        self.assert429(self.join(srv, B.room_id))

    def test_join_per_ip_trusted_proxy(self):
        srv = self.server(PARLEY_RL_JOIN_IP="3/60", PARLEY_RL_JOIN_USER="0",
                          PARLEY_TRUSTED_PROXIES="127.0.0.1/32")
        B = Peer.create(srv)
        xff = "X-Forwarded-For"
        for _ in range(3):
            self.assertStatus(self.join(srv, B.room_id, **{xff: "203.0.113.1"}), 200)
        self.assert429(self.join(srv, B.room_id, **{xff: "203.0.113.1"}))
        # another client behind the proxy has its own bucket
        self.assertStatus(self.join(srv, B.room_id, **{xff: "203.0.113.2"}), 200)
        # the right-most untrusted address counts, not a spoofable left-most one
        self.assert429(self.join(srv, B.room_id, **{xff: "198.51.100.7, 203.0.113.1"}))
        self.assert429(self.join(srv, B.room_id, **{xff: "198.51.100.8, 203.0.113.1, 127.0.0.1"}))
        # Only the configured header (X-Forwarded-For by default) is read: a Forwarded
        # header the client sent through the proxy is ignored, so these count against the
        # proxy's own bucket (untouched so far), not against 203.0.113.1's.
        for _ in range(3):
            self.assertStatus(self.join(srv, B.room_id, Forwarded="for=203.0.113.9"), 200)
        self.assert429(self.join(srv, B.room_id))

    def test_join_per_ip_repeated_xff_lines_are_one_list(self):
        # A proxy may append its own X-Forwarded-For line after the client's: both lines
        # form one list, and the right-most untrusted address is the client.
        srv = self.server(PARLEY_RL_JOIN_IP="1/60", PARLEY_RL_JOIN_USER="0",
                          PARLEY_TRUSTED_PROXIES="127.0.0.1/32")
        B = Peer.create(srv)

        def join_raw(first, second):
            body = json.dumps({"roomId": B.room_id}).encode()
            data = (b"POST /signaling/join-room HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                    + mint_token(uniq("xff")).encode()
                    + b"\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\nX-Forwarded-For: " + first
                    + b"\r\nX-Forwarded-For: " + second + b"\r\n\r\n" + body)
            return raw_request(srv, data).status

        self.assertEqual(join_raw(b"198.51.100.50", b"203.0.113.1"), 200)
        # Reading only the first line would see a fresh 198.51.100.51 and let this through.
        self.assertEqual(join_raw(b"198.51.100.51", b"203.0.113.1"), 429)

    def test_join_per_ip_trusted_proxy_forwarded(self):
        srv = self.server(PARLEY_RL_JOIN_IP="2/60", PARLEY_RL_JOIN_USER="0",
                          PARLEY_TRUSTED_PROXIES="127.0.0.1/32",
                          PARLEY_CLIENT_IP_HEADER="forwarded")
        B = Peer.create(srv)
        for _ in range(2):
            self.assertStatus(self.join(srv, B.room_id, Forwarded="for=203.0.113.1"), 200)
        self.assert429(self.join(srv, B.room_id, Forwarded='for="203.0.113.1:4711"'))
        self.assertStatus(self.join(srv, B.room_id, Forwarded="for=203.0.113.3"), 200)
        # X-Forwarded-For is now the header a client could forge: ignored.
        self.assert429(self.join(srv, B.room_id, Forwarded="for=203.0.113.1",
                                 **{"X-Forwarded-For": "198.51.100.1"}))

    def test_list_per_ip(self):
        srv = self.server(PARLEY_RL_LIST="3/60")
        B = Peer.create(srv)
        r = req(srv, "GET", "/signaling/rooms")
        self.assertStatus(r, 200)
        self.assertEqual(rl_headers(self, r, 3), 2)
        self.assertStatus(req(srv, "GET", "/signaling/rooms/" + B.room_id), 200)
        self.assertStatus(req(srv, "GET", "/signaling/rooms"), 200)
        self.assert429(req(srv, "GET", "/signaling/rooms"))
        self.assert429(req(srv, "GET", "/signaling/rooms/" + B.room_id))
        # other routes are not affected
        self.assertStatus(req(srv, "GET", "/healthz"), 200)

    def test_default_list_headers(self):
        srv = self.server()
        r = req(srv, "GET", "/signaling/rooms")
        self.assertStatus(r, 200)
        self.assertEqual(rl_headers(self, r, 120), 119)

    def test_signal_and_poll_per_peer(self):
        srv = self.server(PARLEY_RL_SIGNAL="3/60", PARLEY_RL_POLL="2/60")
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id)
        for _ in range(3):
            r = B.heartbeat()
            self.assertStatus(r, 200)
            self.assertEqual(r.headers.get("RateLimit-Limit"), "3")
        self.assert429(B.heartbeat())
        self.assert429(B.offer(to=V.peer_id))
        self.assertStatus(V.heartbeat(), 200)    # per peer
        for _ in range(2):
            r = B.events()
            self.assertStatus(r, 200)
            self.assertEqual(r.headers.get("RateLimit-Limit"), "2")
        self.assert429(B.events())
        self.assert429(B.get_offer())
        self.assertStatus(V.events(), 200)


class TestCors(ParleyTestCase):
    GOOD = "https://good.example"
    ALSO = "https://also.example:8443"
    EVIL = "https://evil.example"

    def preflight(self, srv, origin, path="/signaling/create-room"):
        h = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}
        if origin:
            h["Origin"] = origin
        return req(srv, "OPTIONS", path, headers=h)

    def assertPreflightOk(self, r, origin):
        self.assertStatus(r, 204)
        self.assertEqual(r.headers.get("Access-Control-Allow-Origin"), origin)
        self.assertEqual(r.headers.get("Access-Control-Allow-Methods"), "GET, POST, DELETE, OPTIONS")
        self.assertEqual(r.headers.get("Access-Control-Allow-Headers"), "Authorization, Content-Type")
        self.assertEqual(r.headers.get("Access-Control-Max-Age"), "600")
        self.assertIn("Origin", r.headers.get("Vary", ""))

    def assertCorsHeaders(self, r, origin):
        self.assertEqual(r.headers.get("Access-Control-Allow-Origin"), origin, r.headers)
        self.assertIn("Origin", r.headers.get("Vary", ""))
        self.assertEqual(r.headers.get("Access-Control-Expose-Headers"),
                         "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, "
                         "ETag, Age, Warning, X-Cache")

    def test_allowed_list(self):
        srv = self.server(PARLEY_ALLOWED_ORIGINS=self.GOOD + "," + self.ALSO)
        self.assertPreflightOk(self.preflight(srv, self.GOOD), self.GOOD)
        self.assertPreflightOk(self.preflight(srv, self.ALSO), self.ALSO)
        self.assertPreflightOk(self.preflight(srv, self.GOOD, "/signaling/events/" + "A" * 22), self.GOOD)
        r = self.preflight(srv, self.EVIL)
        self.assertError(r, 403, "forbidden")
        self.assertIsNone(r.headers.get("Access-Control-Allow-Origin"))
        # a prefix/suffix of an allowed origin is not allowed
        self.assertError(self.preflight(srv, self.GOOD + ".evil.example"), 403, "forbidden")
        self.assertError(self.preflight(srv, "http://good.example"), 403, "forbidden")
        # actual requests
        r = req(srv, "GET", "/healthz", headers={"Origin": self.ALSO})
        self.assertStatus(r, 200)
        self.assertCorsHeaders(r, self.ALSO)
        r = req(srv, "POST", "/signaling/create-room", body={}, token=mint_token(uniq()),
                headers={"Origin": self.GOOD})
        self.assertStatus(r, 201)
        self.assertCorsHeaders(r, self.GOOD)
        r = req(srv, "POST", "/signaling/create-room", body={}, headers={"Origin": self.GOOD})
        self.assertStatus(r, 401)
        self.assertCorsHeaders(r, self.GOOD)
        r = req(srv, "GET", "/healthz", headers={"Origin": self.EVIL})
        self.assertStatus(r, 200)
        self.assertIsNone(r.headers.get("Access-Control-Allow-Origin"))
        r = req(srv, "GET", "/healthz")
        self.assertIsNone(r.headers.get("Access-Control-Allow-Origin"))

    def test_star(self):
        srv = self.server(PARLEY_ALLOWED_ORIGINS="*")
        self.assertPreflightOk(self.preflight(srv, self.EVIL), self.EVIL)
        r = req(srv, "GET", "/signaling/rooms", headers={"Origin": "https://anything.example"})
        self.assertStatus(r, 200)
        self.assertCorsHeaders(r, "https://anything.example")

    def test_none_configured(self):
        srv = self.server()
        self.assertError(self.preflight(srv, self.GOOD), 403, "forbidden")
        r = req(srv, "GET", "/healthz", headers={"Origin": self.GOOD})
        self.assertStatus(r, 200)
        self.assertIsNone(r.headers.get("Access-Control-Allow-Origin"))

    def test_options_without_origin(self):
        srv = self.server(PARLEY_ALLOWED_ORIGINS=self.GOOD)
        r = req(srv, "OPTIONS", "/signaling/create-room")
        self.assertStatus(r, 204)
        self.assertIn("POST", r.headers.get("Allow", ""))
        r = req(srv, "OPTIONS", "/healthz")
        self.assertStatus(r, 204)
        self.assertIn("GET", r.headers.get("Allow", ""))


class TestStartup(ParleyTestCase):
    def refused(self, args=None, **env):
        env.setdefault("PARLEY_LISTEN", "127.0.0.1:%d" % free_port())
        try:
            p = run_parleyd(args, timeout=scaled(10), **env)
        except subprocess.TimeoutExpired:
            self.fail("parleyd started (did not exit) with %r %r" % (args, env))
        self.assertNotEqual(p.returncode, 0, "parleyd accepted %r %r" % (args, env))
        self.assertGreater(p.returncode, 0, "exit by signal %d: %s" % (p.returncode, p.stderr[-2000:]))
        return p.stdout + p.stderr

    def test_no_jwt_key(self):
        out = self.refused()
        self.assertIn("PARLEY_JWT_SECRET", out)

    def test_unknown_env(self):
        out = self.refused(PARLEY_JWT_SECRET=TEST_SECRET, PARLEY_FOO="1")
        self.assertIn("PARLEY_FOO", out)

    def test_bad_values_named(self):
        for key, value in (("PARLEY_MEMBER_TTL", "abc"), ("PARLEY_LISTEN", "not-an-address"),
                           ("PARLEY_RL_JOIN_IP", "x/y"), ("PARLEY_ALLOW_GUESTS", "maybe"),
                           ("PARLEY_MAX_BODY", "-5")):
            with self.subTest(key=key):
                out = self.refused(PARLEY_JWT_SECRET=TEST_SECRET, **{key: value})
                self.assertIn(key, out)

    def test_unknown_flag(self):
        out = self.refused(["--no-such-flag"], PARLEY_JWT_SECRET=TEST_SECRET)
        self.assertIn("--no-such-flag", out)

    def test_help(self):
        p = run_parleyd(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in CONFIG_ENV_NAMES:
            self.assertIn(name, p.stdout, "--help does not list %s" % name)
        self.assertIn("--member-ttl", p.stdout)
        self.assertIn("--config", p.stdout)
        self.assertIn("--insecure-dev", p.stdout)

    def test_version(self):
        p = run_parleyd(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, VERSION_RE)

    def test_insecure_dev(self):
        srv = self.server(args=["--insecure-dev"], PARLEY_JWT_SECRET=None)
        warn = [o for o in srv.log_lines()
                if o.get("level") in ("warn", "error") and "insecure" in json.dumps(o).lower()]
        self.assertTrue(warn, "no warning about --insecure-dev in the log:\n" + srv.log_tail())
        tok = jwt_encode({"alg": "none", "typ": "JWT"},
                         {"sub": "dev-user", "name": "Dev", "exp": int(time.time()) + 600})
        r = req(srv, "POST", "/signaling/create-room", body={}, token=tok)
        self.assertStatus(r, 201)
        self.assertEqual(r.json()["room"]["broadcasterId"], "dev-user")
        # and the usual refusal without a token
        self.assertError(req(srv, "POST", "/signaling/create-room", body={}), 401, "unauthorized")

    def test_config_file_and_precedence(self):
        fd, path = tempfile.mkstemp(prefix="parleyd-", suffix=".json")
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "w") as f:
            json.dump({"member_ttl": 12}, f)

        def interval(srv):
            return Peer.create(srv).data["heartbeatIntervalSeconds"]

        with Server(args=["--config", path]) as srv:
            self.assertEqual(interval(srv), 4)          # file
        with Server(args=["--config", path], PARLEY_MEMBER_TTL="9") as srv:
            self.assertEqual(interval(srv), 3)          # env over file
        with Server(args=["--config", path, "--member-ttl", "6"], PARLEY_MEMBER_TTL="9") as srv:
            self.assertEqual(interval(srv), 2)          # flag over env

    def test_config_file_unknown_key(self):
        fd, path = tempfile.mkstemp(prefix="parleyd-", suffix=".json")
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "w") as f:
            json.dump({"member_ttl": 12, "frobnicate": 1}, f)
        out = self.refused(["--config", path], PARLEY_JWT_SECRET=TEST_SECRET)
        self.assertIn("frobnicate", out)

    def test_listen_port_zero(self):
        srv = Server(wait_healthy=False, PARLEY_LISTEN="127.0.0.1:0")
        with srv:
            ln = srv.wait_log("listening", timeout=scaled(10))[0]
            host, _, port = ln["addr"].rpartition(":")
            self.assertEqual(host, "127.0.0.1")
            self.assertNotEqual(int(port), 0)
            srv.port = int(port)
            r = req(srv, "GET", "/healthz")
            self.assertStatus(r, 200)


if __name__ == "__main__":
    unittest.main()
