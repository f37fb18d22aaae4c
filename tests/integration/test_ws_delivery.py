"""Envelopes over GET /signaling/ws (notes/ws-decisions.md): push of every envelope type
exactly once and in order, the backlog first on connect, latency of a REST-posted offer,
WS and REST peers negotiating together, acks and errors for WS-posted signals, heartbeat,
leave, replacement by a second socket, and consumption (no redelivery over REST)."""

import json
import statistics
import time
import unittest

from harness import TEST_STORE, Client, Peer, b64url_decode, metrics, parse_iso, req, scaled
from wsclient import CLOSE_NORMAL, CLOSE_REPLACED, WsTestCase

SDP_O = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
SDP_A = "v=0\r\no=bob 2 2 IN IP4 127.0.0.1\r\ns=-\r\n"
CAND_OBJ = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
            "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}
CAND_STR = "candidate:2 1 udp 1686052607 198.51.100.9 40000 typ srflx raddr 0.0.0.0 rport 0"
UNKNOWN_PEER = "AAAAAAAAAAAAAAAAAAAAAA"
T = scaled(3)  # how long one expected message may take


class DeliveryCase(WsTestCase):
    def post(self, conn, msg, ref):
        """Sends a WS signal with ref; the next message on conn must be its ack. Returns
        the envelope id."""
        conn.send_json(dict(msg, ref=ref))
        return self.assertAck(conn.recv_json(T), ref)

    def quiet(self, *conns, quiet=0.4):
        for c in conns:
            c.expect_nothing(quiet)

    def rest_id(self, r):
        self.assertStatus(r, 202)
        return r.json()["id"]


