"""The seed's whole signaling flow, and the REST rules around it (DESIGN section 4,
notes/api-decisions.md): create, join, offer/answer/candidates, events, heartbeat, leave,
listing, private rooms, pagination, capacity, guests, TURN credentials, token scoping."""

import base64
import hashlib
import hmac
import time
import unittest

from harness import (ParleyTestCase, Peer, ServerStartError, mint_token, parse_iso, req, uniq)

STUN_DEFAULT_PREFIX = ("stun:", "stuns:")
METADATA_KEYS = {"roomId", "broadcasterId", "broadcasterName", "createdAt", "participantCount",
                 "isPublic", "topology", "maxPeers"}


class FlowAsserts(ParleyTestCase):
    def assertJson(self, r, status):
        self.assertStatus(r, status)
        self.assertJsonType(r)
        return r.json()

    def assertMetadata(self, m, room_id=None, broadcaster_id=None, broadcaster_name=None,
                       count=None, public=True, custom_name=None, topology="mesh",
                       max_peers=16):
        self.assertIsInstance(m, dict)
        missing = METADATA_KEYS - set(m)
        self.assertFalse(missing, "RoomMetadata lacks %s: %r" % (missing, m))
        self.assertId(m["roomId"], "roomId")
        if room_id is not None:
            self.assertEqual(m["roomId"], room_id)
        if broadcaster_id is not None:
            self.assertEqual(m["broadcasterId"], broadcaster_id)
        if broadcaster_name is not None:
            self.assertEqual(m["broadcasterName"], broadcaster_name)
        created = self.assertIso(m["createdAt"], "createdAt")
        self.assertLess(abs(created - time.time()), 120, "createdAt %s far from now" % m["createdAt"])
        self.assertIsInstance(m["participantCount"], int)
        self.assertNotIsInstance(m["participantCount"], bool)
        if count is not None:
            self.assertEqual(m["participantCount"], count, m)
        self.assertIs(m["isPublic"], public)
        if custom_name is None:
            self.assertNotIn("customName", m, "customName must be omitted when none")
        else:
            self.assertEqual(m["customName"], custom_name)
        self.assertEqual(m["topology"], topology)
        self.assertEqual(m["maxPeers"], max_peers)

    def assertIceServers(self, ice):
        self.assertIsInstance(ice, list)
        self.assertGreaterEqual(len(ice), 1)
        first = ice[0]
        self.assertIsInstance(first.get("urls"), list)
        self.assertGreaterEqual(len(first["urls"]), 1)
        for u in first["urls"]:
            self.assertTrue(u.startswith(STUN_DEFAULT_PREFIX), "stun url %r" % u)

    def assertEnvelope(self, e, type_, room_id, from_, to, **extra):
        self.assertIsInstance(e, dict)
        self.assertEqual(e.get("type"), type_, e)
        self.assertId(e.get("id"), "envelope id")
        self.assertEqual(e.get("roomId"), room_id, e)
        self.assertIn("from", e)
        self.assertEqual(e["from"], from_, e)
        self.assertIn("to", e)
        self.assertEqual(e["to"], to, e)
        self.assertIsInstance(e.get("ts"), int, e)
        self.assertLess(abs(e["ts"] - time.time() * 1000), 120000, "ts %r far from now" % e["ts"])
        for k, v in extra.items():
            self.assertIn(k, e, e)
            self.assertEqual(e[k], v, e)

    def peer_obj(self, p):
        # `name` defaults to `sub` when the token has no name claim (docs/api.md section 2)
        return {"peerId": p.peer_id, "userId": p.user_id,
                "name": p.name if p.name is not None else p.user_id}

    def events(self, peer, wait=None):
        r = peer.events(wait)
        j = self.assertJson(r, 200)
        self.assertEqual(set(j), {"events"}, j)
        self.assertIsInstance(j["events"], list)
        return j["events"]


