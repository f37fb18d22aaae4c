"""Liveness and closing of GET /signaling/ws sockets (notes/ws-decisions.md): pongs keep a
member alive, a silent socket is closed with 4002 and its member removed, an expiring token
closes with 1008, a consumer that does not read is closed with 1013 while senders get 429
and memory stays bounded, and SIGTERM closes every socket with 1001."""

import json
import socket
import time
import unittest

from harness import SLOW, Client, Peer, b64url_decode, metrics, scaled, wait_until
from wsclient import (CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TIMEOUT, CLOSE_TRY_AGAIN, WsTestCase,
                      rss_kb)

T = scaled(3)
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"


def token_exp(tok):
    return json.loads(b64url_decode(tok.split(".")[1]))["exp"]


def pump(raw, seconds, on_tick=None, tick=0.25):
    """Reads a RawWS for `seconds` (answering pings if raw.auto_pong); returns the data
    messages and stops early at a close or EOF (then returns (messages, close Message))."""
    msgs = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            m = raw.recv_message(min(tick, max(0.01, end - time.monotonic())))
        except socket.timeout:
            m = None
        if m is not None:
            if m.kind in ("close", "eof"):
                return msgs, m
            msgs.append(m)
        if on_tick:
            on_tick()
    return msgs, None


class TestPingsKeepAlive(WsTestCase):
    def test_ponging_sockets_stay_members(self):
        srv = self.server(PARLEY_MEMBER_TTL="3", PARLEY_WS_PING_INTERVAL="1")
        A = Peer.create(srv)
        wa = self.ws(A)  # the library answers pings
        B = Peer.join(srv, A.room_id)
        rb = self.raw(B)  # answers pings, sends nothing else
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        msgs, end = pump(rb, 7.0)
        self.assertIsNone(end, "socket closed: %r" % (end,))
        self.assertEqual(msgs, [])
        self.assertGreaterEqual(len(rb.pings), 4, "server pings: %d in 7 s" % len(rb.pings))
        wa.expect_nothing(0.1)  # no peer-left for B
        self.assertFalse(wa.closed)
        # both are still members after more than twice PARLEY_MEMBER_TTL without REST heartbeats
        r = A.get_room(token=False)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["participantCount"], 2)
        self.assertStatus(B.events(), 200)
        wa.send_json({"type": "heartbeat", "ref": 1})
        self.assertEqual(wa.recv_json(T).get("participantCount"), 2)
        rb.send_json({"type": "heartbeat", "ref": 2})
        m = rb.recv_json(T)
        self.assertEqual((m.get("type"), m.get("participantCount")), ("heartbeat", 2), m)


class TestSilentSocket(WsTestCase):
    def test_silent_socket_closed_4002_and_member_removed(self):
        srv = self.server(PARLEY_MEMBER_TTL="3", PARLEY_WS_PING_INTERVAL="1")
        A = Peer.create(srv, topology="star")
        wa = self.ws(A)  # keeps itself alive with heartbeat messages
        C = Peer.join(srv, A.room_id)  # REST, heartbeats
        B = Peer.join(srv, A.room_id)
        rb = self.raw(B)
        t0 = time.monotonic()
        rb.auto_pong = False  # never answers, never sends
        self.assertEqual([wa.recv_json(T)["type"] for _ in range(2)],
                         ["offer-request", "offer-request"])
        self.assertEqual([e["type"] for e in C.event_list()], ["peer-joined"])
        seen_a = []

        def hb():
            if time.monotonic() - hb.last > 0.8:
                self.assertStatus(C.heartbeat(), 200)
                wa.send_json({"type": "heartbeat"})
                hb.last = time.monotonic()
            while True:
                try:
                    m = wa.recv_json(0.01)
                except socket.timeout:
                    break
                if m.get("type") != "heartbeat":
                    seen_a.append(m)
        hb.last = 0
        msgs, end = pump(rb, scaled(8), on_tick=hb)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(end, "silent socket still open after %.1f s" % elapsed)
        self.assertEqual(end.kind, "close", "closed without a close frame: %r" % end)
        self.assertEqual(end.code, CLOSE_TIMEOUT, end)
        self.assertGreaterEqual(elapsed, 2.5, "closed after %.2f s, before PARLEY_MEMBER_TTL"
                                % elapsed)
        self.assertLess(elapsed, 3 + scaled(2.5), "closed after %.2f s" % elapsed)
        self.assertGreaterEqual(len(rb.pings), 1)
        # removed at once: peer-left to the others, exactly once, also after the store's
        # own member expiry would have come
        end2 = time.monotonic() + 4
        while time.monotonic() < end2:
            hb()
            time.sleep(0.1)
        self.assertFalse(wa.closed, "A's socket was closed: %r" % (wa.close_code,))
        self.assertEqual(len(seen_a), 1, seen_a)
        self.assertEnvelope(seen_a[0], "peer-left", A.room_id, None, A.peer_id,
                            peer=self.peer_obj(B))
        ev = C.event_list()
        self.assertEqual([e["type"] for e in ev], ["peer-left"], ev)
        self.assertEqual(ev[0]["peer"], self.peer_obj(B))
        self.assertStatus(B.events(), 403)
        self.assertGreaterEqual(metrics(srv).sum("parley_ws_closes_total", code="4002"), 1)
        r = A.get_room(token=False)
        self.assertEqual(r.json()["participantCount"], 2)


