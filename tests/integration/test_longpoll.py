"""Long-polling of GET offer/answer/events (`?wait=S`) and how it ends at shutdown."""

import signal
import time
import unittest

from harness import ParleyTestCase, Peer, metrics, run_in_thread, scaled, wait_until

# How long after the long-poll starts the other side posts.
POST_DELAY = 0.3


class LongPollCase(ParleyTestCase):
    def room(self, srv, viewers=1, **fields):
        B = Peer.create(srv, **fields)
        vs = [Peer.join(srv, B.room_id) for _ in range(viewers)]
        # drain the join notifications
        for p in [B] + vs:
            self.assertStatus(p.events(), 200)
        return B, vs

    def join_thread(self, t, box, timeout):
        t.join(timeout)
        self.assertFalse(t.is_alive(), "long-poll did not return within %.1f s" % timeout)
        if "error" in box:
            raise box["error"]
        return box["result"]


class TestLongPoll(LongPollCase):
    def test_offer_wakes_waiting_poll(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        t, box = run_in_thread(V.get_offer, wait=5)
        time.sleep(POST_DELAY)
        self.assertStatus(B.offer("v=0\r\nwake\r\n", to=V.peer_id), 202)
        r = self.join_thread(t, box, 6)
        self.assertStatus(r, 200)
        off = r.json()
        self.assertEqual(off["type"], "offer")
        self.assertEqual(off["sdp"], "v=0\r\nwake\r\n")
        self.assertEqual(off["from"], B.peer_id)
        self.assertGreaterEqual(r.elapsed, POST_DELAY - 0.01)
        self.assertLess(r.elapsed, POST_DELAY + scaled(0.7), "poll answered %.3f s after start" % r.elapsed)
        self.assertStatus(V.get_offer(), 204)   # consumed by the long-poll

    def test_answer_wakes_waiting_poll(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        t, box = run_in_thread(B.get_answer, wait=5)
        time.sleep(POST_DELAY)
        self.assertStatus(V.answer("v=0\r\nans\r\n", to=B.peer_id), 202)
        r = self.join_thread(t, box, 6)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["sdp"], "v=0\r\nans\r\n")
        self.assertGreaterEqual(r.elapsed, POST_DELAY - 0.01)
        self.assertLess(r.elapsed, POST_DELAY + scaled(0.7))

    def test_events_wake_on_join(self):
        srv = self.server()
        B, _ = self.room(srv, viewers=0)
        t, box = run_in_thread(B.events, wait=5)
        time.sleep(POST_DELAY)
        V = Peer.join(srv, B.room_id)
        r = self.join_thread(t, box, 6)
        self.assertStatus(r, 200)
        ev = r.json()["events"]
        self.assertEqual([e["type"] for e in ev], ["offer-request"])
        self.assertEqual(ev[0]["peer"]["peerId"], V.peer_id)
        self.assertLess(r.elapsed, POST_DELAY + scaled(0.7))

    def test_events_wait_times_out_empty(self):
        srv = self.server()
        B, _ = self.room(srv, viewers=0)
        r = B.events(wait=2)
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {"events": []})
        self.assertGreaterEqual(r.elapsed, 1.8)
        self.assertLessEqual(r.elapsed, 4.0 + scaled(1.0) - 1.0)

    def test_offer_wait_times_out_204(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        r = V.get_offer(wait=1)
        self.assertStatus(r, 204)
        self.assertEqual(r.body, b"")
        self.assertGreaterEqual(r.elapsed, 0.8)
        self.assertLessEqual(r.elapsed, 3.0 + scaled(1.0) - 1.0)

    def test_wait_zero_is_immediate(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        r = V.get_offer(wait=0)
        self.assertStatus(r, 204)
        self.assertLess(r.elapsed, scaled(0.5))
        r = V.get_answer(wait=0)
        self.assertStatus(r, 204)
        self.assertLess(r.elapsed, scaled(0.5))
        r = V.events(wait=0)
        self.assertStatus(r, 200)
        self.assertEqual(r.json(), {"events": []})
        self.assertLess(r.elapsed, scaled(0.5))

    def test_pending_answers_at_once(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        self.assertStatus(B.offer(to=V.peer_id), 202)
        r = V.get_offer(wait=10)
        self.assertStatus(r, 200)
        self.assertLess(r.elapsed, scaled(0.5))

    def test_wait_not_integer(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        for w in ("abc", "1.5", "5s", "0x10"):
            self.assertError(V.get_offer(wait=w), 400, "invalid_request")
            self.assertError(V.events(wait=w), 400, "invalid_request")

    def test_wait_large_is_clamped_not_refused(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        t, box = run_in_thread(V.get_offer, wait=999, timeout=40)
        time.sleep(0.2)
        self.assertStatus(B.offer("v=0\r\nclamped\r\n", to=V.peer_id), 202)
        r = self.join_thread(t, box, 10)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["sdp"], "v=0\r\nclamped\r\n")
        self.assertLess(r.elapsed, 0.2 + scaled(1.0))

    def test_two_polls_each_get_their_own(self):
        srv = self.server()
        B, (V1, V2) = self.room(srv, viewers=2)
        t1, b1 = run_in_thread(V1.get_offer, wait=5)
        t2, b2 = run_in_thread(V2.get_offer, wait=5)
        time.sleep(POST_DELAY)
        self.assertStatus(B.offer("v=0\r\nfor-v2\r\n", to=V2.peer_id), 202)
        self.assertStatus(B.offer("v=0\r\nfor-v1\r\n", to=V1.peer_id), 202)
        r1 = self.join_thread(t1, b1, 6)
        r2 = self.join_thread(t2, b2, 6)
        for r, p, sdp in ((r1, V1, "v=0\r\nfor-v1\r\n"), (r2, V2, "v=0\r\nfor-v2\r\n")):
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["to"], p.peer_id)
            self.assertEqual(r.json()["sdp"], sdp)
            self.assertLess(r.elapsed, POST_DELAY + scaled(1.0))
        self.assertStatus(V1.get_offer(), 204)
        self.assertStatus(V2.get_offer(), 204)

    def test_poll_not_woken_by_other_peers_signal(self):
        srv = self.server()
        B, (V1, V2) = self.room(srv, viewers=2)
        t, box = run_in_thread(V1.get_offer, wait=2)
        time.sleep(POST_DELAY)
        self.assertStatus(B.offer(to=V2.peer_id), 202)
        r = self.join_thread(t, box, 6)
        self.assertStatus(r, 204)
        self.assertGreaterEqual(r.elapsed, 1.8)
        self.assertStatus(V2.get_offer(), 200)

    def test_longpolls_waiting_gauge(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        self.assertEqual(metrics(srv).value("parley_longpolls_waiting"), 0)
        t, box = run_in_thread(V.events, wait=10)
        wait_until(lambda: metrics(srv).value("parley_longpolls_waiting") == 1, scaled(3))
        self.assertStatus(B.candidate(V.peer_id, None), 202)
        r = self.join_thread(t, box, 6)
        self.assertStatus(r, 200)
        self.assertEqual([e["type"] for e in r.json()["events"]], ["candidate"])
        wait_until(lambda: metrics(srv).value("parley_longpolls_waiting") == 0, scaled(3))


class TestShutdownDuringPoll(LongPollCase):
    def test_sigterm_answers_waiting_polls(self):
        srv = self.server()
        B, (V,) = self.room(srv)
        t1, b1 = run_in_thread(V.get_offer, wait=20, timeout=30)
        t2, b2 = run_in_thread(B.events, wait=20, timeout=30)
        time.sleep(scaled(0.5))
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # both polls are answered quickly (well before their 20 s deadline)
        r1 = self.join_thread(t1, b1, scaled(2))
        r2 = self.join_thread(t2, b2, scaled(2))
        self.assertStatus(r1, 204)
        self.assertStatus(r2, 200)
        self.assertEqual(r2.json(), {"events": []})
        rc = srv.stop(timeout=5 + scaled(1))
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5.0 + scaled(1.0))


if __name__ == "__main__":
    unittest.main()