class TestSeedFlow(FlowAsserts):
    def test_whole_flow(self):
        srv = self.server()
        bsub, bname = uniq("alice"), "Alice " + uniq("n")
        btok = mint_token(bsub, bname)
        t_before = time.time()

        # create: 201 with the full shape
        r = req(srv, "POST", "/signaling/create-room", body={"customName": "Alice's room"}, token=btok)
        c = self.assertJson(r, 201)
        for k in ("roomId", "peerId", "signalingToken", "room", "iceServers", "heartbeatIntervalSeconds"):
            self.assertIn(k, c)
        self.assertId(c["roomId"], "roomId")
        self.assertId(c["peerId"], "peerId")
        self.assertIsInstance(c["signalingToken"], str)
        self.assertGreater(len(c["signalingToken"]), 10)
        self.assertEqual(c["heartbeatIntervalSeconds"], 30)
        self.assertIceServers(c["iceServers"])
        self.assertMetadata(c["room"], room_id=c["roomId"], broadcaster_id=bsub, broadcaster_name=bname,
                            count=1, custom_name="Alice's room")
        self.assertGreaterEqual(parse_iso(c["room"]["createdAt"]), t_before - 2)
        room = c["roomId"]
        B = Peer(srv, c, bsub, bname, btok)

        # create again while the room lives: 200, same room, same peer; body ignored
        r = req(srv, "POST", "/signaling/create-room", body={"customName": "other", "isPublic": False},
                token=btok)
        c2 = self.assertJson(r, 200)
        self.assertEqual(c2["roomId"], room)
        self.assertEqual(c2["peerId"], B.peer_id)
        self.assertMetadata(c2["room"], room_id=room, count=1, custom_name="Alice's room")
        self.assertIsInstance(c2["signalingToken"], str)

        # listed, and readable
        r = req(srv, "GET", "/signaling/rooms")
        lst = self.assertJson(r, 200)
        self.assertEqual(set(lst), {"rooms", "nextCursor"})
        self.assertIsNone(lst["nextCursor"])
        self.assertEqual([m["roomId"] for m in lst["rooms"]], [room])
        self.assertMetadata(lst["rooms"][0], room_id=room, broadcaster_id=bsub, count=1,
                            custom_name="Alice's room")
        r = req(srv, "GET", "/signaling/rooms/" + room)
        m = self.assertJson(r, 200)
        self.assertMetadata(m, room_id=room, broadcaster_id=bsub, broadcaster_name=bname, count=1,
                            custom_name="Alice's room")
        self.assertEqual(m["createdAt"], c["room"]["createdAt"])

        # join by roomId
        v1sub, v1name = uniq("bob"), "Bob"
        v1tok = mint_token(v1sub, v1name)
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": room}, token=v1tok)
        j1 = self.assertJson(r, 200)
        for k in ("roomId", "peerId", "signalingToken", "room", "peers", "iceServers",
                  "heartbeatIntervalSeconds"):
            self.assertIn(k, j1)
        self.assertEqual(j1["roomId"], room)
        self.assertId(j1["peerId"], "peerId")
        self.assertNotEqual(j1["peerId"], B.peer_id)
        self.assertEqual(j1["peers"], [self.peer_obj(B)])
        self.assertMetadata(j1["room"], room_id=room, count=2, custom_name="Alice's room")
        self.assertEqual(j1["heartbeatIntervalSeconds"], 30)
        self.assertIceServers(j1["iceServers"])
        V1 = Peer(srv, j1, v1sub, v1name, v1tok)

        # the broadcaster is asked to offer to the newcomer (mesh), nothing else
        ev = self.events(B)
        self.assertEqual(len(ev), 1, ev)
        self.assertEnvelope(ev[0], "offer-request", room, None, B.peer_id, peer=self.peer_obj(V1))
        self.assertEqual(self.events(V1), [])

        # offer with `to`
        sdp_offer = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
        r = B.offer(sdp_offer, to=V1.peer_id)
        o = self.assertJson(r, 202)
        self.assertEqual(set(o), {"id"})
        self.assertId(o["id"])
        r = B.get_offer()   # not addressed to the broadcaster
        self.assertStatus(r, 204)
        r = V1.get_offer()
        off = self.assertJson(r, 200)
        self.assertEnvelope(off, "offer", room, B.peer_id, V1.peer_id, sdp=sdp_offer, id=o["id"])
        r = V1.get_offer()
        self.assertStatus(r, 204)
        self.assertEqual(r.body, b"")

        # answer without `to`: goes to the sender of the offer
        sdp_answer = "v=0\r\no=bob 2 2 IN IP4 127.0.0.1\r\ns=-\r\n"
        r = V1.answer(sdp_answer)
        a = self.assertJson(r, 202)
        self.assertId(a["id"])
        self.assertStatus(V1.get_answer(), 204)
        r = B.get_answer()
        ans = self.assertJson(r, 200)
        self.assertEnvelope(ans, "answer", room, V1.peer_id, B.peer_id, sdp=sdp_answer, id=a["id"])
        self.assertStatus(B.get_answer(), 204)

        # candidates both ways, incl. end-of-candidates, passed through unchanged
        cand_obj = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",
                    "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}
        cand_str = "candidate:2 1 udp 1686052607 198.51.100.9 40000 typ srflx raddr 0.0.0.0 rport 0"
        ids = []
        for sender, to, cand in ((B, V1, cand_obj), (B, V1, None), (V1, B, cand_str), (V1, B, None)):
            r = sender.candidate(to.peer_id, cand)
            ids.append(self.assertJson(r, 202)["id"])
            self.assertId(ids[-1])
        self.assertEqual(len(set(ids)), 4)
        ev = self.events(V1)
        self.assertEqual(len(ev), 2, ev)   # the offer was consumed by GET offer: not repeated
        self.assertEnvelope(ev[0], "candidate", room, B.peer_id, V1.peer_id, candidate=cand_obj, id=ids[0])
        self.assertEnvelope(ev[1], "candidate", room, B.peer_id, V1.peer_id, candidate=None, id=ids[1])
        ev = self.events(B)
        self.assertEqual(len(ev), 2, ev)
        self.assertEnvelope(ev[0], "candidate", room, V1.peer_id, B.peer_id, candidate=cand_str, id=ids[2])
        self.assertEnvelope(ev[1], "candidate", room, V1.peer_id, B.peer_id, candidate=None, id=ids[3])
        self.assertEqual(self.events(B), [])
        self.assertEqual(self.events(V1), [])

        # join by broadcasterName: mesh asks both existing peers to offer
        v2sub = uniq("carol")
        v2tok = mint_token(v2sub, "Carol")
        r = req(srv, "POST", "/signaling/join-room", body={"broadcasterName": bname}, token=v2tok)
        j2 = self.assertJson(r, 200)
        self.assertEqual(j2["roomId"], room)
        self.assertEqual(j2["peers"], [self.peer_obj(B), self.peer_obj(V1)])
        self.assertEqual(j2["room"]["participantCount"], 3)
        V2 = Peer(srv, j2, v2sub, "Carol", v2tok)
        for p in (B, V1):
            ev = self.events(p)
            self.assertEqual(len(ev), 1, ev)
            self.assertEnvelope(ev[0], "offer-request", room, None, p.peer_id, peer=self.peer_obj(V2))
        self.assertEqual(self.events(V2), [])

        # heartbeat: fields and a fresh token that works
        old_tok = V1.token
        t_hb = time.time()
        r = req(srv, "POST", "/signaling/heartbeat", body={"roomId": room}, token=old_tok)
        hb = self.assertJson(r, 200)
        for k in ("roomId", "participantCount", "expiresAt", "signalingToken"):
            self.assertIn(k, hb)
        self.assertEqual(hb["roomId"], room)
        self.assertEqual(hb["participantCount"], 3)
        exp = self.assertIso(hb["expiresAt"], "expiresAt")
        self.assertGreater(exp, t_hb + 80, "expiresAt should be ~now+90 s: %s" % hb["expiresAt"])
        self.assertLess(exp, t_hb + 100, "expiresAt should be ~now+90 s: %s" % hb["expiresAt"])
        self.assertIsInstance(hb["signalingToken"], str)
        V1.token = hb["signalingToken"]
        self.assertEqual(self.events(V1), [])
        r = req(srv, "GET", "/signaling/rooms/" + room)
        self.assertEqual(self.assertJson(r, 200)["participantCount"], 3)

        # the joiner leaves: 204, the others get peer-left, its token is refused
        r = V1.leave()
        self.assertStatus(r, 204)
        self.assertEqual(r.body, b"")
        for p in (B, V2):
            ev = self.events(p)
            self.assertEqual(len(ev), 1, ev)
            self.assertEnvelope(ev[0], "peer-left", room, None, p.peer_id, peer=self.peer_obj(V1))
        self.assertError(V1.events(), 403, "forbidden")
        self.assertError(V1.offer(to=B.peer_id), 403, "forbidden")
        r = req(srv, "GET", "/signaling/rooms/" + room)
        self.assertEqual(self.assertJson(r, 200)["participantCount"], 2)

        # the others leave; the last one removes the room
        self.assertStatus(V2.leave(), 204)
        ev = self.events(B)
        self.assertEqual([e["type"] for e in ev], ["peer-left"], ev)
        self.assertStatus(B.leave(), 204)
        self.assertError(req(srv, "GET", "/signaling/rooms/" + room), 404, "not_found")
        lst = self.assertJson(req(srv, "GET", "/signaling/rooms"), 200)
        self.assertEqual(lst["rooms"], [])
        self.assertIsNone(lst["nextCursor"])
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": room}, token=mint_token(uniq("d")))
        self.assertError(r, 404, "not_found")
        r = req(srv, "POST", "/signaling/join-room", body={"broadcasterName": bname},
                token=mint_token(uniq("d")))
        self.assertError(r, 404, "not_found")
        r = B.events()
        self.assertIn(r.status, (403, 404), r)

        # and the broadcaster may create a new room: 201 with a new id
        r = req(srv, "POST", "/signaling/create-room", body={}, token=btok)
        c3 = self.assertJson(r, 201)
        self.assertNotEqual(c3["roomId"], room)
        self.assertMetadata(c3["room"], room_id=c3["roomId"], count=1, custom_name=None)

    def test_open_offer_consumed_once(self):
        srv = self.server()
        B = Peer.create(srv, name="Bee")
        V1 = Peer.join(srv, B.room_id, name="V1")
        V2 = Peer.join(srv, B.room_id, name="V2")
        r = B.offer("v=0\r\nold\r\n")
        first = self.assertJson(r, 202)["id"]
        r = B.offer("v=0\r\nnew\r\n")      # newer open offer replaces the older
        newer = self.assertJson(r, 202)["id"]
        self.assertNotEqual(first, newer)
        self.assertStatus(B.get_offer(), 204)   # not to its own sender
        r = V1.get_offer()
        off = self.assertJson(r, 200)
        self.assertEnvelope(off, "offer", B.room_id, B.peer_id, None, sdp="v=0\r\nnew\r\n", id=newer)
        self.assertStatus(V2.get_offer(), 204)
        self.assertStatus(V1.get_offer(), 204)
        # the open offer's sender is the default `to` of the answer
        r = V1.answer("v=0\r\nans\r\n")
        self.assertJson(r, 202)
        ans = self.assertJson(B.get_answer(), 200)
        self.assertEnvelope(ans, "answer", B.room_id, V1.peer_id, B.peer_id, sdp="v=0\r\nans\r\n")
        self.assertStatus(V2.get_answer(), 204)

    def test_answer_without_known_offer_needs_to(self):
        srv = self.server()
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id)
        self.assertError(V.answer("v=0\r\n"), 400, "invalid_request")
        self.assertIn("to", V.answer("v=0\r\n").json()["error"]["message"])
        self.assertJson(V.answer("v=0\r\n", to=B.peer_id), 202)

    def test_offer_to_validation(self):
        srv = self.server()
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id)
        self.assertError(B.offer(to=B.peer_id), 400, "invalid_request")
        other = Peer.create(srv)          # a peer of another room
        self.assertError(B.offer(to=other.peer_id), 404, "not_found")
        self.assertError(B.offer(sdp=""), 400, "invalid_request")
        self.assertError(B.candidate(other.peer_id, None), 404, "not_found")
        r = req(srv, "POST", "/signaling/candidate", body={"roomId": B.room_id, "candidate": None},
                token=B.token)
        self.assertError(r, 400, "invalid_request")
        # nothing was delivered by the refused calls
        self.assertEqual(self.events(V), [])


