"""Scale-out: several parleyd nodes on one redis-server (issue 4).

Every test here uses the redis engine whatever PARLEY_TEST_STORE says: the class starts one
private redis-server (setUpClass) and passes its URL as PARLEY_STORE to every node, so the
harness neither spawns a redis per Server nor flushes a shared PARLEY_TEST_REDIS_URL. The
database is flushed before each test (rate-limit counters are per user and per client IP,
and every node runs on 127.0.0.1).
"""

import json
import shutil
import signal
import time
import unittest

from harness import (Peer, RedisServer, _redis_flush, check_error, create_room, metrics, needs,
                     mint_token, req, run_in_thread, scaled, uniq, wait_until)
from wsclient import WsTestCase, websockets, ws_connect

SDP_A = "v=0\r\no=- 11 1 IN IP4 127.0.0.1\r\ns=-\r\n"
SDP_B = "v=0\r\no=- 22 1 IN IP4 127.0.0.1\r\ns=-\r\n"


@needs(shutil.which("redis-server"), "redis-server not installed")
class ClusterTestCase(WsTestCase):
    redis = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = RedisServer().start()

    @classmethod
    def tearDownClass(cls):
        if cls.redis is not None:
            cls.redis.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        _redis_flush(self.redis.url)

    def node(self, n, **kw):
        """A parleyd node on its own port, sharing the class's redis."""
        kw.setdefault("PARLEY_STORE", self.redis.url)
        kw.setdefault("PARLEY_NODE_ID", "node-%d" % n)
        kw.setdefault("fresh_store", False)
        srv = self.server(**kw)
        self.assertEqual(srv.env["PARLEY_STORE"], self.redis.url)
        return srv

    def nodes(self, count, **kw):
        return [self.node(i + 1, **kw) for i in range(count)]

    def ready(self, *srvs):
        for s in srvs:
            wait_until(lambda: req(s, "GET", "/readyz").status == 200, scaled(5),
                       msg="node %s never ready" % s.url)


class TestSharedRooms(ClusterTestCase):

    def test_room_created_on_node1_listed_and_joinable_on_node2(self):
        n1, n2 = self.nodes(2)
        self.ready(n1, n2)
        a = Peer.create(n1, name="Alice", customName=uniq("room"))
        r = req(n2, "GET", "/signaling/rooms")
        self.assertStatus(r, 200)
        body = r.json()
        rooms = body["rooms"] if isinstance(body, dict) else body
        self.assertIn(a.room_id, [x.get("roomId") for x in rooms], body)
        r = req(n2, "GET", "/signaling/rooms/" + a.room_id)
        self.assertStatus(r, 200)
        b = Peer.join(n2, a.room_id, name="Bob")
        self.assertEqual(b.room_id, a.room_id)
        self.assertNotEqual(b.peer_id, a.peer_id)
        # Both nodes see two members.
        for s in (n1, n2):
            r = req(s, "GET", "/signaling/rooms/" + a.room_id)
            self.assertStatus(r, 200)
            self.assertEqual(r.json().get("participantCount"), 2, r)

    def test_signaling_token_from_node1_works_on_node2(self):
        n1, n2 = self.nodes(2)
        a = Peer.create(n1)
        a.server = n2
        r = a.heartbeat()
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["roomId"], a.room_id)
        # The token issued by node 2 works on node 1 too.
        a.server = n1
        self.assertStatus(a.events(), 200)
        self.assertStatus(a.heartbeat(), 200)
        # A token signed with another secret is refused by every node.
        forged = mint_token(uniq("x"), secret="another-secret-0123456789-0123456789-0123456")
        for s in (n1, n2):
            check_error(req(s, "POST", "/signaling/create-room", body={}, token=forged),
                        401, "unauthorized")

    def test_three_nodes_share_one_room(self):
        n1, n2, n3 = self.nodes(3)
        self.ready(n1, n2, n3)
        a = Peer.create(n1)
        b = Peer.join(n2, a.room_id)
        c = Peer.join(n3, a.room_id)
        for s in (n1, n2, n3):
            r = req(s, "GET", "/signaling/rooms/" + a.room_id)
            self.assertStatus(r, 200)
            self.assertEqual(r.json().get("participantCount"), 3, r)
        # c (node 3) -> b (node 2), b answers, both read over REST on their own node.
        self.assertStatus(c.offer(SDP_A, to=b.peer_id), 202)
        r = b.get_offer()
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["sdp"], SDP_A)
        self.assertEqual(r.json()["from"], c.peer_id)
        self.assertStatus(b.answer(SDP_B, to=c.peer_id), 202)
        r = c.get_answer()
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["sdp"], SDP_B)
        self.assertEqual(r.json()["from"], b.peer_id)
        # b leaves on node 2: a (node 1) and c (node 3) both see peer-left.
        self.assertIn(b.leave().status, (200, 204))
        for p in (a, c):
            evs = wait_until(lambda: [e for e in p.event_list() if e["type"] == "peer-left"],
                             scaled(3))
            self.assertEqual(evs[0]["peer"]["peerId"], b.peer_id)


