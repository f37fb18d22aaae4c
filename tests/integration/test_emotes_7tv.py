"""7TV emotes: GET /emotes/7tv/global, /emotes/7tv/emote-sets/{id} and
/emotes/7tv/users/{platform}/{id} against a local stand-in for 7TV's API v3 (fake7tv.py):
normalization, the shared cache and its TTL, stale answers while the upstream fails, one
upstream fetch per key, validation before any upstream call, 404s, metrics, clients that
go away, and shutdown."""

import http.client
import socket
import threading
import time
import unittest

from fake7tv import EMPTY_SET_ID, SET_ID, Fake7TV
from harness import (TEST_STORE, ParleyTestCase, RedisServer, metrics, read_http_response, req,
                     scaled, wait_until)

WARNING = '110 - "Response is Stale"'
CDN = "https://cdn.7tv.app/emote/"


def emote(eid, name, animated=False, width=32, height=32, file="1x.webp"):
    return {"id": eid, "name": name, "url": CDN + eid + "/" + file, "animated": animated,
            "width": width, "height": height}


# What parleyd must make of fake7tv's sets: the well-formed entries in order, aliases as
# names, the 1x WEBP file (or the first file when there is none), and none of the entries
# that are wrong in some way (plain-http, javascript: or quoted host URLs, no data, a bad
# id, a name with a space, no files, a negative width, a file name with a path).
GLOBAL = [
    emote("60ae958e229664e8667aea38", "peepoSad"),
    emote("01F6MQ33FG000FFJ97ZB8MWV52", "catJAM", animated=True, width=28, height=32),
    emote("60aeab8df6a2c3b332d21139", "Clap", width=40, height=32, file="1x.avif"),
    emote("6042089e77137b000de9e669", "EZ"),
    emote("60e5d610a69fc8d27f2737b7", "FeelsDankMan"),
]
SET = [
    emote("01GB2T4QZ8000FJ5F4XZV3QQ4E", "forsenE"),
    emote("60ae958e229664e8667aea38", "sadge"),
]
TWITCH_USER = [emote("01GZD0VXG0000DZRR1C5H6SE3Y", "wideHi", animated=True, width=64, height=32)]

UPSTREAM = "parley_7tv_upstream_requests_total"
CACHE = "parley_7tv_cache_total"
UPSTREAM_RESULTS = ("ok", "error", "timeout", "too_large", "bad_json", "not_found")
CACHE_RESULTS = ("hit", "miss", "stale")


def counters(srv):
    m = metrics(srv)
    out = {}
    for r in UPSTREAM_RESULTS:
        out["up." + r] = m.value(UPSTREAM, result=r)
    for r in CACHE_RESULTS:
        out["cache." + r] = m.value(CACHE, result=r)
    return out


def delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


class EmotesCase(ParleyTestCase):
    def fake(self, **control):
        f = Fake7TV().start()
        self.addCleanup(f.stop)
        if control:
            f.control(**control)
        return f

    def srv(self, fake, **env):
        return self.server(PARLEY_7TV_API=fake.url, **env)

    def assertEmotes(self, r, emotes, cache="miss"):
        self.assertStatus(r, 200)
        self.assertJsonType(r)
        self.assertEqual(r.json(), {"emotes": emotes})
        self.assertEqual(r.header("X-Cache"), cache, r.headers)

    def assertStale(self, r, emotes, min_age=1):
        self.assertEmotes(r, emotes, cache="stale")
        self.assertEqual(r.header("Warning"), WARNING)
        self.assertGreaterEqual(int(r.header("Age")), min_age)
        self.assertEqual(r.header("Cache-Control"), "public, max-age=0")

    def assertHealthy(self, srv):
        self.assertStatus(req(srv, "GET", "/healthz"), 200)


class TestNormalize(EmotesCase):
    def test_global(self):
        fake = self.fake()
        srv = self.srv(fake)
        r = req(srv, "GET", "/emotes/7tv/global")
        self.assertEmotes(r, GLOBAL)
        self.assertEqual(r.header("Cache-Control"), "public, max-age=600")
        self.assertIsNone(r.header("Warning"))
        self.assertEqual(fake.count("/emote-sets/global"), 1)
        self.assertEqual(fake.count(), 1)

    def test_emote_set(self):
        fake = self.fake()
        srv = self.srv(fake)
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/emote-sets/" + SET_ID), SET)
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/emote-sets/" + EMPTY_SET_ID), [])
        self.assertEqual(fake.count("/emote-sets/" + SET_ID), 1)
        self.assertEqual(fake.count("/emote-sets/" + EMPTY_SET_ID), 1)

    def test_users(self):
        fake = self.fake()
        srv = self.srv(fake)
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/users/twitch/44317909"), TWITCH_USER)
        # emote_set null, and emote_set absent: a user without emotes.
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/users/youtube/UC_nullset-1"), [])
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/users/kick/nosetkey"), [])
        self.assertEqual(fake.stats()["counts"], {
            "/v3/users/twitch/44317909": 1, "/v3/users/youtube/UC_nullset-1": 1,
            "/v3/users/kick/nosetkey": 1})