class TestOrdering(FlowAsserts):
    def test_events_in_order_and_capped_at_100(self):
        srv = self.server(PARLEY_RL_SIGNAL="0", PARLEY_RL_POLL="0")
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id)
        # Three senders take turns: one sender may hold at most 64 envelopes of an inbox.
        W = Peer.join(srv, B.room_id)
        X = Peer.join(srv, B.room_id)
        self.assertEqual(len(self.events(V)), 2)  # peer-joined for W and X
        senders = (B, W, X)
        sent = []
        for i in range(130):
            r = senders[i % 3].candidate(
                V.peer_id, {"candidate": "candidate:%d 1 udp 1 192.0.2.1 %d typ host" % (i, 1000 + i),
                            "sdpMid": "0", "sdpMLineIndex": 0})
            sent.append(self.assertJson(r, 202)["id"])
        first = self.events(V)
        self.assertEqual(len(first), 100)
        second = self.events(V)
        self.assertEqual(len(second), 30)
        got = first + second
        self.assertEqual([e["id"] for e in got], sent, "envelopes out of order")
        self.assertEqual([e["candidate"]["candidate"].split()[0] for e in got],
                         ["candidate:%d" % i for i in range(130)])
        self.assertEqual(self.events(V), [])

    def test_mixed_types_in_order(self):
        srv = self.server()
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id)
        self.events(B)
        ids = [self.assertJson(B.offer("v=0\r\n1\r\n", to=V.peer_id), 202)["id"],
               self.assertJson(B.candidate(V.peer_id, "c1"), 202)["id"],
               self.assertJson(B.answer("v=0\r\n2\r\n", to=V.peer_id), 202)["id"],
               self.assertJson(B.candidate(V.peer_id, None), 202)["id"]]
        ev = self.events(V)
        self.assertEqual([e["id"] for e in ev], ids)
        self.assertEqual([e["type"] for e in ev], ["offer", "candidate", "answer", "candidate"])
        self.assertEqual(ev[0]["sdp"], "v=0\r\n1\r\n")
        # consumed by GET events: GET offer/answer have nothing left
        self.assertStatus(V.get_offer(), 204)
        self.assertStatus(V.get_answer(), 204)