class TestEveryType(DeliveryCase):
    def test_every_type_once_and_in_order(self):
        srv = self.server()
        A = Peer.create(srv, name="Alice", topology="star")
        room = A.room_id
        wa = self.ws(A)
        B = Peer.join(srv, room, name="Bob")
        got_a = [wa.recv_json(T)]
        self.assertEnvelope(got_a[-1], "offer-request", room, None, A.peer_id, peer=self.peer_obj(B))
        wb = self.ws(B)
        C = Peer.join(srv, room, name="Carol")  # polls over REST
        got_a.append(wa.recv_json(T))
        self.assertEnvelope(got_a[-1], "offer-request", room, None, A.peer_id, peer=self.peer_obj(C))
        got_b = [wb.recv_json(T)]
        self.assertEnvelope(got_b[-1], "peer-joined", room, None, B.peer_id, peer=self.peer_obj(C))

        # A -> B offer over WS; B answers over WS without `to` (the offer's sender)
        oid = self.post(wa, {"type": "offer", "to": B.peer_id, "sdp": SDP_O}, "a1")
        got_b.append(wb.recv_json(T))
        self.assertEnvelope(got_b[-1], "offer", room, A.peer_id, B.peer_id, sdp=SDP_O, id=oid)
        aid = self.post(wb, {"type": "answer", "sdp": SDP_A}, "b1")
        got_a.append(wa.recv_json(T))
        self.assertEnvelope(got_a[-1], "answer", room, B.peer_id, A.peer_id, sdp=SDP_A, id=aid)

        # candidates both ways, end-of-candidates (null) included
        for sender, ws_s, rcpt, ws_r, got, cand, ref in (
                (A, wa, B, wb, got_b, CAND_OBJ, "a2"), (A, wa, B, wb, got_b, None, "a3"),
                (B, wb, A, wa, got_a, CAND_STR, "b2"), (B, wb, A, wa, got_a, None, "b3")):
            cid = self.post(ws_s, {"type": "candidate", "to": rcpt.peer_id, "candidate": cand}, ref)
            got.append(ws_r.recv_json(T))
            self.assertEnvelope(got[-1], "candidate", room, sender.peer_id, rcpt.peer_id,
                                candidate=cand, id=cid)

        # the REST peer posts to both socket peers
        cid1 = self.rest_id(C.offer(SDP_O, to=A.peer_id))
        got_a.append(wa.recv_json(T))
        self.assertEnvelope(got_a[-1], "offer", room, C.peer_id, A.peer_id, sdp=SDP_O, id=cid1)
        cid2 = self.rest_id(C.candidate(B.peer_id, CAND_OBJ))
        got_b.append(wb.recv_json(T))
        self.assertEnvelope(got_b[-1], "candidate", room, C.peer_id, B.peer_id,
                            candidate=CAND_OBJ, id=cid2)
        # and a socket peer to the REST peer
        self.post(wa, {"type": "offer", "to": C.peer_id, "sdp": SDP_O}, "a4")

        # an error, with its ref, to the sender only
        wb.send_json({"type": "offer", "to": B.peer_id, "sdp": SDP_O, "ref": "self"})
        got_b.append(wb.recv_json(T))
        self.assertWsError(got_b[-1], "invalid_request", "self")

        # the REST peer leaves: peer-left to both sockets
        self.assertStatus(C.leave(), 204)
        got_a.append(wa.recv_json(T))
        self.assertEnvelope(got_a[-1], "peer-left", room, None, A.peer_id, peer=self.peer_obj(C))
        got_b.append(wb.recv_json(T))
        self.assertEnvelope(got_b[-1], "peer-left", room, None, B.peer_id, peer=self.peer_obj(C))

        # nothing more, nothing twice, nothing left for REST
        self.quiet(wa, wb)
        self.assertEqual([m["type"] for m in got_a],
                         ["offer-request", "offer-request", "answer", "candidate", "candidate",
                          "offer", "peer-left"])
        self.assertEqual([m["type"] for m in got_b],
                         ["peer-joined", "offer", "candidate", "candidate", "candidate",
                          "error", "peer-left"])
        ids = [m["id"] for m in got_a + got_b if m["type"] != "error"]
        self.assertEqual(len(ids), len(set(ids)), "an envelope was delivered twice")
        for p in (A, B):
            self.assertEqual(p.event_list(), [])
            self.assertStatus(p.get_offer(), 204)
            self.assertStatus(p.get_answer(), 204)
        # the offer for C waited in its inbox until it left; its token is no longer valid
        self.assertStatus(C.events(), 403)


class TestBacklog(DeliveryCase):
    def test_waiting_envelopes_first_on_connect(self):
        srv = self.server(PARLEY_RL_SIGNAL="0")
        A = Peer.create(srv, topology="mesh")
        room = A.room_id
        senders = [Peer.join(srv, room) for _ in range(3)]
        expected = [("offer-request", None, s.peer_id) for s in senders]
        # 3 senders x 40 = 120 envelopes: more than one REST poll returns (100)
        for i in range(40):
            for s in senders:
                cand = {"candidate": "candidate:%d 1 udp 1 192.0.2.1 %d typ host" % (i, 2000 + i),
                        "sdpMid": "0", "sdpMLineIndex": 0}
                self.rest_id(s.candidate(A.peer_id, cand))
                expected.append(("candidate", s.peer_id, cand))
        self.rest_id(senders[0].offer(SDP_O, to=A.peer_id))
        expected.append(("offer", senders[0].peer_id, SDP_O))
        wa = self.ws(A)
        got = [wa.recv_json(T) for _ in expected]
        for e, (type_, frm, x) in zip(got, expected):
            if type_ == "offer-request":
                self.assertEnvelope(e, type_, room, None, A.peer_id,
                                    peer=self.peer_obj([s for s in senders if s.peer_id == x][0]))
            elif type_ == "candidate":
                self.assertEnvelope(e, type_, room, frm, A.peer_id, candidate=x)
            else:
                self.assertEnvelope(e, type_, room, frm, A.peer_id, sdp=x)
        # then new ones, live
        nid = self.rest_id(senders[1].offer(SDP_A, to=A.peer_id))
        e = wa.recv_json(T)
        self.assertEnvelope(e, "offer", room, senders[1].peer_id, A.peer_id, sdp=SDP_A, id=nid)
        wa.expect_nothing(0.3)
        self.assertEqual(A.event_list(), [])
        self.assertEqual(len({m["id"] for m in got}), len(got))

    def test_client_close_keeps_member_and_backlog_waits(self):
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa = self.ws(A)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        wb = self.ws(B)
        self.assertEqual(wb.close(), CLOSE_NORMAL)
        # not a leave: no peer-left, B still a member, signals to B wait for it
        wa.expect_nothing(0.5)
        oid = self.post(wa, {"type": "offer", "to": B.peer_id, "sdp": SDP_O}, "o")
        cid = self.post(wa, {"type": "candidate", "to": B.peer_id, "candidate": None}, "c")
        self.assertStatus(B.heartbeat(), 200)
        wb = self.ws(B)
        self.assertEnvelope(wb.recv_json(T), "offer", A.room_id, A.peer_id, B.peer_id, id=oid)
        self.assertEnvelope(wb.recv_json(T), "candidate", A.room_id, A.peer_id, B.peer_id,
                            id=cid, candidate=None)
        wb.expect_nothing(0.3)


