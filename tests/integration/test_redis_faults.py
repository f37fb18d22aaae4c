"""Redis faults (issue 4, point 4): redis killed in the middle of traffic and restarted.

These tests always use the redis engine, whatever PARLEY_TEST_STORE says: each class owns a
redis-server on a fixed port (so it can be killed and started again on the same port) and
passes its URL to parleyd as PARLEY_STORE. A restarted redis has no persistence, so it comes
back empty ("lost its data").
"""

import json
import os
import signal
import shutil
import socket
import subprocess
import threading
import time
import unittest

from harness import (Peer, RedisServer, _redis_flush, check_error, free_port, mint_token, req,
                     needs, scaled, uniq, wait_until)
from wsclient import WsClosed, WsTestCase, websockets

SDP = "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\n"
BOUND = 2.0  # seconds any store-backed request may take while redis is down


class PortRedis(RedisServer):
    """A RedisServer that can be killed (SIGKILL) and started again on the same port."""

    def start_on(self, port, timeout=10.0):
        self.port = port
        self.url = "redis://127.0.0.1:%d/0" % port
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            inner = time.monotonic() + 3
            while time.monotonic() < inner and self.proc.poll() is None:
                try:
                    _redis_flush(self.url, timeout=1.0)
                    return self
                except (OSError, AssertionError):
                    time.sleep(0.05)
            self.stop()
            time.sleep(0.2)
        raise AssertionError("could not start redis-server on port %d" % port)

    def start(self, timeout=10.0):
        return self.start_on(free_port(), timeout)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