class TestValidation(FlowAsserts):
    def test_create_room_fields(self):
        srv = self.server(PARLEY_RL_CREATE_ROOM="0")
        tok = mint_token(uniq("val"))
        for body, field in (({"maxPeers": 1}, "maxPeers"), ({"maxPeers": 10001}, "maxPeers"),
                            ({"maxPeers": "16"}, "maxPeers"), ({"maxPeers": 2.5}, "maxPeers"),
                            ({"topology": "ring"}, "topology"), ({"isPublic": "yes"}, "isPublic"),
                            ({"customName": "x" * 65}, "customName"), ({"customName": 5}, "customName")):
            with self.subTest(body=body):
                r = req(srv, "POST", "/signaling/create-room", body=body, token=tok)
                err = self.assertError(r, 400, "invalid_request")
                self.assertTrue(err["message"].startswith(field), err)
        # the limits themselves are fine
        r = req(srv, "POST", "/signaling/create-room", body={"customName": "\u00e9" * 32, "maxPeers": 2},
                token=tok)
        m = self.assertJson(r, 201)["room"]
        self.assertEqual(m["customName"], "\u00e9" * 32)   # 64 bytes of UTF-8
        self.assertEqual(m["maxPeers"], 2)
        r = req(srv, "POST", "/signaling/create-room", body={"topology": "star", "maxPeers": 10000},
                token=mint_token(uniq("val")))
        self.assertEqual(self.assertJson(r, 201)["room"]["maxPeers"], 10000)

    def test_join_room_fields(self):
        srv = self.server()
        B = Peer.create(srv, name="Joinable")
        tok = mint_token(uniq())
        for body in ({}, {"roomId": B.room_id, "broadcasterName": "Joinable"}, {"roomId": 7},
                     {"roomId": "short"}, {"broadcasterName": None}):
            with self.subTest(body=body):
                r = req(srv, "POST", "/signaling/join-room", body=body, token=tok)
                self.assertError(r, 400, "invalid_request")
        self.assertEqual(B.data["room"]["participantCount"], 1)
        self.assertEqual(self.events(B), [], "a refused join must not notify anyone")