class TestLatency(DeliveryCase):
    def test_rest_offer_reaches_socket_fast(self):
        srv = self.server(PARLEY_RL_SIGNAL="0")
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa = self.ws(A)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        lat = []
        with Client(srv) as cl:
            def post(i):
                t0 = time.monotonic()
                r = cl.req("POST", "/signaling/offer", token=B.token,
                           body={"roomId": A.room_id, "to": A.peer_id, "sdp": SDP_O + "a=%d\r\n" % i})
                self.assertStatus(r, 202)
                t1, msg = wa.recv_timed(T)
                e = json.loads(msg)
                self.assertEqual((e["type"], e["id"]), ("offer", r.json()["id"]))
                return t1 - t0
            post(-1)  # warm-up: connection set up
            for i in range(20):
                lat.append(post(i))
        med, worst = statistics.median(lat), max(lat)
        msg = "post-to-receipt ms: median %.1f, max %.1f, all %s" % (
            med * 1000, worst * 1000, ["%.1f" % (x * 1000) for x in lat])
        self.assertLess(med, scaled(0.050), msg)
        self.assertLess(worst, scaled(0.200), msg)


class TestMixedPeers(DeliveryCase):
    def test_ws_and_rest_peer_negotiate_both_ways(self):
        srv = self.server()
        A = Peer.create(srv)  # socket
        room = A.room_id
        C = Peer.join(srv, room)  # REST polling
        wa = self.ws(A)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")

        # A offers over WS, C reads it over REST and answers without `to`
        oid = self.post(wa, {"type": "offer", "to": C.peer_id, "sdp": SDP_O}, "o1")
        r = C.get_offer()
        self.assertStatus(r, 200)
        self.assertEnvelope(r.json(), "offer", room, A.peer_id, C.peer_id, sdp=SDP_O, id=oid)
        aid = self.rest_id(C.answer(SDP_A))
        self.assertEnvelope(wa.recv_json(T), "answer", room, C.peer_id, A.peer_id, sdp=SDP_A, id=aid)
        # candidates both ways
        c1 = self.post(wa, {"type": "candidate", "to": C.peer_id, "candidate": CAND_OBJ}, "c1")
        c2 = self.post(wa, {"type": "candidate", "to": C.peer_id, "candidate": None}, "c2")
        ev = C.event_list()
        self.assertEqual(len(ev), 2, ev)
        self.assertEnvelope(ev[0], "candidate", room, A.peer_id, C.peer_id, candidate=CAND_OBJ, id=c1)
        self.assertEnvelope(ev[1], "candidate", room, A.peer_id, C.peer_id, candidate=None, id=c2)
        c3 = self.rest_id(C.candidate(A.peer_id, CAND_STR))
        c4 = self.rest_id(C.candidate(A.peer_id, None))
        self.assertEnvelope(wa.recv_json(T), "candidate", room, C.peer_id, A.peer_id,
                            candidate=CAND_STR, id=c3)
        self.assertEnvelope(wa.recv_json(T), "candidate", room, C.peer_id, A.peer_id,
                            candidate=None, id=c4)

        # the other way: C offers over REST, A answers over WS without `to` (the sender of
        # the last offer delivered to A, here on the socket)
        oid = self.rest_id(C.offer(SDP_O, to=A.peer_id))
        self.assertEnvelope(wa.recv_json(T), "offer", room, C.peer_id, A.peer_id, sdp=SDP_O, id=oid)
        aid = self.post(wa, {"type": "answer", "sdp": SDP_A}, "a1")
        r = C.get_answer()
        self.assertStatus(r, 200)
        self.assertEnvelope(r.json(), "answer", room, A.peer_id, C.peer_id, sdp=SDP_A, id=aid)
        self.assertStatus(C.get_answer(), 204)
        wa.expect_nothing(0.3)
        self.assertEqual(A.event_list(), [])
        self.assertEqual(C.event_list(), [])