class TestCrossNodeRest(ClusterTestCase):

    def test_offer_answer_candidate_over_rest_polling(self):
        n1, n2 = self.nodes(2)
        a = Peer.create(n1, name="Alice")
        b = Peer.join(n2, a.room_id, name="Bob")
        # a (node 1) learns about b through events on node 1.
        evs = wait_until(lambda: a.event_list(), scaled(3))
        self.assertIn(evs[0]["type"], ("offer-request", "peer-joined"), evs)
        self.assertEqual(evs[0]["peer"]["peerId"], b.peer_id, evs)
        self.assertStatus(a.offer(SDP_A, to=b.peer_id), 202)
        r = b.get_offer()
        self.assertStatus(r, 200)
        off = r.json()
        self.assertEqual((off["type"], off["from"], off["to"], off["sdp"]),
                         ("offer", a.peer_id, b.peer_id, SDP_A))
        self.assertStatus(b.answer(SDP_B), 202)  # to defaults to the offer's sender
        r = a.get_answer()
        self.assertStatus(r, 200)
        ans = r.json()
        self.assertEqual((ans["from"], ans["to"], ans["sdp"]), (b.peer_id, a.peer_id, SDP_B))
        cand = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 40000 typ host",
                "sdpMid": "0", "sdpMLineIndex": 0}
        self.assertStatus(a.candidate(b.peer_id, cand), 202)
        self.assertStatus(b.candidate(a.peer_id, None), 202)
        got_b = wait_until(lambda: [e for e in b.event_list() if e["type"] == "candidate"],
                           scaled(3))
        self.assertEqual(got_b[0]["candidate"], cand)
        self.assertEqual(got_b[0]["from"], a.peer_id)
        got_a = wait_until(lambda: [e for e in a.event_list() if e["type"] == "candidate"],
                           scaled(3))
        self.assertIsNone(got_a[0]["candidate"])
        # Consumed once: nothing left on either node.
        for p, s in ((a, n2), (b, n1)):
            p.server = s
            self.assertEqual([e for e in p.event_list() if e["type"] == "candidate"], [])

    def test_long_poll_on_node2_woken_by_post_on_node1(self):
        n1, n2 = self.nodes(2)
        a = Peer.create(n1)
        b = Peer.join(n2, a.room_id)
        b.event_list()  # drain whatever the join produced
        a.event_list()
        t, box = run_in_thread(b.events, 10)
        time.sleep(0.5)  # the poll is parked on node 2
        self.assertTrue(t.is_alive(), box)
        t_post = time.monotonic()
        self.assertStatus(a.offer(SDP_A, to=b.peer_id), 202)
        t.join(scaled(3))
        self.assertFalse(t.is_alive(), "long-poll on node 2 not woken by a post on node 1")
        woke = time.monotonic() - t_post
        self.assertNotIn("error", box)
        r = box["result"]
        self.assertStatus(r, 200)
        evs = r.json()["events"]
        self.assertEqual([e["type"] for e in evs], ["offer"], evs)
        self.assertEqual(evs[0]["sdp"], SDP_A)
        self.assertLess(woke, scaled(0.5), "woken after %.3f s" % woke)
        self.assertLess(r.elapsed, 5, r.elapsed)