class TestRooms(FlowAsserts):
    def test_private_room(self):
        srv = self.server()
        B = Peer.create(srv, name="Priv", isPublic=False, customName="secret")
        self.assertMetadata(B.data["room"], room_id=B.room_id, public=False, custom_name="secret", count=1)
        pub = Peer.create(srv, name="Pub")
        lst = self.assertJson(req(srv, "GET", "/signaling/rooms"), 200)
        self.assertEqual([m["roomId"] for m in lst["rooms"]], [pub.room_id])
        self.assertError(req(srv, "GET", "/signaling/rooms/" + B.room_id), 404, "not_found")
        # another room's signaling token does not reveal it either
        r = req(srv, "GET", "/signaling/rooms/" + B.room_id, token=pub.token)
        self.assertIn(r.status, (403, 404), r)
        m = self.assertJson(B.get_room(token=True), 200)
        self.assertMetadata(m, room_id=B.room_id, public=False, custom_name="secret", count=1)

    def test_pagination(self):
        srv = self.server()
        created = []
        for i in range(25):
            created.append(Peer.create(srv, name="Streamer %d" % i).room_id)
            time.sleep(0.003)   # distinct createdAt (ms) so that "newest first" is one order
        self.assertEqual(len(set(created)), 25)
        seen, pages, cursor = [], [], None
        for _ in range(10):   # bounded: 3 pages expected
            path = "/signaling/rooms?limit=10" + ("&cursor=" + cursor if cursor else "")
            page = self.assertJson(req(srv, "GET", path), 200)
            pages.append(len(page["rooms"]))
            for m in page["rooms"]:
                self.assertMetadata(m, count=1)
            seen.extend(m["roomId"] for m in page["rooms"])
            cursor = page["nextCursor"]
            if cursor is None:
                break
            self.assertIsInstance(cursor, str)
        self.assertEqual(pages, [10, 10, 5])
        self.assertEqual(len(seen), len(set(seen)), "duplicates across pages")
        self.assertEqual(set(seen), set(created))
        self.assertEqual(seen, list(reversed(created)), "newest first")
        # default limit 20
        page = self.assertJson(req(srv, "GET", "/signaling/rooms"), 200)
        self.assertEqual(len(page["rooms"]), 20)
        self.assertIsInstance(page["nextCursor"], str)
        page = self.assertJson(req(srv, "GET", "/signaling/rooms?limit=100"), 200)
        self.assertEqual(len(page["rooms"]), 25)
        self.assertIsNone(page["nextCursor"])
        page = self.assertJson(req(srv, "GET", "/signaling/rooms?limit=1"), 200)
        self.assertEqual(len(page["rooms"]), 1)

    def test_limit_out_of_range(self):
        srv = self.server()
        for q in ("limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5"):
            self.assertError(req(srv, "GET", "/signaling/rooms?" + q), 400, "invalid_request")

    def test_join_full_room(self):
        srv = self.server()
        B = Peer.create(srv, maxPeers=2)
        self.assertEqual(B.data["room"]["maxPeers"], 2)
        V = Peer.join(srv, B.room_id)
        self.assertEqual(V.data["room"]["participantCount"], 2)
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id}, token=mint_token(uniq()))
        self.assertError(r, 409, "conflict")
        self.assertEqual(r.json()["error"]["message"], "room is full")
        # after a leave there is room again
        self.assertStatus(V.leave(), 204)
        Peer.join(srv, B.room_id)

    def test_join_not_found(self):
        srv = self.server()
        tok = mint_token(uniq())
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": "A" * 22}, token=tok)
        self.assertError(r, 404, "not_found")
        r = req(srv, "POST", "/signaling/join-room", body={"broadcasterName": "nobody here"}, token=tok)
        self.assertError(r, 404, "not_found")
        self.assertError(req(srv, "GET", "/signaling/rooms/" + "A" * 22), 404, "not_found")