class TestCache(EmotesCase):
    def test_hit_makes_no_upstream_call(self):
        fake = self.fake()
        srv = self.srv(fake)
        before = counters(srv)
        first = req(srv, "GET", "/emotes/7tv/users/twitch/44317909")
        self.assertEmotes(first, TWITCH_USER, cache="miss")
        second = req(srv, "GET", "/emotes/7tv/users/twitch/44317909")
        self.assertEmotes(second, TWITCH_USER, cache="hit")
        self.assertEqual(second.body, first.body)
        self.assertLessEqual(int(second.header("Age")), 1)
        cc = second.header("Cache-Control")
        self.assertRegex(cc, r"^public, max-age=(\d+)$")
        self.assertIn(int(cc.split("=")[1]), (599, 600))
        self.assertEqual(fake.count(), 1)
        self.assertEqual(delta(before, counters(srv)),
                         {"up.ok": 1, "cache.miss": 1, "cache.hit": 1})

    def test_ttl_expiry_refetches(self):
        fake = self.fake()
        srv = self.srv(fake, PARLEY_7TV_CACHE_TTL="1")
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/global"), GLOBAL, cache="miss")
        r = req(srv, "GET", "/emotes/7tv/global")
        self.assertEmotes(r, GLOBAL, cache="hit")
        self.assertIn(r.header("Cache-Control"), ("public, max-age=0", "public, max-age=1"))
        self.assertEqual(fake.count(), 1)
        time.sleep(1.2)
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/global"), GLOBAL, cache="miss")
        self.assertEqual(fake.count(), 2)
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/global"), GLOBAL, cache="hit")
        self.assertEqual(fake.count(), 2)


class TestUpstreamFailures(EmotesCase):
    # mode (with its extra control fields) -> the upstream outcome counted for it
    CASES = [
        ({"mode": "500"}, "error"),
        ({"mode": "timeout"}, "timeout"),
        ({"mode": "garbage"}, "bad_json"),
        ({"mode": "badshape"}, "bad_json"),
        ({"mode": "huge", "declare_length": False}, "too_large"),
        ({"mode": "huge", "declare_length": True}, "too_large"),
    ]

    def test_502_without_copy_and_stale_with_one(self):
        fake = self.fake()
        srv = self.srv(fake, PARLEY_7TV_CACHE_TTL="1", PARLEY_7TV_TIMEOUT="1")
        for i, (control, outcome) in enumerate(self.CASES):
            with self.subTest(**control):
                fake.control(mode="ok", declare_length=False)
                # A fresh copy of the global set, then let it go stale.
                self.assertEmotes(req(srv, "GET", "/emotes/7tv/global"), GLOBAL)
                time.sleep(1.2)
                fake.control(**control)
                before = counters(srv)
                t0 = time.monotonic()
                self.assertStale(req(srv, "GET", "/emotes/7tv/global", timeout=30), GLOBAL)
                # A set never fetched has no copy to fall back on.
                r = req(srv, "GET", "/emotes/7tv/emote-sets/Never%d" % i, timeout=30)
                self.assertError(r, 502, "upstream_unavailable")
                # The timeout (1 s) bounds even the slowest failure.
                self.assertLess(time.monotonic() - t0, scaled(6))
                self.assertEqual(delta(before, counters(srv)),
                                 {"up." + outcome: 2, "cache.stale": 1, "cache.miss": 1})
                self.assertHealthy(srv)
        self.assertTrue(srv.find_log("7tv upstream failed", key="7tv:set:Never0",
                                     url=fake.url + "/emote-sets/Never0"))

    def test_upstream_down(self):
        # Nothing listens on the port: a connection refused is an upstream failure too.
        fake = self.fake()
        fake.stop()
        srv = self.srv(fake)
        r = req(srv, "GET", "/emotes/7tv/global")
        self.assertError(r, 502, "upstream_unavailable")
        self.assertEqual(counters(srv)["up.error"], 1)
        self.assertHealthy(srv)


class TestStoreDown(EmotesCase):
    @unittest.skipUnless(TEST_STORE == "redis", "needs the redis engine")
    def test_cache_unreachable_still_fetches(self):
        redis = RedisServer().start()
        self.addCleanup(redis.stop)
        fake = self.fake()
        srv = self.srv(fake, PARLEY_STORE=redis.url)
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/global"), GLOBAL, cache="miss")
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/global"), GLOBAL, cache="hit")
        redis.stop()
        wait_until(lambda: req(srv, "GET", "/readyz").status == 503, timeout=scaled(5))
        # No cache to read or write: every request goes to 7TV and still gets its set.
        for _ in range(2):
            self.assertEmotes(req(srv, "GET", "/emotes/7tv/global"), GLOBAL, cache="miss")
        self.assertEqual(fake.count(), 3)
        self.assertTrue(srv.find_log("7tv cache lookup failed", key="7tv:global"))
        self.assertHealthy(srv)


