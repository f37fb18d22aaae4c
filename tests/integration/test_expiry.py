"""Lifetimes: undelivered signals (PARLEY_SIGNAL_TTL), members without heartbeats
(PARLEY_MEMBER_TTL), rooms without heartbeats (PARLEY_ROOM_TTL)."""

import json
import time
import unittest

from harness import ParleyTestCase, Peer, b64url_decode, metrics, mint_token, req, scaled, uniq

SHORT = {"PARLEY_SIGNAL_TTL": "1", "PARLEY_MEMBER_TTL": "2", "PARLEY_ROOM_TTL": "3"}


def listed(srv, room_id):
    r = req(srv, "GET", "/signaling/rooms?limit=100")
    assert r.status == 200, r
    return room_id in [m["roomId"] for m in r.json()["rooms"]]


class TestExpiry(ParleyTestCase):
    def test_short_ttls_accepted(self):
        srv = self.server(**SHORT)
        B = Peer.create(srv)
        # heartbeatIntervalSeconds = max(1, MEMBER_TTL / 3)
        self.assertEqual(B.data["heartbeatIntervalSeconds"], 1)
        r = B.heartbeat()
        self.assertStatus(r, 200)
        exp = self.assertIso(r.json()["expiresAt"])
        self.assertGreater(exp, time.time() + 0.5)
        self.assertLess(exp, time.time() + 4)

    def test_member_ttl_sets_heartbeat_interval(self):
        srv = self.server(PARLEY_MEMBER_TTL="12")
        self.assertEqual(Peer.create(srv).data["heartbeatIntervalSeconds"], 4)

    def test_unfetched_offer_expires(self):
        srv = self.server(**SHORT)
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id)
        self.assertStatus(B.offer("v=0\r\nstale\r\n", to=V.peer_id), 202)
        self.assertStatus(B.candidate(V.peer_id, None), 202)
        self.assertEqual(metrics(srv).value("parley_signals_queued"), 3)  # + offer-request to B
        time.sleep(1.1)
        self.assertStatus(B.heartbeat(), 200)   # keep both members alive (member TTL 2 s)
        self.assertStatus(V.heartbeat(), 200)
        time.sleep(1.1)
        self.assertStatus(V.get_offer(), 204)
        self.assertEqual(V.event_list(), [])
        self.assertEqual(B.event_list(), [])    # its offer-request expired as well
        m = metrics(srv)
        self.assertGreaterEqual(m.value("parley_signals_expired_total"), 3)
        self.assertEqual(m.value("parley_signals_queued"), 0)
        # control: a fresh offer is delivered
        self.assertStatus(B.offer("v=0\r\nfresh\r\n", to=V.peer_id), 202)
        r = V.get_offer()
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["sdp"], "v=0\r\nfresh\r\n")

    def test_silent_member_removed(self):
        srv = self.server(**SHORT)
        B = Peer.create(srv)
        V = Peer.join(srv, B.room_id, name="Quiet")
        t_join = time.monotonic()
        self.assertStatus(B.events(), 200)
        got = None
        deadline = t_join + 2 + scaled(4)
        while time.monotonic() < deadline:  # B heartbeats and polls; V stays silent
            self.assertStatus(B.heartbeat(), 200)
            r = B.events(wait=1)
            self.assertStatus(r, 200)
            ev = r.json()["events"]
            if ev:
                got = ev
                break
        self.assertIsNotNone(got, "no peer-left within %.1f s" % (deadline - t_join))
        elapsed = time.monotonic() - t_join
        self.assertGreaterEqual(elapsed, 1.5, "member removed too early (%.2f s)" % elapsed)
        self.assertEqual([e["type"] for e in got], ["peer-left"], got)
        self.assertEqual(got[0]["peer"], {"peerId": V.peer_id, "userId": V.user_id, "name": "Quiet"})
        self.assertIsNone(got[0]["from"])
        self.assertEqual(got[0]["to"], B.peer_id)
        r = B.heartbeat()
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["participantCount"], 1)
        r = req(srv, "GET", "/signaling/rooms/" + B.room_id)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["participantCount"], 1)
        self.assertError(V.events(), 403, "forbidden")
        self.assertError(B.offer(to=V.peer_id), 404, "not_found")

    def test_room_without_heartbeats_disappears(self):
        srv = self.server(**SHORT)
        B = Peer.create(srv, name="Gone " + uniq())
        t0 = time.monotonic()
        self.assertTrue(listed(srv, B.room_id))
        self.assertStatus(req(srv, "GET", "/signaling/rooms/" + B.room_id), 200)
        gone_at = None
        deadline = t0 + 3 + scaled(4)
        while time.monotonic() < deadline:
            if req(srv, "GET", "/signaling/rooms/" + B.room_id).status == 404:
                gone_at = time.monotonic() - t0
                break
            time.sleep(0.1)
        self.assertIsNotNone(gone_at, "room still there after %.1f s" % (deadline - t0))
        self.assertGreaterEqual(gone_at, 1.5, "room removed too early (%.2f s)" % gone_at)
        self.assertFalse(listed(srv, B.room_id))
        tok = mint_token(uniq())
        self.assertError(req(srv, "POST", "/signaling/join-room", body={"roomId": B.room_id}, token=tok),
                         404, "not_found")
        self.assertError(req(srv, "POST", "/signaling/join-room",
                             body={"broadcasterName": B.data["room"]["broadcasterName"]}, token=tok),
                         404, "not_found")
        self.assertEqual(metrics(srv).value("parley_rooms"), 0)
        self.assertEqual(metrics(srv).value("parley_members"), 0)
        # the broadcaster can create a new room
        r = req(srv, "POST", "/signaling/create-room", body={}, token=B.user_token)
        self.assertStatus(r, 201)
        self.assertNotEqual(r.json()["roomId"], B.room_id)

    def test_heartbeats_keep_room_alive(self):
        srv = self.server(**SHORT)
        B = Peer.create(srv, name="Bea")
        first = B.token
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 5.0:   # past ROOM_TTL (3 s) and MEMBER_TTL (2 s)
            r = B.heartbeat()
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["participantCount"], 1)
            n += 1
            time.sleep(0.4)
        self.assertGreaterEqual(n, 5)
        # Each heartbeat's token names the same member as the one create handed out.
        self.assertEqual(identity(B.token), identity(first))
        self.assertEqual(identity(first)["name"], "Bea")
        self.assertStatus(req(srv, "GET", "/signaling/rooms/" + B.room_id), 200)
        self.assertTrue(listed(srv, B.room_id))
        V = Peer.join(srv, B.room_id)
        self.assertEqual(V.data["room"]["participantCount"], 2)
        self.assertStatus(B.heartbeat(), 200)
        self.assertEqual([e["type"] for e in B.event_list()], ["offer-request"])


def identity(token):
    """A signaling token's claims without its times: whom it was issued for."""
    claims = json.loads(b64url_decode(token.split(".")[1]))
    return {k: v for k, v in claims.items() if k not in ("exp", "iat")}


if __name__ == "__main__":
    unittest.main()