class TestGuestsAndTurn(FlowAsserts):
    def test_guest_join_allowed(self):
        srv = self.server(PARLEY_ALLOW_GUESTS="true")
        B = Peer.create(srv, name="Host")
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id})
        j = self.assertJson(r, 200)
        self.assertId(j["peerId"])
        self.assertEqual(j["peers"], [self.peer_obj(B)])
        ev = self.events(B)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0]["type"], "offer-request")
        guest = ev[0]["peer"]
        self.assertEqual(guest["peerId"], j["peerId"])
        self.assertIsInstance(guest["userId"], str)
        self.assertTrue(guest["userId"])
        self.assertNotEqual(guest["userId"], B.user_id)
        G = Peer(srv, j)
        self.assertJson(G.offer(to=B.peer_id), 202)
        # guests cannot create rooms
        self.assertError(req(srv, "POST", "/signaling/create-room", body={}), 401, "unauthorized")

    def test_guest_join_refused_by_default(self):
        srv = self.server()
        B = Peer.create(srv)
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id})
        self.assertError(r, 401, "unauthorized")
        self.assertTrue(r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers)
        self.assertIn('realm="parley"', r.headers.get("WWW-Authenticate", ""))

    def test_turn_credentials(self):
        secret = "turn-shared-secret-for-tests"
        turn_urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
        srv = self.server(PARLEY_STUN_URLS="stun:stun.example.org:3478",
                          PARLEY_TURN_URLS=",".join(turn_urls), PARLEY_TURN_SECRET=secret)
        for data, user in self._both(srv):
            ice = data["iceServers"]
            self.assertEqual(len(ice), 2, ice)
            self.assertEqual(ice[0]["urls"], ["stun:stun.example.org:3478"])
            turn = ice[1]
            self.assertEqual(turn["urls"], turn_urls)
            expiry_s, _, uid = turn["username"].partition(":")
            self.assertEqual(uid, user)
            expiry = int(expiry_s)
            self.assertLess(abs(expiry - (time.time() + 86400)), 120, turn)
            want = base64.b64encode(hmac.new(secret.encode(), turn["username"].encode(),
                                             hashlib.sha1).digest()).decode()
            self.assertEqual(turn["credential"], want)

    def test_turn_ttl(self):
        srv = self.server(PARLEY_TURN_URLS="turn:t.example:3478", PARLEY_TURN_SECRET="s",
                          PARLEY_TURN_TTL="600")
        B = Peer.create(srv)
        turn = [s for s in B.data["iceServers"] if "username" in s]
        self.assertEqual(len(turn), 1, B.data["iceServers"])
        self.assertLess(abs(int(turn[0]["username"].split(":")[0]) - (time.time() + 600)), 60)

    def test_no_turn_without_secret(self):
        # Either refused at start (naming the missing key) or served without a TURN entry.
        try:
            srv = self.server(PARLEY_TURN_URLS="turn:t.example:3478")
        except ServerStartError as e:
            self.assertIn("PARLEY_TURN_SECRET", str(e))
            return
        B = Peer.create(srv)
        self.assertFalse([s for s in B.data["iceServers"] if "credential" in s], B.data["iceServers"])

    def _both(self, srv):
        B = Peer.create(srv, name="T")
        V = Peer.join(srv, B.room_id)
        return [(B.data, B.user_id), (V.data, V.user_id)]