class TestTokenExpiry(WsTestCase):
    def test_token_expiry_closes_1008_and_ws_heartbeat_extends_it(self):
        # Signaling tokens live PARLEY_ROOM_TTL seconds. A keeps the room alive with REST
        # heartbeats; B's socket holds its join token and is closed when it expires (the
        # documented 5 s leeway of signaling tokens may apply); C's socket sends heartbeats,
        # whose answers carry fresh tokens, and stays open.
        srv = self.server(PARLEY_ROOM_TTL="3", PARLEY_MEMBER_TTL="3",
                          PARLEY_WS_PING_INTERVAL="1")
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        C = Peer.join(srv, A.room_id)
        wb, wc = self.ws(B), self.ws(C)
        exp_b = token_exp(B.token)
        exp_c = token_exp(C.token)
        self.assertLessEqual(exp_b, time.time() + 3.5)
        hb_tokens = []
        last = {"a": 0.0, "c": 0.0}
        bound = time.monotonic() + 12 + scaled(3)
        closed_at = None
        while time.monotonic() < bound:
            now = time.monotonic()
            if now - last["a"] > 0.5:
                self.assertStatus(A.heartbeat(), 200)
                last["a"] = now
            if now - last["c"] > 1.0:
                wc.send_json({"type": "heartbeat"})
                last["c"] = now
            try:
                m = wc.recv_json(0.1)
                if m.get("type") == "heartbeat":
                    hb_tokens.append(m["signalingToken"])
            except socket.timeout:
                pass
            if closed_at is None and wb.closed:
                closed_at = time.time()
            if closed_at is not None and time.time() > max(exp_c + 5 + 1.5, closed_at + 1):
                break
        self.assertIsNotNone(closed_at, "socket with an expired token still open")
        self.assertEqual(wb.close_code, CLOSE_POLICY, wb.close_reason)
        self.assertGreaterEqual(closed_at, exp_b - 1.0, "closed %.2f s before exp" % (exp_b - closed_at))
        self.assertLessEqual(closed_at, exp_b + 5 + scaled(2),
                             "closed %.2f s after exp" % (closed_at - exp_b))
        self.assertFalse(wc.closed, "the heartbeating socket was closed: %r" % (wc.close_code,))
        self.assertGreater(time.time(), exp_c + 5 + 1)
        self.assertTrue(hb_tokens)
        self.assertGreater(token_exp(hb_tokens[-1]), exp_c)
        wc.send_json({"type": "heartbeat", "ref": "end"})
        m, _ = wc.recv_until(lambda m: m.get("ref") == "end", T)
        self.assertEqual(m["type"], "heartbeat")