@needs(websockets is not None, "python3-websockets not importable")
class TestCrossNodeWebSocket(ClusterTestCase):

    def test_socket_on_node2_receives_offer_posted_on_node1_quickly(self):
        n1, n2 = self.nodes(2)
        a = Peer.create(n1)
        b = Peer.join(n2, a.room_id)
        ws = self.ws(b, subprotocols=["parley.v1"])
        ws.collect(quiet=0.3)  # anything waiting (offer-request ...)
        lat = []
        for i in range(5):
            sdp = SDP_A + "a=x-seq:%d\r\n" % i
            t0 = time.monotonic()
            r = a.offer(sdp, to=b.peer_id)
            self.assertStatus(r, 202)
            t, msg = ws.recv_timed(scaled(2))
            m = json.loads(msg)
            self.assertEnvelope(m, "offer", a.room_id, a.peer_id, b.peer_id, sdp=sdp)
            self.assertEqual(m["id"], r.json()["id"])
            lat.append(t - t0)
        self.assertLess(max(lat), scaled(0.2), "latencies %r" % lat)
        ws.expect_nothing(0.3)

    def test_ws_exchange_across_nodes(self):
        n1, n2 = self.nodes(2)
        a = Peer.create(n1)
        b = Peer.join(n2, a.room_id)
        wa = self.ws(a, subprotocols=["parley.v1"])
        wb = self.ws(b, subprotocols=["parley.v1"])
        wa.collect(quiet=0.3)
        wb.collect(quiet=0.3)
        wa.send_json({"type": "offer", "to": b.peer_id, "sdp": SDP_A, "ref": 1})
        ack, _ = wa.recv_until(lambda m: m.get("type") == "ack", scaled(2))
        oid = self.assertAck(ack, 1)
        off, _ = wb.recv_until(lambda m: m.get("type") == "offer", scaled(2))
        self.assertEnvelope(off, "offer", a.room_id, a.peer_id, b.peer_id, sdp=SDP_A, id=oid)
        wb.send_json({"type": "answer", "sdp": SDP_B, "ref": "a1"})
        ack, _ = wb.recv_until(lambda m: m.get("type") == "ack", scaled(2))
        self.assertAck(ack, "a1")
        ans, _ = wa.recv_until(lambda m: m.get("type") == "answer", scaled(2))
        self.assertEnvelope(ans, "answer", a.room_id, b.peer_id, a.peer_id, sdp=SDP_B)
        cands = [{"candidate": "candidate:%d 1 udp 2122260223 192.0.2.10 4000%d typ host" % (i, i),
                  "sdpMid": "0", "sdpMLineIndex": 0} for i in range(10)] + [None]
        for i, c in enumerate(cands):
            wa.send_json({"type": "candidate", "to": b.peer_id, "candidate": c, "ref": i})
        got = []
        deadline = time.monotonic() + scaled(3)
        while len(got) < len(cands) and time.monotonic() < deadline:
            m = wb.recv_json(scaled(2))
            if m.get("type") == "candidate":
                got.append(m)
        self.assertEqual([m["candidate"] for m in got], cands, "lost, duplicated or reordered")
        wb.expect_nothing(0.3)
        acks = [m for m in wa.collect(quiet=0.3) if m.get("type") == "ack"]
        self.assertEqual([m["ref"] for m in acks], list(range(len(cands))))
        # b's REST inbox on node 1 holds nothing left over (no duplicate).
        b.server = n1
        self.assertEqual(b.event_list(), [])
        # a heartbeat over the socket on node 2 renews a token that works on node 1.
        wb.send_json({"type": "heartbeat", "ref": 7})
        hb, _ = wb.recv_until(lambda m: m.get("type") == "heartbeat", scaled(2))
        b.token = hb["signalingToken"]
        self.assertStatus(b.heartbeat(), 200)

    def test_rest_post_on_node2_pushed_to_socket_on_node1(self):
        n1, n2 = self.nodes(2)
        a = Peer.create(n1)
        b = Peer.join(n2, a.room_id)
        wa = self.ws(a)
        wa.collect(quiet=0.3)
        t0 = time.monotonic()
        self.assertStatus(b.offer(SDP_B, to=a.peer_id), 202)
        t, msg = wa.recv_timed(scaled(2))
        self.assertEnvelope(json.loads(msg), "offer", a.room_id, b.peer_id, a.peer_id, sdp=SDP_B)
        self.assertLess(t - t0, scaled(0.2))

    def test_sigkill_node2_expires_its_member_on_node1(self):
        ttl = 3
        env = dict(PARLEY_MEMBER_TTL=str(ttl), PARLEY_WS_PING_INTERVAL="1")
        n1 = self.node(1, **env)
        n2 = self.node(2, expect_exit=None, **env)
        a = Peer.create(n1)
        b = Peer.join(n2, a.room_id)
        wa = self.ws(a)  # a stays alive by answering node 1's pings
        wb = self.ws(b)  # b's only liveness: its socket on node 2
        # Longer than the TTL: the socket keeps b a member.
        time.sleep(ttl + 1.5)
        r = req(n1, "GET", "/signaling/rooms/" + a.room_id)
        self.assertStatus(r, 200)
        self.assertEqual(r.json().get("participantCount"), 2, r)
        wa.collect(quiet=0.2)
        t_kill = time.monotonic()
        self.assertEqual(n2.kill(), -signal.SIGKILL)
        wb.wait_closed(scaled(3))
        left, _ = wa.recv_until(lambda m: m.get("type") == "peer-left", scaled(ttl + 4))
        dt = time.monotonic() - t_kill
        self.assertEqual(left["peer"]["peerId"], b.peer_id, left)
        self.assertLess(dt, scaled(ttl + 3), "peer-left after %.2f s" % dt)
        r = req(n1, "GET", "/signaling/rooms/" + a.room_id)
        self.assertStatus(r, 200)
        self.assertEqual(r.json().get("participantCount"), 1, r)
        self.assertFalse(wa.closed)