class TestSingleFlight(EmotesCase):
    N = 100

    def test_concurrent_requests_share_one_fetch(self):
        # The fake holds its answer until told: every request is in before it comes.
        fake = self.fake(mode="slow", delay_s=30)
        srv = self.srv(fake)
        before = counters(srv)
        path = "/emotes/7tv/emote-sets/" + SET_ID
        results = [None] * self.N
        sent = threading.Semaphore(0)
        barrier = threading.Barrier(self.N)

        def one(i):
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=scaled(30))
            try:
                barrier.wait(timeout=scaled(20))
                conn.request("GET", path)
                sent.release()
                resp = conn.getresponse()
                results[i] = (resp.status, resp.getheader("X-Cache"), resp.read())
            except Exception as e:  # reported below
                results[i] = ("error", repr(e), b"")
                sent.release()
            finally:
                conn.close()

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(self.N)]
        for t in threads:
            t.start()
        for _ in range(self.N):
            self.assertTrue(sent.acquire(timeout=scaled(20)))
        wait_until(lambda: fake.count() >= 1, timeout=scaled(5))
        # Let parleyd read the last requests, then release the answer.
        time.sleep(scaled(0.5))
        fake.control(mode="ok")
        for t in threads:
            t.join(scaled(30))
        self.assertEqual(fake.count(), 1)
        self.assertEqual({r[:2] for r in results}, {(200, "miss")}, results[:3])
        self.assertEqual(len({r[2] for r in results}), 1)
        self.assertEqual(results[0][2], req(srv, "GET", path).body)
        self.assertEqual(delta(before, counters(srv)),
                         {"up.ok": 1, "cache.miss": self.N, "cache.hit": 1})
        self.assertHealthy(srv)


class TestValidation(EmotesCase):
    BAD = [
        "/emotes/7tv/emote-sets/..%2Fx",
        "/emotes/7tv/emote-sets/a%2Fb",
        "/emotes/7tv/emote-sets/" + "a" * 65,
        "/emotes/7tv/emote-sets/a.b",
        "/emotes/7tv/emote-sets/a-b",
        "/emotes/7tv/emote-sets/%F0%9F%98%80",
        "/emotes/7tv/users/TWITCH/44317909",
        "/emotes/7tv/users/myspace/1",
        "/emotes/7tv/users/../x",
        "/emotes/7tv/users/twitch/" + "a" * 65,
        "/emotes/7tv/users/twitch/a%00",
        "/emotes/7tv/users/twitch/a.b",
        "/emotes/7tv/users/twitch/%2e%2e",
    ]
    # An empty segment matches no route at all.
    EMPTY = [
        "/emotes/7tv/emote-sets/",
        "/emotes/7tv/users/twitch/",
        "/emotes/7tv/users//44317909",
    ]

    def test_invalid_ids_never_reach_upstream(self):
        fake = self.fake()
        srv = self.srv(fake)
        for path in self.BAD:
            with self.subTest(path=path):
                self.assertError(req(srv, "GET", path), 400, "invalid_request")
        for path in self.EMPTY:
            with self.subTest(path=path):
                self.assertError(req(srv, "GET", path), 404, "not_found")
        self.assertEqual(fake.count(), 0)
        self.assertEqual(counters(srv), {k: 0 for k in counters(srv)})
        # The longest valid ids do go upstream (which knows neither).
        self.assertError(req(srv, "GET", "/emotes/7tv/emote-sets/" + "A" * 64), 404, "not_found")
        self.assertError(req(srv, "GET", "/emotes/7tv/users/discord/" + "_-9" * 21 + "z"), 404,
                         "not_found")
        self.assertEqual(fake.count(), 2)
        self.assertHealthy(srv)


class TestNotFound(EmotesCase):
    def test_upstream_404_is_404_and_not_cached(self):
        fake = self.fake()
        srv = self.srv(fake)
        before = counters(srv)
        for _ in range(2):
            self.assertError(req(srv, "GET", "/emotes/7tv/emote-sets/01NOSUCHSET"), 404,
                             "not_found")
            self.assertError(req(srv, "GET", "/emotes/7tv/users/twitch/1"), 404, "not_found")
        self.assertEqual(fake.count("/emote-sets/01NOSUCHSET"), 2)
        self.assertEqual(fake.count("/users/twitch/1"), 2)
        self.assertEqual(delta(before, counters(srv)), {"up.not_found": 4, "cache.miss": 4})

    def test_404_wins_over_a_stale_copy(self):
        fake = self.fake()
        srv = self.srv(fake, PARLEY_7TV_CACHE_TTL="1")
        self.assertEmotes(req(srv, "GET", "/emotes/7tv/emote-sets/" + SET_ID), SET)
        time.sleep(1.2)
        fake.control(mode="404")
        self.assertError(req(srv, "GET", "/emotes/7tv/emote-sets/" + SET_ID), 404, "not_found")