class TestAcksAndErrors(DeliveryCase):
    def test_ack_only_with_ref(self):
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa, wb = self.ws(A), self.ws(B)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        for ref in ("r-string", 42, 0, -7, "x" * 60):
            with self.subTest(ref=ref):
                oid = self.post(wa, {"type": "offer", "to": B.peer_id, "sdp": SDP_O}, ref)
                self.assertEqual(wb.recv_json(T)["id"], oid)
        # no ref, no ack: the next thing A sees is the heartbeat answer
        wa.send_json({"type": "offer", "to": B.peer_id, "sdp": SDP_O})
        wa.send_json({"type": "candidate", "to": B.peer_id, "candidate": None})
        wa.send_json({"type": "heartbeat", "ref": "hb"})
        m = wa.recv_json(T)
        self.assertEqual((m.get("type"), m.get("ref")), ("heartbeat", "hb"), m)
        self.assertEqual([wb.recv_json(T)["type"] for _ in range(2)], ["offer", "candidate"])
        self.quiet(wa, wb)

    def test_ref_may_be_any_json_number(self):
        # ws-decisions: ref is "any JSON string or number <= 64 bytes"
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa, wb = self.ws(A), self.ws(B)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        for ref in (1.5, -0.25, 1e21):
            with self.subTest(ref=ref):
                oid = self.post(wa, {"type": "offer", "to": B.peer_id, "sdp": SDP_O}, ref)
                self.assertEqual(wb.recv_json(T)["id"], oid)

    def test_refused_signals_get_errors_and_keep_the_socket(self):
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        other = Peer.create(srv)
        wa, wb = self.ws(A), self.ws(B)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        cases = [
            ("unknown type", {"type": "bogus"}, "invalid_request"),
            ("no type", {"sdp": SDP_O, "to": B.peer_id}, "invalid_request"),
            ("type not a string", {"type": 5}, "invalid_request"),
            ("offer without sdp", {"type": "offer", "to": B.peer_id}, "invalid_request"),
            ("offer with empty sdp", {"type": "offer", "to": B.peer_id, "sdp": ""},
             "invalid_request"),
            ("sdp not a string", {"type": "offer", "to": B.peer_id, "sdp": 12}, "invalid_request"),
            ("offer to self", {"type": "offer", "to": A.peer_id, "sdp": SDP_O}, "invalid_request"),
            ("offer to an unknown peer", {"type": "offer", "to": UNKNOWN_PEER, "sdp": SDP_O},
             "not_found"),
            ("answer to an unknown peer", {"type": "answer", "to": UNKNOWN_PEER, "sdp": SDP_A},
             "not_found"),
            ("answer with no offer to answer", {"type": "answer", "sdp": SDP_A}, "invalid_request"),
            ("candidate without to", {"type": "candidate", "candidate": None}, "invalid_request"),
            ("candidate to self", {"type": "candidate", "to": A.peer_id, "candidate": None},
             "invalid_request"),
            ("candidate to an unknown peer",
             {"type": "candidate", "to": UNKNOWN_PEER, "candidate": CAND_OBJ}, "not_found"),
            ("another room's roomId",
             {"type": "offer", "roomId": other.room_id, "to": B.peer_id, "sdp": SDP_O},
             "forbidden"),
        ]
        for i, (what, msg, code) in enumerate(cases):
            with self.subTest(what):
                ref = "e%d" % i
                wa.send_json(dict(msg, ref=ref))
                self.assertWsError(wa.recv_json(T), code, ref)
        # still open, and the matching roomId is fine
        oid = self.post(wa, {"type": "offer", "roomId": A.room_id, "to": B.peer_id, "sdp": SDP_O},
                        "ok")
        self.assertEqual(wb.recv_json(T)["id"], oid)
        self.quiet(wa, wb)  # none of the refused ones reached B
        self.assertEqual(B.event_list(), [])


