"""Two parleyd nodes on one redis-server behind a real nginx running deploy/nginx/parley.conf.

The shipped config itself is used, not a copy: the test replaces only the `server` lines of
its upstream (with the two nodes) and its `listen` lines (with a free loopback port), and
fails when it cannot find them, so the file cannot rot unnoticed. nginx runs as a child
process (`nginx -p TMP -c TMP/nginx.conf -g 'daemon off; ...'`, one worker) with every path
in a temporary directory: never the system service, never port 80. Every nginx process is
checked gone at the end of each test.

The nodes trust 127.0.0.1/32 (where nginx connects from) and read X-Forwarded-For. Test
clients connect to nginx from other loopback addresses (127.0.0.7, ...), so the address a
node attributes a request to shows whether it is the client's, as nginx forwarded it.

The classes build on test_cluster's ClusterTestCase (one private redis-server per class,
whatever PARLEY_TEST_STORE says); tests/CMakeLists.txt registers this module for the redis
engine only. A missing nginx or python3-websockets always fails the tests, and a missing
redis-server does under ctest (PARLEY_TEST_STRICT=1): deploy/install-deps.sh installs all
three.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (REPO, Peer, _do, check_error, free_port, metrics, mint_token, req,
                     run_in_thread, scaled, uniq, wait_until)
from test_cluster import ClusterTestCase
from wsclient import raw_upgrade, websockets

CONF = os.path.join(REPO, "deploy", "nginx", "parley.conf")
SDP_A = "v=0\r\no=- 11 1 IN IP4 127.0.0.1\r\ns=-\r\n"
SDP_B = "v=0\r\no=- 22 1 IN IP4 127.0.0.1\r\ns=-\r\n"
CAND = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 40000 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0}


def find_nginx():
    found = shutil.which("nginx")
    if found:
        return found
    for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if os.access(p, os.X_OK):
            return p
    return None


NGINX = find_nginx()

# `server ADDR:PORT [params];` inside the upstream block, and the `listen` lines of the server.
_UPSTREAM_RE = re.compile(r"^(?P<ind>[ \t]*)server[ \t]+(?P<addr>[^\s;]+:\d+)(?P<params>[^;\n]*);"
                          r"[ \t]*\n", re.M)
_LISTEN_RE = re.compile(r"^(?P<ind>[ \t]*)listen[ \t]+(?P<what>[^;\n]+);[ \t]*\n", re.M)


def render_conf(nodes, port):
    """deploy/nginx/parley.conf with its upstream servers replaced by the nodes (keeping each
    line's parameters) and its listen lines by one 127.0.0.1:port."""
    with open(CONF) as f:
        text = f.read()
    ups = list(_UPSTREAM_RE.finditer(text))
    if len(ups) < len(nodes):
        raise AssertionError("%s: expected at least %d upstream `server ADDR:PORT ...;` lines, "
                             "found %d" % (CONF, len(nodes), len(ups)))
    listens = list(_LISTEN_RE.finditer(text))
    if [m.group("what").strip() for m in listens] != ["80", "[::]:80"]:
        raise AssertionError("%s: expected the listen lines `listen 80;` and `listen [::]:80;`, "
                             "found %r" % (CONF, [m.group(0) for m in listens]))
    edits = []  # (start, end, replacement)
    for i, m in enumerate(ups):
        new = ""
        if i < len(nodes):
            new = "%sserver %s:%d%s;\n" % (m.group("ind"), nodes[i].host, nodes[i].port,
                                          m.group("params"))
        edits.append((m.start(), m.end(), new))
    edits.append((listens[0].start(), listens[0].end(),
                  "%slisten 127.0.0.1:%d;\n" % (listens[0].group("ind"), port)))
    edits.append((listens[1].start(), listens[1].end(), ""))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _proc_pgrp(pid):
    """The process group of a live process, None when it is gone (or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[2])


def group_members(pgid):
    """Pids of the live processes in process group pgid."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _proc_pgrp(int(name)) == pgid:
            out.append(int(name))
    return out


class Nginx:
    """A private nginx (master + one worker, in its own process group) in front of nodes."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.dir = tempfile.mkdtemp(prefix="parley-nginx-")
        # When the tests run as root the worker runs as nobody: it must reach the temp paths.
        os.chmod(self.dir, 0o755)
        self.proc = None
        self.port = None
        self.err_path = os.path.join(self.dir, "nginx.err")
        self.access_path = os.path.join(self.dir, "access.log")
        self.failed = False

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    def _write_conf(self):
        with open(os.path.join(self.dir, "parley.conf"), "w") as f:
            f.write(render_conf(self.nodes, self.port))
        main = """worker_processes 1;
events { worker_connections 1024; }
http {
    log_format parley '$remote_addr "$request" $status upstream=$upstream_addr';
    access_log %(d)s/access.log parley;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    include %(d)s/parley.conf;
}
""" % {"d": self.dir}
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(main)

    def start(self, timeout=10.0):
        for _attempt in range(3):
            self.port = free_port()
            self._write_conf()
            with open(self.err_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [NGINX, "-e", "stderr", "-p", self.dir + "/", "-c",
                     os.path.join(self.dir, "nginx.conf"), "-g",
                     "daemon off; pid %s/nginx.pid; error_log stderr;" % self.dir],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if req(self.addr, "GET", "/healthz", timeout=2).status == 200:
                        return self
                except (OSError, http.client.HTTPException):
                    pass
                time.sleep(0.05)
            in_use = "in use" in self.err_text()
            self.stop(check=False)
            if not in_use:
                break
        self.failed = True
        raise AssertionError("nginx did not start and proxy GET /healthz; stderr:\n%s"
                             % self.err_text()[-3000:])

    def err_text(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def access_lines(self):
        try:
            with open(self.access_path) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def stop(self, check=True):
        """Fast shutdown (SIGTERM), then SIGKILL for the whole process group if anything is
        left; with check, AssertionError when any nginx process outlived SIGTERM."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 3
        strays = group_members(pgid)
        while strays and time.monotonic() < deadline:
            time.sleep(0.05)
            strays = group_members(pgid)
        if strays:
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc = None
        if check and strays:
            self.failed = True
            raise AssertionError("nginx processes %r outlived SIGTERM of the master" % strays)

    def cleanup_files(self):
        if self.failed or os.environ.get("PARLEY_TEST_KEEP_LOGS") == "1":
            return
        shutil.rmtree(self.dir, ignore_errors=True)


def preq(proxy, method, path, src="127.0.0.1", body=None, token=None, headers=None,
         raw_body=None, timeout=10):
    """harness.req through the proxy from a chosen loopback source address."""
    conn = http.client.HTTPConnection(proxy[0], proxy[1], timeout=timeout,
                                      source_address=(src, 0))
    try:
        return _do(conn, method, path, body, token, headers, raw_body)[0]
    finally:
        conn.close()


def route_count(srv, route, **labels):
    return metrics(srv).sum("parley_http_requests_total", route=route, **labels)


class ProxyTestCase(ClusterTestCase):
    """test_cluster's class (one redis-server per class, flushed before each test, nodes on
    it) plus an nginx in front of two nodes."""

    @classmethod
    def setUpClass(cls):
        # Always a failure, never a skip: this module exists to run nginx.
        if NGINX is None:
            raise AssertionError("nginx is not installed (deploy/install-deps.sh installs it)")
        if websockets is None:
            raise AssertionError("python3-websockets is not importable: run with "
                                 "/usr/bin/python3 (deploy/install-deps.sh installs it)")
        super().setUpClass()

    def cluster(self, **env):
        """Two nodes on the class's redis and an nginx in front; returns (n1, n2, proxy
        address)."""
        env.setdefault("PARLEY_TRUSTED_PROXIES", "127.0.0.1/32")
        env.setdefault("PARLEY_CLIENT_IP_HEADER", "x-forwarded-for")
        nodes = self.nodes(2, **env)
        self.ready(*nodes)
        ngx = Nginx(nodes)
        ngx.start()

        def fin():
            try:
                ngx.stop(check=True)
            except BaseException:
                ngx.failed = True
                raise
            finally:
                if ngx.failed:
                    print("\n--- nginx stderr (%s) ---\n%s\n--- access log ---\n%s\n---"
                          % (ngx.dir, ngx.err_text()[-3000:], "\n".join(ngx.access_lines()[-40:])))
                ngx.cleanup_files()

        self.addCleanup(fin)
        self.nginx = ngx
        return nodes[0], nodes[1], ngx.addr

    def holder_of_longpoll(self, nodes):
        """The node holding the one parked long-poll."""
        def which():
            held = [n for n in nodes if metrics(n).sum("parley_longpolls_waiting") >= 1]
            return held[0] if len(held) == 1 else None
        return wait_until(which, scaled(3), msg="no node holds the long-poll")

    def ws_holder(self, nodes, peer_id):
        """The one node among nodes whose log shows peer_id's WebSocket open."""
        def which():
            found = [n for n in nodes if n.find_log("websocket open", peer=peer_id)]
            return found if len(found) == 1 else None
        return wait_until(which, scaled(3),
                          msg="not exactly one node logged websocket open for %s" % peer_id)[0]


class TestRestThroughProxy(ProxyTestCase):

    def test_signaling_spread_over_both_nodes(self):
        n1, n2, proxy = self.cluster()
        a = Peer.create(proxy, name="Alice", customName=uniq("room"))
        b = Peer.join(proxy, a.room_id, name="Bob")
        evs = wait_until(lambda: a.event_list(), scaled(3))
        self.assertEqual(evs[0]["type"], "offer-request", evs)
        self.assertEqual(evs[0]["peer"]["peerId"], b.peer_id, evs)

        offers = 0
        self.assertStatus(a.offer(SDP_A, to=b.peer_id), 202)
        offers += 1
        r = b.get_offer()
        self.assertStatus(r, 200)
        self.assertEqual((r.json()["from"], r.json()["sdp"]), (a.peer_id, SDP_A), r)
        self.assertStatus(b.answer(SDP_B), 202)
        r = a.get_answer()
        self.assertStatus(r, 200)
        self.assertEqual((r.json()["from"], r.json()["sdp"]), (b.peer_id, SDP_B), r)
        self.assertStatus(a.candidate(b.peer_id, CAND), 202)
        self.assertStatus(a.candidate(b.peer_id, None), 202)
        got = wait_until(lambda: [e for e in b.event_list() if e["type"] == "candidate"],
                         scaled(3))
        self.assertEqual([e["candidate"] for e in got], [CAND, None], got)

        # A long-poll held by nginx for a few seconds, woken by a post that nginx routed to
        # the other node. Round robin decides where each lands; which node held the poll
        # and which took the post is read from their metrics, and retried a few times if
        # both happened to land on the same node.
        crossed = None
        for attempt in range(4):
            a.event_list()
            b.event_list()
            t, box = run_in_thread(b.events, 10)
            holder = self.holder_of_longpoll((n1, n2))
            time.sleep(2.5)
            self.assertTrue(t.is_alive(), "long-poll answered early: %r" % (box,))
            before = {n.port: route_count(n, "post_offer") for n in (n1, n2)}
            sdp = SDP_A + "a=x-attempt:%d\r\n" % attempt
            t_post = time.monotonic()
            self.assertStatus(a.offer(sdp, to=b.peer_id), 202)
            offers += 1
            t.join(scaled(3))
            self.assertFalse(t.is_alive(), "long-poll through nginx not woken by the post")
            woke = time.monotonic() - t_post
            self.assertNotIn("error", box)
            r = box["result"]
            self.assertStatus(r, 200)
            self.assertEqual([(e["type"], e["sdp"]) for e in r.json()["events"]],
                             [("offer", sdp)], r)
            self.assertLess(woke, scaled(1.0), "woken %.3f s after the post" % woke)
            self.assertGreater(r.elapsed, 2.4, r.elapsed)
            posted = [n for n in (n1, n2) if route_count(n, "post_offer") > before[n.port]]
            self.assertEqual(len(posted), 1, "the post reached %d nodes" % len(posted))
            if posted[0] is not holder:
                crossed = (holder, posted[0])
                break
        self.assertIsNotNone(crossed, "4 long-polls and their posts always met on one node")

        # Both nodes served both peers' calls, and nginx forwarded each POST exactly once.
        for n in (n1, n2):
            m = metrics(n)
            served = m.sum("parley_http_requests_total")
            sig = sum(m.sum("parley_http_requests_total", route=rt)
                      for rt in ("get_offer", "get_answer", "get_events", "post_offer",
                                 "post_answer", "post_candidate", "create_room", "join_room"))
            self.assertGreater(sig, 2, "node %s served %r signaling requests of %r"
                               % (n.env["PARLEY_NODE_ID"], sig, served))
        self.assertEqual(sum(route_count(n, "post_offer") for n in (n1, n2)), offers)
        self.assertEqual(sum(route_count(n, "create_room") for n in (n1, n2)), 1)
        self.assertEqual(sum(route_count(n, "join_room") for n in (n1, n2)), 1)

        # Bodies: PARLEY_MAX_BODY (64 KiB) is also nginx's client_max_body_size.
        big = {"roomId": a.room_id, "to": b.peer_id, "sdp": "v=0\r\n" + "a" * 60000}
        r = preq(proxy, "POST", "/signaling/offer", body=big, token=a.token)
        self.assertStatus(r, 202, "a 60 kB offer must pass nginx: %r" % (r,))
        before = sum(route_count(n, "post_offer") for n in (n1, n2))
        r = preq(proxy, "POST", "/signaling/offer", token=a.token,
                 raw_body=json.dumps(dict(big, sdp="x" * 70000)),
                 headers={"Content-Type": "application/json"})
        self.assertStatus(r, 413)
        self.assertEqual(sum(route_count(n, "post_offer") for n in (n1, n2)), before,
                         "nginx passed a body over client_max_body_size to a node")

        # /metrics is per node, not served through the proxy.
        self.assertStatus(preq(proxy, "GET", "/metrics"), 404)


class TestWebSocketThroughProxy(ProxyTestCase):

    def test_push_and_ping_pong_through_proxy(self):
        ttl = 3
        n1, n2, proxy = self.cluster(PARLEY_WS_PING_INTERVAL="1", PARLEY_MEMBER_TTL=str(ttl))
        a = Peer.create(proxy, name="Alice")
        b = Peer.join(proxy, a.room_id, name="Bob")
        # a: the websockets library, from 127.0.0.3 (it answers pings by itself).
        wa = self.ws(a, subprotocols=["parley.v1"], local_addr=("127.0.0.3", 0))
        self.assertEqual(wa.subprotocol, "parley.v1")
        # b: a raw socket, so that the server's pings can be counted as they come.
        rb = raw_upgrade(proxy, token=b.token, protocols=["parley.v1"])
        self.addCleanup(rb.close)
        self.assertEqual(rb.status, 101, rb.head_raw)
        self.assertTrue(rb.ok)
        wa.collect(quiet=0.3)
        # The node holding a's socket logged the client's own address, forwarded by nginx.
        opened = [o for n in (n1, n2) for o in n.find_log("websocket open", peer=a.peer_id)]
        self.assertEqual([o.get("client") for o in opened], ["127.0.0.3"], opened)

        # A REST post through the proxy reaches b's socket, whichever node either landed on.
        t0 = time.monotonic()
        r = a.offer(SDP_A, to=b.peer_id)
        self.assertStatus(r, 202)
        deadline = time.monotonic() + scaled(2)
        off = None
        while off is None and time.monotonic() < deadline:
            m = rb.recv_json(deadline - time.monotonic())
            if m.get("type") == "offer":
                off = m
        self.assertIsNotNone(off, "offer not pushed through nginx")
        self.assertLess(time.monotonic() - t0, scaled(1.0))
        self.assertEnvelope(off, "offer", a.room_id, a.peer_id, b.peer_id, sdp=SDP_A,
                            id=r.json()["id"])
        # b answers over its socket; a gets it on its own socket.
        rb.send_json({"type": "answer", "sdp": SDP_B, "ref": 1})
        ans, _ = wa.recv_until(lambda m: m.get("type") == "answer", scaled(2))
        self.assertEnvelope(ans, "answer", a.room_id, b.peer_id, a.peer_id, sdp=SDP_B)

        # Pings every second reach b through nginx, and b's pongs reach the node: past the
        # member TTL both sockets are open and both peers still members.
        pings0 = len(rb.pings)
        t_end = time.monotonic() + ttl + 1.5
        while time.monotonic() < t_end:
            try:
                m = rb.recv_message(max(0.05, t_end - time.monotonic()))
            except socket.timeout:
                continue
            self.assertNotIn(m.kind, ("close", "eof"), "b's socket closed: %r" % (m,))
        self.assertGreaterEqual(len(rb.pings) - pings0, ttl, "pings through nginx: %r" % rb.pings)
        self.assertFalse(wa.closed, "a's socket closed: %r" % (wa.close_code,))
        r = req(proxy, "GET", "/signaling/rooms/" + a.room_id)
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["participantCount"], 2, r)
        wa.ping(b"x", timeout=scaled(2))  # and the client's own pings are answered
        self.assertEqual(sum(metrics(n).sum("parley_ws_connections_open") for n in (n1, n2)), 2)