class TestMetrics(EmotesCase):
    def test_families_are_declared_with_every_label(self):
        fake = self.fake()
        srv = self.srv(fake)
        m = metrics(srv)
        self.assertEqual(m.types.get(UPSTREAM), "counter")
        self.assertEqual(m.types.get(CACHE), "counter")
        self.assertEqual(sorted(s[1]["result"] for s in m.get(UPSTREAM)), sorted(UPSTREAM_RESULTS))
        self.assertEqual(sorted(s[1]["result"] for s in m.get(CACHE)), sorted(CACHE_RESULTS))
        self.assertEqual(m.bad_lines, [])
        self.assertEqual(m.sum(UPSTREAM) + m.sum(CACHE), 0)


def open_requests(srv, paths):
    """Sends GET path on a new connection for each path; returns the sockets."""
    socks = []
    for path in paths:
        s = socket.create_connection((srv.host, srv.port), timeout=scaled(20))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        socks.append(s)
    return socks


def statuses(socks):
    """The status of the response on each socket (closing them)."""
    out = []
    for s in socks:
        with s:
            out.append(read_http_response(s, timeout=scaled(20)).status)
    return out


class TestBounds(EmotesCase):
    def test_waiters_per_key_are_bounded(self):
        fake = self.fake(mode="slow", delay_s=60)
        srv = self.srv(fake)
        path = "/emotes/7tv/emote-sets/" + SET_ID
        socks = open_requests(srv, [path] * 1000)
        self.addCleanup(lambda: [s.close() for s in socks])
        wait_until(lambda: fake.count() == 1, timeout=scaled(5))
        time.sleep(scaled(1))
        r = req(srv, "GET", path)
        self.assertError(r, 503, "overloaded")
        self.assertEqual(r.header("Retry-After"), "1")
        fake.control(mode="ok")
        self.assertEqual(set(statuses(socks)), {200})
        self.assertEqual(fake.count(), 1)
        self.assertHealthy(srv)

    def test_fetches_at_once_are_bounded(self):
        fake = self.fake(mode="slow", delay_s=60)
        srv = self.srv(fake)
        socks = open_requests(srv, ["/emotes/7tv/emote-sets/Busy%d" % i for i in range(64)])
        self.addCleanup(lambda: [s.close() for s in socks])
        wait_until(lambda: fake.count() == 64, timeout=scaled(10))
        self.assertError(req(srv, "GET", "/emotes/7tv/emote-sets/Busy64"), 503, "overloaded")
        fake.control(mode="ok")
        self.assertEqual(set(statuses(socks)), {404})
        # Room again once they are done.
        self.assertError(req(srv, "GET", "/emotes/7tv/emote-sets/Busy64"), 404, "not_found")
        self.assertEqual(fake.count(), 65)


class TestLifetimes(EmotesCase):
    def test_client_gone_while_waiting(self):
        fake = self.fake(mode="slow", delay_s=30)
        srv = self.srv(fake)
        path = "/emotes/7tv/global"
        socks = open_requests(srv, [path] * 3)
        wait_until(lambda: fake.count() == 1, timeout=scaled(5))
        time.sleep(scaled(0.2))
        for s in socks:
            s.close()
        # Every waiter is gone; the fetch still completes and fills the cache.
        time.sleep(scaled(0.2))
        self.assertHealthy(srv)
        fake.control(mode="ok")
        wait_until(lambda: counters(srv)["up.ok"] == 1, timeout=scaled(5))
        self.assertEmotes(req(srv, "GET", path), GLOBAL, cache="hit")
        self.assertEqual(fake.count(), 1)

    def test_shutdown_answers_waiters(self):
        fake = self.fake(mode="timeout")
        srv = self.srv(fake, PARLEY_7TV_TIMEOUT="30")
        box = {}

        def waiter():
            box["r"] = req(srv, "GET", "/emotes/7tv/emote-sets/" + SET_ID, timeout=scaled(20))

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        wait_until(lambda: fake.count() == 1, timeout=scaled(5))
        time.sleep(scaled(0.2))
        t0 = time.monotonic()
        self.assertEqual(srv.stop(), 0)
        self.assertLess(time.monotonic() - t0, scaled(5))
        t.join(scaled(5))
        self.assertError(box["r"], 503, "shutting_down")


if __name__ == "__main__":
    unittest.main()