class TestHeartbeatLeaveReplace(DeliveryCase):
    def test_heartbeat_over_ws(self):
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wb = self.ws(B)
        old_exp = json.loads(b64url_decode(B.token.split(".")[1]))["exp"]
        time.sleep(1.1)  # a fresh token has a later exp
        t = time.time()
        wb.send_json({"type": "heartbeat", "ref": "h1"})
        m = wb.recv_json(T)
        self.assertEqual(m.get("type"), "heartbeat", m)
        self.assertEqual(m.get("ref"), "h1")
        self.assertEqual(m.get("roomId"), A.room_id)
        self.assertEqual(m.get("participantCount"), 2)
        exp = parse_iso(m.get("expiresAt"))
        self.assertGreater(exp, t + 80, "expiresAt %s should be ~now+90 s" % m["expiresAt"])
        self.assertLess(exp, t + 100)
        tok = m.get("signalingToken")
        self.assertIsInstance(tok, str)
        claims = json.loads(b64url_decode(tok.split(".")[1]))
        self.assertEqual((claims.get("rid"), claims.get("pid")), (A.room_id, B.peer_id))
        self.assertGreater(claims["exp"], old_exp)
        self.assertStatus(req(srv, "GET", "/signaling/events/" + A.room_id, token=tok), 200)
        # without a ref: no ref in the answer
        wb.send_json({"type": "heartbeat"})
        m = wb.recv_json(T)
        self.assertEqual(m.get("type"), "heartbeat", m)
        self.assertNotIn("ref", m)

    def test_leave_over_ws(self):
        srv = self.server()
        A = Peer.create(srv, topology="star")
        B = Peer.join(srv, A.room_id)
        C = Peer.join(srv, A.room_id)  # REST
        wa, wb = self.ws(A), self.ws(B)
        self.assertEqual([wa.recv_json(T)["type"] for _ in range(2)],
                         ["offer-request", "offer-request"])
        self.assertEqual(wb.recv_json(T)["type"], "peer-joined")
        self.assertEqual(C.event_list(), [])
        wb.send_json({"type": "leave"})
        code, _ = wb.wait_closed(T)
        self.assertEqual(code, CLOSE_NORMAL)
        self.assertEnvelope(wa.recv_json(T), "peer-left", A.room_id, None, A.peer_id,
                            peer=self.peer_obj(B))
        wa.expect_nothing(0.4)  # exactly once
        ev = C.event_list()
        self.assertEqual(len(ev), 1, ev)
        self.assertEnvelope(ev[0], "peer-left", A.room_id, None, C.peer_id, peer=self.peer_obj(B))
        self.assertStatus(B.events(), 403)
        wa.send_json({"type": "heartbeat", "ref": 1})
        self.assertEqual(wa.recv_json(T).get("participantCount"), 2)

    def test_rest_leave_closes_the_socket(self):
        # docs/api.md 6.4: a REST leave-room while the peer's socket is open closes it with
        # 1000 ("left"), after what was already queued on it.
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa, wb = self.ws(A), self.ws(B)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        self.assertStatus(B.leave(), 204)
        self.assertEqual(wb.wait_closed(T), (CLOSE_NORMAL, "left"))
        self.assertEnvelope(wa.recv_json(T), "peer-left", A.room_id, None, A.peer_id,
                            peer=self.peer_obj(B))
        wa.expect_nothing(0.4)

    def test_second_socket_replaces_first(self):
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa = self.ws(A)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        wb1 = self.ws(B)
        wb2 = self.ws(B, via="header")
        code, _ = wb1.wait_closed(T)
        self.assertEqual(code, CLOSE_REPLACED)
        self.assertEqual(wb1.received, 0)
        oid = self.post(wa, {"type": "offer", "to": B.peer_id, "sdp": SDP_O}, "o")
        self.assertEqual(wb2.recv_json(T)["id"], oid)
        wa.expect_nothing(0.4)  # replacing is not leaving
        wb2.send_json({"type": "heartbeat", "ref": 2})
        self.assertEqual(wb2.recv_json(T).get("participantCount"), 2)
        self.assertGreaterEqual(metrics(srv).sum("parley_ws_closes_total", code="4001"), 1)

    def test_socket_delivery_consumes(self):
        srv = self.server()
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa = self.ws(A)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        pushed0 = metrics(srv).sum("parley_ws_envelopes_pushed_total")
        ids = [self.rest_id(B.offer(SDP_O, to=A.peer_id)),
               self.rest_id(B.candidate(A.peer_id, CAND_STR)),
               self.rest_id(B.answer(SDP_A, to=A.peer_id))]
        self.assertEqual([wa.recv_json(T)["id"] for _ in ids], ids)
        self.assertEqual(A.event_list(), [])
        self.assertStatus(A.get_offer(), 204)
        self.assertStatus(A.get_answer(), 204)
        m = metrics(srv)
        self.assertEqual(m.sum("parley_signals_queued"), 0)
        self.assertEqual(m.sum("parley_ws_envelopes_pushed_total"), pushed0 + 3)
        wa.expect_nothing(0.3)

    def test_ws_posts_keep_per_sender_order(self):
        srv = self.server(PARLEY_RL_SIGNAL="0")
        A = Peer.create(srv)
        B = Peer.join(srv, A.room_id)
        wa, wb = self.ws(A), self.ws(B)
        self.assertEqual(wa.recv_json(T)["type"], "offer-request")
        n = 50
        for i in range(n):  # no waiting for acks
            wa.send_json({"type": "candidate", "to": B.peer_id, "ref": i,
                          "candidate": {"candidate": "c%d" % i, "sdpMid": "0", "sdpMLineIndex": 0}})
        acks = [wa.recv_json(T) for _ in range(n)]
        self.assertEqual([a.get("ref") for a in acks], list(range(n)))
        got = [wb.recv_json(T) for _ in range(n)]
        self.assertEqual([g["candidate"]["candidate"] for g in got], ["c%d" % i for i in range(n)])
        self.assertEqual([g["id"] for g in got], [a["id"] for a in acks])
        self.quiet(wa, wb)
        # On the redis engine the recipient's socket is on this node and keeps up, so every
        # one went straight from the push to it (docs/scaling.md); the memory engine always
        # goes through the inbox.
        direct = metrics(srv).value("parley_ws_envelopes_direct_total")
        self.assertEqual(direct, n if TEST_STORE == "redis" else 0)


if __name__ == "__main__":
    unittest.main()