class TestBackpressure(WsTestCase):
    def flood(self, srv, sender, to, count=400, size=60000):
        """REST offers of ~size bytes from sender to `to` until the first 429; returns
        (statuses, first 429 Response)."""
        sdp = "v=0\r\na=x-pad:" + "x" * size + "\r\n"
        statuses = []
        with Client(srv, timeout=scaled(10)) as cl:
            for i in range(count):
                r = cl.req("POST", "/signaling/offer", token=sender.token,
                           body={"roomId": sender.room_id, "to": to.peer_id, "sdp": sdp})
                statuses.append(r.status)
                if r.status == 429:
                    return statuses, r
                self.assertStatus(r, 202)
        return statuses, None

    # A consumer that stops reading: its queue fills, senders are pushed back with 429, and
    # after PARLEY_WS_STALL_TIMEOUT it is closed with 1013 (or reset when even the close
    # frame cannot get out), with the server's memory bounded throughout.
    def test_reader_that_never_reads_is_closed_1013(self):
        srv = self.server(PARLEY_WS_QUEUE_MESSAGES="4", PARLEY_WS_QUEUE_BYTES="4096",
                          PARLEY_WS_STALL_TIMEOUT="2", PARLEY_RL_SIGNAL="0")
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        C = Peer.join(srv, A.room_id)
        A.event_list()
        wc = self.ws(C)
        rss0 = rss_kb(srv.pid)
        rb = self.raw(B, rcvbuf=4096)  # never reads until the end
        statuses, r429 = self.flood(srv, A, B)
        accepted = statuses.count(202)
        self.assertIsNotNone(r429, "no 429 after %d large offers to a stalled socket" % accepted)
        t429 = time.monotonic()
        self.assertError(r429, 429, "rate_limited")
        self.assertTrue((r429.headers.get("Retry-After") or "").isdigit(), r429.headers)
        # once the socket buffers are full too (a moment), the inbox stays full while the
        # socket is stalled: more posts are refused, not stored
        time.sleep(0.5)
        with Client(srv) as cl:
            for _ in range(20):
                r = cl.req("POST", "/signaling/offer", token=A.token,
                           body={"roomId": A.room_id, "to": B.peer_id, "sdp": "v=0\r\n" + "y" * 60000})
                self.assertEqual(r.status, 429, r)
        rss1 = rss_kb(srv.pid)
        self.assertLess(rss1 - rss0, 50 * 1024 * SLOW,
                        "RSS grew by %d KiB (%d offers accepted)" % (rss1 - rss0, accepted))
        # others are unaffected meanwhile
        r = A.offer(SDP, to=C.peer_id)
        self.assertStatus(r, 202)
        self.assertEqual(wc.recv_json(T)["id"], r.json()["id"])
        # stalled for PARLEY_WS_STALL_TIMEOUT: closed with 1013 and counted
        wait_until(lambda: metrics(srv).sum("parley_ws_queue_overflows_total") >= 1,
                   2 + scaled(4), msg="parley_ws_queue_overflows_total stayed 0")
        t_over = time.monotonic()
        wait_until(lambda: metrics(srv).sum("parley_ws_connections_open") == 1, scaled(6),
                   msg="the stalled socket is still counted open")
        self.assertLess(t_over - t429, 2 + scaled(3), "closed %.1f s after the queue filled"
                        % (t_over - t429))
        rss2 = rss_kb(srv.pid)
        self.assertLess(rss2 - rss0, 50 * 1024 * SLOW, "RSS grew by %d KiB" % (rss2 - rss0))
        # what B finally reads: the offers it was sent, then the close (or a reset)
        code, reason = rb.wait_close(scaled(15))
        self.assertIn(code, (CLOSE_TRY_AGAIN, None), "close %r %r" % (code, reason))
        # (B also got the offer-request for C, who joined after it)
        types = [json.loads(m.data)["type"] for m in rb.messages]
        self.assertLessEqual(set(types), {"offer", "offer-request"}, types)
        self.assertLessEqual(types.count("offer"), accepted)
        self.assertEqual(metrics(srv).sum("parley_ws_closes_total", code="1013"), 1)
        wc.send_json({"type": "heartbeat", "ref": "ok"})
        self.assertEqual(wc.recv_json(T).get("ref"), "ok")


class TestShutdown(WsTestCase):
    def test_sigterm_closes_sockets_1001(self):
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        D = Peer.create(srv)
        wa, wd = self.ws(A), self.ws(D, subprotocols=["parley.v1"])
        rb = self.raw(B)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        t0 = time.monotonic()
        rc = srv.stop(timeout=scaled(10))
        took = time.monotonic() - t0
        self.assertEqual(rc, 0)
        self.assertLess(took, 5.0 if SLOW == 1 else scaled(5), "exit took %.2f s" % took)
        for c in (wa, wd):
            self.assertEqual(c.wait_closed(T)[0], CLOSE_GOING_AWAY)
        self.assertEqual(rb.wait_close(T)[0], CLOSE_GOING_AWAY)
        self.assertTrue(srv.find_log("stopped"))

    def test_sigterm_with_a_stalled_socket(self):
        srv = self.server(PARLEY_WS_QUEUE_MESSAGES="4", PARLEY_WS_QUEUE_BYTES="4096",
                          PARLEY_WS_STALL_TIMEOUT="30", PARLEY_RL_SIGNAL="0")
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        A.event_list()
        wa = self.ws(A)
        rb = self.raw(B, rcvbuf=4096)
        _, r429 = TestBackpressure.flood(self, srv, A, B)
        self.assertIsNotNone(r429)
        t0 = time.monotonic()
        rc = srv.stop(timeout=scaled(12))
        took = time.monotonic() - t0
        self.assertEqual(rc, 0)
        # PARLEY_SHUTDOWN_TIMEOUT (5 s) bounds the wait for a socket that cannot be written
        self.assertLess(took, 5.0 + scaled(1.5), "exit took %.2f s" % took)
        self.assertEqual(wa.wait_closed(T)[0], CLOSE_GOING_AWAY)
        code, _ = rb.wait_close(scaled(15))
        self.assertIn(code, (CLOSE_GOING_AWAY, None))


if __name__ == "__main__":
    unittest.main()