class TestClientIpThroughProxy(ProxyTestCase):

    SPOOF = {"X-Forwarded-For": "198.51.100.%d", "Forwarded": "for=198.51.100.%d",
             "X-Real-IP": "198.51.100.%d"}

    def spoof(self, i):
        return {k: v % i for k, v in self.SPOOF.items()}

    def test_client_ip_is_forwarded_and_spoofing_is_ignored(self):
        n1, n2, proxy = self.cluster()
        bad = mint_token(uniq("x"), secret="another-secret-0123456789-0123456789-0123456")
        for i in range(4):  # round robin: both nodes get some
            r = preq(proxy, "POST", "/signaling/create-room", src="127.0.0.9", body={},
                     token=bad, headers=self.spoof(i))
            check_error(r, 401, "unauthorized")
        for n in (n1, n2):
            seen = [o.get("peer") for o in n.find_log("user token refused")]
            self.assertTrue(seen, "node %s refused none of the 4 requests"
                            % n.env["PARLEY_NODE_ID"])
            self.assertEqual(set(seen), {"127.0.0.9"}, seen)
            # The access log line names both: nginx as the TCP peer, the client as client.
            lines = [o for o in n.find_log("request") if o.get("path") == "/signaling/create-room"]
            self.assertTrue(lines, n.log_tail(10))
            self.assertEqual({(o.get("peer"), o.get("client")) for o in lines},
                             {("127.0.0.1", "127.0.0.9")}, lines)

    def test_rate_limit_per_client_ip_counts_across_nodes(self):
        limit = 6
        n1, n2, proxy = self.cluster(PARLEY_RL_LIST="%d/60" % limit)
        # A client at 127.0.0.7 sends a different made-up client address every time.
        remaining = []
        for i in range(limit):
            r = preq(proxy, "GET", "/signaling/rooms", src="127.0.0.7", headers=self.spoof(i))
            self.assertStatus(r, 200)
            remaining.append(int(r.header("RateLimit-Remaining")))
        self.assertEqual(remaining, list(range(limit - 1, -1, -1)),
                         "one counter for the client across both nodes")
        for n in (n1, n2):
            self.assertGreater(route_count(n, "list_rooms", status="200"), 0,
                               "node %s got no listing" % n.env["PARLEY_NODE_ID"])
        for i in range(2):  # one to each node
            r = preq(proxy, "GET", "/signaling/rooms", src="127.0.0.7",
                     headers=self.spoof(100 + i))
            check_error(r, 429, "rate_limited")
            self.assertTrue(r.header("Retry-After"), r)
            self.assertGreater(int(r.header("Retry-After")), 0, r)
        self.assertEqual([route_count(n, "list_rooms", status="429") for n in (n1, n2)], [1, 1])
        # Another client address has its own counter.
        self.assertStatus(preq(proxy, "GET", "/signaling/rooms", src="127.0.0.8"), 200)
        # A client at nginx's own address (inside PARLEY_TRUSTED_PROXIES) cannot escape either:
        # nginx replaces X-Forwarded-For instead of appending to it.
        for i in range(limit):
            self.assertStatus(preq(proxy, "GET", "/signaling/rooms", src="127.0.0.1",
                                   headers=self.spoof(200 + i)), 200)
        r = preq(proxy, "GET", "/signaling/rooms", src="127.0.0.1", headers=self.spoof(300))
        check_error(r, 429, "rate_limited")