class TestExpiryWithCreatorDead(ClusterTestCase):
    """Expiry needs no particular node: every node sweeps, the sweep is atomic, so each
    expiry is reported once even with three nodes alive, and the node that created the
    room (and held its member) may be dead."""

    @needs(websockets is not None, "python3-websockets not importable")
    def test_creator_node_killed_its_member_expires_once_on_three_nodes(self):
        ttl = 3
        env = dict(PARLEY_MEMBER_TTL=str(ttl), PARLEY_WS_PING_INTERVAL="1")
        n1 = self.node(1, expect_exit=None, **env)
        n2, n3 = self.node(2, **env), self.node(3, **env)
        a = Peer.create(n1)  # a REST peer whose only node dies: its heartbeats stop
        b = Peer.join(n2, a.room_id)
        c = Peer.join(n3, a.room_id)
        wb, wc = self.ws(b), self.ws(c)
        wb.collect(quiet=0.3)
        wc.collect(quiet=0.3)
        self.assertEqual(n1.kill(), -signal.SIGKILL)
        t_kill = time.monotonic()
        for w in (wb, wc):
            left, _ = w.recv_until(lambda m: m.get("type") == "peer-left", scaled(ttl + 4))
            self.assertEqual(left["peer"]["peerId"], a.peer_id, left)
        self.assertLess(time.monotonic() - t_kill, scaled(ttl + 3))
        # Exactly once: two surviving nodes sweep every second, neither reports it again.
        for w in (wb, wc):
            extra = [m for m in w.collect(quiet=2.5) if m.get("type") == "peer-left"]
            self.assertEqual(extra, [], "peer-left delivered twice")
        reports = [n for n in (n2, n3) for _ in n.find_log("member expired", peer=a.peer_id)]
        self.assertEqual(len(reports), 1, "expiry reported by %d nodes" % len(reports))
        r = req(n3, "GET", "/signaling/rooms/" + a.room_id)
        self.assertStatus(r, 200)
        self.assertEqual(r.json().get("participantCount"), 2, r)

    def test_room_of_a_dead_node_expires_on_the_others(self):
        ttl = 2
        n1 = self.node(1, expect_exit=None, PARLEY_MEMBER_TTL=str(ttl))
        n2 = self.node(2, PARLEY_MEMBER_TTL=str(ttl))
        a = Peer.create(n1)  # public by default
        self.assertIn(a.room_id, [x["roomId"] for x in req(n2, "GET", "/signaling/rooms")
                                  .json()["rooms"]])
        self.assertEqual(n1.kill(), -signal.SIGKILL)
        # Its only member expires, which removes the room: gone from node 2's view.
        wait_until(lambda: req(n2, "GET", "/signaling/rooms/" + a.room_id).status == 404,
                   scaled(ttl + 4), msg="the dead node's room never expired")
        check_error(req(n2, "GET", "/signaling/rooms/" + a.room_id), 404, "not_found")
        self.assertNotIn(a.room_id, [x["roomId"] for x in req(n2, "GET", "/signaling/rooms")
                                     .json()["rooms"]])
        check_error(req(n2, "POST", "/signaling/join-room", body={"roomId": a.room_id},
                        token=mint_token(uniq("late"))), 404, "not_found")


class TestCrossNodeRateLimits(ClusterTestCase):

    def test_create_room_limit_is_shared(self):
        n1, n2 = self.nodes(2, PARLEY_RL_CREATE_ROOM="3/60")
        tok = mint_token(uniq("rl"))
        for s in (n1, n1, n2):
            r = req(s, "POST", "/signaling/create-room", body={}, token=tok)
            self.assertIn(r.status, (200, 201), r)
        r = req(n2, "POST", "/signaling/create-room", body={}, token=tok)
        check_error(r, 429, "rate_limited")
        self.assertTrue(r.header("Retry-After"), r)
        # Refused on node 1 as well; another user is not affected.
        check_error(req(n1, "POST", "/signaling/create-room", body={}, token=tok),
                    429, "rate_limited")
        create_room(n1, mint_token(uniq("rl")))

    def test_join_user_limit_is_shared_across_three_nodes(self):
        n1, n2, n3 = self.nodes(3, PARLEY_RL_JOIN_USER="3/60")
        rooms = [Peer.create(n1, maxPeers=10).room_id for _ in range(4)]
        tok = mint_token(uniq("j"))
        for s, room in zip((n1, n2, n3), rooms):
            r = req(s, "POST", "/signaling/join-room", body={"roomId": room}, token=tok)
            self.assertStatus(r, 200)
        for s in (n1, n2, n3):
            check_error(req(s, "POST", "/signaling/join-room", body={"roomId": rooms[3]},
                            token=tok), 429, "rate_limited")


if __name__ == "__main__":
    unittest.main()