class TestTokenScope(FlowAsserts):
    def test_token_of_room_a_on_room_b(self):
        srv = self.server()
        A = Peer.create(srv)
        Bp = Peer.create(srv)
        VB = Peer.join(srv, Bp.room_id)
        for path in ("/signaling/offer/", "/signaling/answer/", "/signaling/events/", ):
            r = req(srv, "GET", path + Bp.room_id, token=A.token)
            self.assertError(r, 403, "forbidden")
        for path, extra in (("/signaling/offer", {"sdp": "v=0", "to": VB.peer_id}),
                            ("/signaling/answer", {"sdp": "v=0", "to": VB.peer_id}),
                            ("/signaling/candidate", {"to": VB.peer_id, "candidate": None}),
                            ("/signaling/heartbeat", {}),
                            ("/signaling/leave-room", {})):
            body = dict(extra, roomId=Bp.room_id)
            r = req(srv, "POST", path, body=body, token=A.token)
            self.assertError(r, 403, "forbidden")
        # nothing reached room B, and A is still fine in its own room
        self.assertEqual(self.events(VB), [])
        self.assertEqual([e["type"] for e in self.events(Bp)], ["offer-request"])
        self.assertJson(A.heartbeat(), 200)

    def test_user_token_on_signaling_route(self):
        srv = self.server()
        B = Peer.create(srv)
        r = req(srv, "GET", "/signaling/events/" + B.room_id, token=B.user_token)
        self.assertError(r, 401, "unauthorized")
        self.assertIn("Bearer", r.headers.get("WWW-Authenticate", ""))
        self.assertIn('error="invalid_token"', r.headers.get("WWW-Authenticate", ""))
        r = req(srv, "POST", "/signaling/offer", body={"roomId": B.room_id, "sdp": "v=0"},
                token=B.user_token)
        self.assertError(r, 401, "unauthorized")
        # and a signaling token on a user route
        r = req(srv, "POST", "/signaling/create-room", body={}, token=B.token)
        self.assertError(r, 401, "unauthorized")
        r = req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id}, token=B.token)
        self.assertError(r, 401, "unauthorized")
        # no token at all
        r = req(srv, "GET", "/signaling/events/" + B.room_id)
        self.assertError(r, 401, "unauthorized")
        self.assertEqual(r.headers.get("WWW-Authenticate"), 'Bearer realm="parley"')

    def test_old_token_after_leave(self):
        srv = self.server()
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id)
        tok = V.token
        self.assertStatus(V.leave(), 204)
        for method, path, body in (("GET", "/signaling/events/" + B.room_id, None),
                                   ("GET", "/signaling/offer/" + B.room_id, None),
                                   ("POST", "/signaling/heartbeat", {"roomId": B.room_id}),
                                   ("POST", "/signaling/offer", {"roomId": B.room_id, "sdp": "v=0",
                                                                 "to": B.peer_id}),
                                   ("POST", "/signaling/leave-room", {"roomId": B.room_id})):
            r = req(srv, method, path, body=body, token=tok)
            self.assertError(r, 403, "forbidden")
        # a second membership of the same user is a different peer and works
        V2 = Peer.join(srv, B.room_id, sub=V.user_id)
        self.assertNotEqual(V2.peer_id, V.peer_id)
        self.assertJson(V2.heartbeat(), 200)


if __name__ == "__main__":
    unittest.main()