class TestNodeFailureThroughProxy(ProxyTestCase):

    def test_sigkill_one_node_requests_fail_over_and_sockets_reconnect(self):
        n1, n2, proxy = self.cluster()
        a = Peer.create(proxy, name="Alice")
        b = Peer.join(proxy, a.room_id, name="Bob")
        wa = self.ws(a)
        wb = self.ws(b)
        wa.collect(quiet=0.2)
        wb.collect(quiet=0.2)
        # The victim is the node that holds b's socket (a's may be there too).
        victim = self.ws_holder((n1, n2), b.peer_id)
        survivor = n2 if victim is n1 else n1
        victim.expect_exit = None
        a_on_victim = bool(victim.find_log("websocket open", peer=a.peer_id))

        self.assertEqual(victim.kill(), -signal.SIGKILL)
        wb.wait_closed(scaled(3))  # nginx drops the client side of the dead node's socket
        if a_on_victim:
            wa.wait_closed(scaled(3))

        # Reads fail over and the state is intact (it is in Redis). POSTs whose connection
        # is refused are tried on the survivor too: they never reached the dead node.
        for i in range(8):
            r = req(proxy, "GET", "/signaling/rooms/" + a.room_id)
            self.assertStatus(r, 200, "GET %d after the kill: %r" % (i, r))
            self.assertEqual(r.json()["participantCount"], 2, r)
            self.assertStatus(req(proxy, "GET", "/readyz"), 200)
        for _ in range(3):
            self.assertStatus(a.heartbeat(), 200)
            self.assertStatus(b.heartbeat(), 200)
        self.assertIn("connect() failed", self.nginx.err_text(),
                      "nginx never met the dead node: was anything routed to it?")

        # The dead node's peers reconnect through the proxy, to the survivor, and go on.
        wb2 = self.ws(b)
        wa2 = self.ws(a) if a_on_victim else wa
        self.assertIs(self.ws_holder((survivor,), b.peer_id), survivor)
        wa2.send_json({"type": "offer", "to": b.peer_id, "sdp": SDP_A, "ref": 1})
        ack, _ = wa2.recv_until(lambda m: m.get("type") == "ack", scaled(2))
        oid = self.assertAck(ack, 1)
        off, _ = wb2.recv_until(lambda m: m.get("type") == "offer", scaled(2))
        self.assertEnvelope(off, "offer", a.room_id, a.peer_id, b.peer_id, sdp=SDP_A, id=oid)
        wb2.send_json({"type": "answer", "sdp": SDP_B, "ref": 2})
        ans, _ = wa2.recv_until(lambda m: m.get("type") == "answer", scaled(2))
        self.assertEnvelope(ans, "answer", a.room_id, b.peer_id, a.peer_id, sdp=SDP_B)
        wb2.send_json({"type": "candidate", "to": a.peer_id, "candidate": CAND, "ref": 3})
        cand, _ = wa2.recv_until(lambda m: m.get("type") == "candidate", scaled(2))
        self.assertEqual(cand["candidate"], CAND, cand)
        self.assertEqual(metrics(survivor).sum("parley_ws_connections_open"), 2)
        self.assertFalse(victim.alive())


if __name__ == "__main__":
    unittest.main()