class HoldingProxy:
    """A loopback TCP proxy in front of redis that can hold the subscriber connections: it
    keeps their sockets open but stops forwarding bytes either way, as a NAT that forgot a
    flow or a host gone without a FIN or RST would. Connections made later pass again."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        self.only_subscribers = False  # new connections that are not subscribers are cut
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            conn = {"client": client, "upstream": upstream, "sub": False, "held": False}
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._pump, args=(conn, client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, upstream, client, False),
                             daemon=True).start()

    def _pump(self, conn, src, dst, upward):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if upward and b"SUBSCRIBE" in data.upper():
                conn["sub"] = True
            if upward and self.only_subscribers and not conn["sub"]:
                conn["held"] = True  # then cut below: a command connection may not pass
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if conn["held"]:
                continue  # swallowed: the connection looks open and silent
            try:
                dst.sendall(data)
            except OSError:
                return

    def cut_all(self):
        """Resets every connection made so far (the node sees both of its own drop)."""
        with self.lock:
            for c in self.conns:
                for sock in (c["client"], c["upstream"]):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self.conns = []

    def hold_subscribers(self):
        with self.lock:
            held = [c for c in self.conns if c["sub"] and not c["held"]]
            for c in held:
                c["held"] = True
        return len(held)

    def close(self):
        self.closed = True
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                for sock in (c["client"], c["upstream"]):
                    try:
                        sock.close()
                    except OSError:
                        pass


@needs(shutil.which("redis-server"), "redis-server not installed")
class RedisFaultTestCase(WsTestCase):
    redis = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.redis = PortRedis().start()

    @classmethod
    def tearDownClass(cls):
        if cls.redis is not None:
            cls.redis.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if self.redis.proc is None or self.redis.proc.poll() is not None:
            self.redis.start_on(self.redis.port)
        _redis_flush(self.redis.url)
        self.srv = self.server(PARLEY_STORE=self.redis.url, fresh_store=False,
                               PARLEY_NODE_ID="fault-node", PARLEY_RL_LIST="0",
                               PARLEY_RL_SIGNAL="0", PARLEY_RL_POLL="0")
        self.assertEqual(self.srv.env["PARLEY_STORE"], self.redis.url)
        self.wait_ready(200)

    def wait_ready(self, status, timeout=5):
        t0 = time.monotonic()
        wait_until(lambda: req(self.srv, "GET", "/readyz", timeout=5).status == status,
                   scaled(timeout), msg="/readyz never %d within %.1f s" % (status, timeout))
        return time.monotonic() - t0

    def assertUnavailable(self, r):
        check_error(r, 503, "store_unavailable")
        self.assertLess(r.elapsed, scaled(BOUND), r)

    def full_flow(self):
        """create, list, join, offer, long-poll, answer, poll: all on this node."""
        a = Peer.create(self.srv, name="A")
        r = req(self.srv, "GET", "/signaling/rooms/" + a.room_id)
        self.assertStatus(r, 200)
        b = Peer.join(self.srv, a.room_id, name="B")
        self.assertStatus(a.events(), 200)
        self.assertStatus(a.offer(SDP, to=b.peer_id), 202)
        r = b.get_offer(wait=2)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["sdp"], SDP)
        self.assertStatus(b.answer(SDP), 202)
        r = a.get_answer(wait=2)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["from"], b.peer_id)
        self.assertStatus(a.heartbeat(), 200)
        return a, b


class TestRedisDown(RedisFaultTestCase):

    def test_store_backed_requests_503_fast_health_stays_200(self):
        a, b = self.full_flow()
        user = mint_token(uniq("u"))
        self.redis.kill()
        dt = self.wait_ready(503, timeout=BOUND)
        self.assertLess(dt, scaled(BOUND))
        r = req(self.srv, "GET", "/readyz")
        self.assertEqual(r.json().get("status"), "unavailable", r)
        self.assertStatus(req(self.srv, "GET", "/healthz"), 200)
        calls = [
            lambda: req(self.srv, "POST", "/signaling/create-room", body={}, token=user, timeout=10),
            lambda: req(self.srv, "POST", "/signaling/join-room", body={"roomId": a.room_id},
                        token=user, timeout=10),
            lambda: req(self.srv, "GET", "/signaling/rooms", timeout=10),
            lambda: req(self.srv, "GET", "/signaling/rooms/" + a.room_id, timeout=10),
            lambda: a.offer(SDP, to=b.peer_id),
            lambda: a.answer(SDP, to=b.peer_id),
            lambda: a.candidate(b.peer_id, None),
            lambda: b.get_offer(timeout=10),
            lambda: b.events(timeout=10),
            lambda: b.events(wait=5, timeout=10),
            lambda: a.heartbeat(),
            lambda: b.leave(),
        ]
        for i, call in enumerate(calls):
            r = call()
            self.assertUnavailable(r)
        # Still alive and answering, over and over.
        for _ in range(20):
            self.assertUnavailable(req(self.srv, "GET", "/signaling/rooms", timeout=10))
        self.assertStatus(req(self.srv, "GET", "/healthz"), 200)
        self.assertStatus(req(self.srv, "GET", "/metrics"), 200)
        self.assertTrue(self.srv.alive())

    def test_frozen_redis_requests_fail_in_bounded_time(self):
        # A Redis that stops answering without closing (SIGSTOP) must not hang requests:
        # every command has a deadline, after which the request answers 503 and the node
        # turns unready until Redis answers again.
        a, b = self.full_flow()
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            # The first request waits out the 2 s command deadline...
            r = req(self.srv, "GET", "/signaling/rooms", timeout=10)
            check_error(r, 503, "store_unavailable")
            self.assertLess(r.elapsed, scaled(3.5), r)
            # ...after which the node knows: unready, and requests fail at once.
            self.wait_ready(503, timeout=4)
            self.assertUnavailable(a.offer(SDP, to=b.peer_id))
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        self.wait_ready(200, timeout=10)
        self.assertStatus(req(self.srv, "GET", "/signaling/rooms/" + a.room_id), 200)

    def test_traffic_while_redis_dies_never_hangs(self):
        a, b = self.full_flow()
        stop = threading.Event()
        results = []
        errors = []

        def worker(kind):
            while not stop.is_set():
                try:
                    if kind == 0:
                        r = a.offer(SDP, to=b.peer_id)
                    elif kind == 1:
                        r = b.events(wait=1, timeout=10)
                    else:
                        r = req(self.srv, "GET", "/signaling/rooms", timeout=10)
                    results.append((kind, r.status, r.error_code, r.elapsed))
                except (OSError, socket.timeout) as e:
                    errors.append((kind, repr(e)))

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in (0, 1, 2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        self.redis.kill()
        t_kill = time.monotonic()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(scaled(15))
            self.assertFalse(t.is_alive(), "a request hung after redis died")
        self.assertEqual(errors, [])
        self.assertTrue(results)
        for kind, status, code, elapsed in results:
            self.assertIn(status, (200, 202, 503) + ((429,) if kind == 0 else ()),
                          (kind, status, code))
            if status == 503:
                self.assertEqual(code, "store_unavailable")
            if status == 429:  # b's inbox full (rate limits are off)
                self.assertEqual(code, "rate_limited")
            limit = 1 + BOUND if kind == 1 else BOUND  # a long-poll may wait its 1 s
            self.assertLess(elapsed, scaled(limit), (kind, status, code, elapsed))
        self.assertIn(503, [s for _, s, _, _ in results])
        self.assertLess(time.monotonic() - t_kill, scaled(20))
        self.assertStatus(req(self.srv, "GET", "/healthz"), 200)

    def test_long_poll_in_flight_when_redis_dies_returns(self):
        a, b = self.full_flow()
        box = {}

        def poll():
            box["r"] = b.events(wait=10, timeout=20)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        time.sleep(0.5)
        t_kill = time.monotonic()
        self.redis.kill()
        t.join(scaled(15))
        self.assertFalse(t.is_alive(), "long-poll hung")
        r = box["r"]
        # Either the poll ends at its own deadline with nothing, or reports the outage.
        self.assertIn(r.status, (200, 503), r)
        if r.status == 503:
            check_error(r, 503, "store_unavailable")
        self.assertLess(time.monotonic() - t_kill, scaled(10 + BOUND))

    @needs(websockets is not None, "python3-websockets not importable")
    def test_open_websocket_stays_open(self):
        a, b = self.full_flow()
        wa = self.ws(a)
        wa.collect(quiet=0.3)
        self.redis.kill()
        self.wait_ready(503, timeout=BOUND)
        # A message that needs the store gets an error, not a close and not silence.
        t0 = time.monotonic()
        wa.send_json({"type": "offer", "to": b.peer_id, "sdp": SDP, "ref": 1})
        m, _ = wa.recv_until(lambda m: m.get("type") in ("error", "ack"), scaled(BOUND))
        self.assertLess(time.monotonic() - t0, scaled(BOUND))
        self.assertWsError(m, "store_unavailable", 1)
        wa.send_json({"type": "heartbeat", "ref": 2})
        m, _ = wa.recv_until(lambda m: m.get("type") in ("error", "heartbeat"), scaled(BOUND))
        self.assertWsError(m, "store_unavailable", 2)
        # Stays open through a few seconds of outage (the socket's own refreshes fail too).
        try:
            wa.expect_nothing(3)
        except WsClosed:
            pass
        self.assertFalse(wa.closed, "socket closed during the outage: %r %r"
                         % (wa.close_code, wa.close_reason))
        wa.ping(b"still-there", timeout=scaled(2))
        # An upgrade while redis is down is refused with 503.
        from wsclient import ws_request
        r = ws_request(self.srv, b.token)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json_body()["error"]["code"], "store_unavailable")


class TestRedisBack(RedisFaultTestCase):

    def test_restart_ready_again_and_flow_works(self):
        a, b = self.full_flow()
        self.redis.kill()
        self.wait_ready(503, timeout=BOUND)
        time.sleep(2)  # a few reconnect attempts fail meanwhile
        self.redis.start_on(self.redis.port)
        t0 = time.monotonic()
        self.wait_ready(200, timeout=10)
        self.assertLess(time.monotonic() - t0, scaled(10))
        self.full_flow()
        self.assertTrue(self.srv.alive())

    def test_restarted_empty_redis_gives_clean_404(self):
        a, b = self.full_flow()
        self.redis.kill()
        self.wait_ready(503, timeout=BOUND)
        self.redis.start_on(self.redis.port)  # no persistence: it comes back empty
        self.wait_ready(200, timeout=10)
        r = req(self.srv, "GET", "/signaling/rooms/" + a.room_id, timeout=10)
        check_error(r, 404, "not_found")
        self.assertLess(r.elapsed, scaled(BOUND))
        for p in (a, b):
            r = p.heartbeat()
            self.assertIn(r.status, (403, 404), r)
            check_error(r, r.status)
            self.assertLess(r.elapsed, scaled(BOUND))
        for call in (lambda: a.offer(SDP, to=b.peer_id), lambda: b.events(timeout=10),
                     lambda: b.get_offer(timeout=10), lambda: a.leave()):
            r = call()
            self.assertIn(r.status, (403, 404), r)
            check_error(r, r.status)
            self.assertLess(r.elapsed, scaled(BOUND))
        r = req(self.srv, "GET", "/signaling/rooms", timeout=10)
        self.assertStatus(r, 200)
        body = r.json()
        rooms = body["rooms"] if isinstance(body, dict) else body
        self.assertNotIn(a.room_id, [x.get("roomId") for x in rooms])
        r = req(self.srv, "POST", "/signaling/join-room", body={"roomId": a.room_id},
                token=mint_token(uniq("late")))
        check_error(r, 404, "not_found")
        # New rooms work.
        self.full_flow()

    @needs(websockets is not None, "python3-websockets not importable")
    def test_websocket_after_restart(self):
        a, b = self.full_flow()
        wa = self.ws(a)
        wa.collect(quiet=0.3)
        self.redis.kill()
        self.wait_ready(503, timeout=BOUND)
        self.redis.start_on(self.redis.port)
        self.wait_ready(200, timeout=10)
        # The member is gone with the data: the socket either stays open and answers with an
        # error, or is closed with 1008 (no longer a member); it never hangs.
        try:
            wa.send_json({"type": "offer", "to": b.peer_id, "sdp": SDP, "ref": 3})
            m, _ = wa.recv_until(lambda m: m.get("type") in ("error", "ack"), scaled(BOUND))
            self.assertEqual(m.get("type"), "error", m)
            self.assertIn(m.get("code"), ("forbidden", "not_found"), m)
        except WsClosed as e:
            self.assertIn(e.code, (1000, 1008), e)
        # New peers on WebSockets work again, pushes included.
        c = Peer.create(self.srv)
        d = Peer.join(self.srv, c.room_id)
        wd = self.ws(d)
        wd.collect(quiet=0.3)
        t0 = time.monotonic()
        self.assertStatus(c.offer(SDP, to=d.peer_id), 202)
        t, msg = wd.recv_timed(scaled(2))
        self.assertEqual(json.loads(msg)["type"], "offer")
        self.assertLess(t - t0, scaled(0.2))


class TestSubscriberHealth(RedisFaultTestCase):
    """The subscriber connection only ever reads, so a dead one is found by its health
    probe (the node publishes to its own probe channel once a second and must hear it
    within 2 s); when it is made again, every waiting peer checks its inbox, so what was
    published meanwhile still arrives."""

    def setUp(self):
        super().setUp()
        self.srv.stop()
        self.proxy = HoldingProxy(self.redis.port)
        self.addCleanup(self.proxy.close)
        self.srv = self.server(PARLEY_STORE=self.proxy.url, fresh_store=False,
                               PARLEY_NODE_ID="held-node", PARLEY_RL_LIST="0",
                               PARLEY_RL_SIGNAL="0", PARLEY_RL_POLL="0")
        self.wait_ready(200)

    @needs(websockets is not None, "python3-websockets not importable")
    def test_held_subscriber_is_replaced_and_nothing_is_lost(self):
        a, b = self.full_flow()
        c = Peer.join(self.srv, a.room_id, name="C")
        wb = self.ws(b)
        wb.collect(quiet=0.3)
        # A healthy subscriber passes its checks: a few seconds without a false alarm.
        time.sleep(scaled(3.5))
        self.assertEqual(self.srv.find_log("store: redis health check timed out"), [],
                          self.srv.log_tail(20))
        self.assertEqual(self.srv.find_log("store: redis unavailable"), [], self.srv.log_tail(20))
        # Before: a push reaches the socket at once.
        t0 = time.monotonic()
        self.assertStatus(a.offer(SDP, to=b.peer_id), 202)
        m, _ = wb.recv_until(lambda m: m.get("type") == "offer", scaled(1))
        self.assertLess(time.monotonic() - t0, scaled(0.5))
        self.assertEqual(c.events().status, 200)  # c's inbox is empty now

        box = {}

        def poll():
            box["r"] = c.events(wait=15, timeout=30)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(0.3)  # the long-poll is parked
        self.assertEqual(self.proxy.hold_subscribers(), 1)
        t_hold = time.monotonic()
        # Published while the subscription is dead: the notifications are lost.
        self.assertStatus(a.offer(SDP + "a=x-held:1\r\n", to=b.peer_id), 202)
        self.assertStatus(a.candidate(c.peer_id, {"candidate": "held", "sdpMid": "0"}), 202)

        m, _ = wb.recv_until(lambda m: m.get("type") == "offer", scaled(8))
        self.assertIn("x-held:1", m["sdp"])
        self.assertLess(time.monotonic() - t_hold, scaled(6))
        poller.join(scaled(10))
        self.assertFalse(poller.is_alive(), "the long-poll never woke up")
        r = box["r"]
        self.assertStatus(r, 200)
        self.assertLess(time.monotonic() - t_hold, scaled(8))
        kinds = [e.get("type") for e in r.json()["events"]]
        self.assertIn("candidate", kinds, r.json())
        self.srv.wait_log("store: redis health check timed out", timeout=1, conn="subscriber")
        self.srv.wait_log("store: resync, waiting peers rechecked", timeout=1)
        self.wait_ready(200)
        # After: pushes are immediate again, on the new subscription.
        t0 = time.monotonic()
        self.assertStatus(a.offer(SDP + "a=x-after:1\r\n", to=b.peer_id), 202)
        m, _ = wb.recv_until(lambda m: m.get("type") == "offer", scaled(1))
        self.assertIn("x-after:1", m["sdp"])
        self.assertLess(time.monotonic() - t0, scaled(0.5))
        self.assertFalse(wb.closed)


    @needs(websockets is not None, "python3-websockets not importable")
    def test_command_connection_back_after_subscriber_still_resyncs(self):
        # Both connections drop; the subscriber comes back first (the proxy lets only
        # subscribers through for a while), and a push from another node lands meanwhile.
        # The node may only recheck its sockets once it can pop, i.e. when the command
        # connection is back too: that envelope must then arrive.
        n2 = self.server(PARLEY_STORE=self.redis.url, fresh_store=False,
                         PARLEY_NODE_ID="direct-node", PARLEY_RL_LIST="0",
                         PARLEY_RL_SIGNAL="0", PARLEY_RL_POLL="0")
        a = Peer.create(n2, name="A")
        b = Peer.join(self.srv, a.room_id, name="B")
        wb = self.ws(b)
        wb.collect(quiet=0.3)
        self.proxy.only_subscribers = True
        self.proxy.cut_all()
        self.wait_ready(503, timeout=2)
        # The subscriber is back (the proxy passed it) while the command connection is not.
        wait_until(lambda: any(c["sub"] for c in self.proxy.conns), scaled(3),
                   msg="the subscriber never came back")
        time.sleep(0.3)
        self.assertStatus(a.offer(SDP + "a=x-gap:1\r\n", to=b.peer_id), 202)
        time.sleep(0.5)
        self.assertEqual(req(self.srv, "GET", "/readyz").status, 503)
        t_open = time.monotonic()
        self.proxy.only_subscribers = False
        m, _ = wb.recv_until(lambda m: m.get("type") == "offer", scaled(8))
        self.assertIn("x-gap:1", m["sdp"])
        self.assertLess(time.monotonic() - t_open, scaled(6))
        self.srv.wait_log("store: resync, waiting peers rechecked", timeout=1)


if __name__ == "__main__":
    unittest.main()
