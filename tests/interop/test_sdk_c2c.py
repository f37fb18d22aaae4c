"""libparley to libparley: two (and three) sdk_peer processes through a real parleyd.

sdk_peer (tests/interop/sdk_peer.c) is built on the SDK's public API only and speaks the
channel protocol of aiortc_peer.py (deterministic messages from SHA-256, #hello/#fin/#bye).
Each test starts parleyd (memory store, no STUN server) and sdk_peer processes on the
loopback interface (--ice-addr 127.0.0.1), and checks their JSON events and exit codes:

  test_pair_1000     A creates, B joins; 1,000 messages each way, text and binary, 1 B to
                     64 KiB (1, 64 KiB and everything between over powers of two), byte for
                     byte and in order; both leave, the server is clean afterwards
  test_mesh_third    A and B exchange 1,000 each way in a mesh room, then C joins: A and B
                     both connect to C, 20 messages each way on each new edge (C sends 20,
                     A and B their 1,000)
  test_rest_and_echo A signals over REST long-polls, B over the WebSocket and joins by the
                     broadcaster's name (a public room) in echo mode: A's 300 messages come
                     back to it
  test_sigkill_server  A and B connect, then parleyd is SIGKILLed; only then do they start
                     their streams (--go-stdin): 300 messages each way still arrive, since
                     the DataChannel does not depend on the server; the SDK reports the
                     signaling channel lost and no peer gone
  test_mismatch_seed two peers with different seeds fail, exit 1 (the checks bite)

This module also holds the helpers the other test_sdk_* modules use (SdkProc, SdkTestCase).

Environment (set by ctest, see tests/interop/CMakeLists.txt):
  PARLEYD           the parleyd binary
  PARLEY_SDK_PEER   the sdk_peer binary (default <repo>/build/tests/sdk_peer)
  PARLEY_SANITIZED  "1" for ASan/UBSan builds (sdk_peer's stderr and parleyd's log are checked
                    for sanitizer reports, time bounds scaled)
"""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import test_aiortc  # noqa: E402  (its PeerProc; the module, so its tests are not loaded here)
from harness import (ID_RE, SANITIZER_MARKERS, ParleyTestCase, metrics, mint_token,  # noqa: E402
                     missing, req, scaled, uniq)

SDK_PEER = os.environ.get("PARLEY_SDK_PEER") or os.path.join(REPO, "build", "tests", "sdk_peer")
LSAN_SUPP = os.path.join(REPO, "client-sdk", "tests", "lsan.supp")


def sdk_env():
    """The environment of an sdk_peer process (GLib and LeakSanitizer settings of the plan)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["G_SLICE"] = "always-malloc"
    env["G_DEBUG"] = "gc-friendly"
    if os.path.exists(LSAN_SUPP):
        env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % LSAN_SUPP
    return env


class Proc(test_aiortc.PeerProc):
    """A peer process (sdk_peer or aiortc_peer.py) whose stdout is JSON events: test_aiortc's
    PeerProc for any command line, with an optional stdin and events matched on fields."""

    def __init__(self, name, argv, env=None, stdin=False):  # noqa: super().__init__ is aiortc's
        self.name = name
        self.args = argv
        self.proc = subprocess.Popen(argv, env=env, text=True, errors="replace",
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines, self.events, self.raw, self.err, self.rc = queue.Queue(), [], [], [], None
        self.t_out, self.t_err = (
            threading.Thread(target=test_aiortc._pump, args=(src, sink), daemon=True)
            for src, sink in ((self.proc.stdout, self.lines.put),
                              (self.proc.stderr, self.err.append)))
        self.t_out.start()
        self.t_err.start()

    def wait_event(self, name, timeout, **match):
        """The first event named name with these fields, read as it comes; AssertionError on
        timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            hit = self.of(name, **match)
            if hit:
                return hit[0]
            try:
                self._take(self.lines.get(timeout=max(0.01, min(deadline - time.monotonic(),
                                                                 0.5))))
                continue
            except queue.Empty:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError("%s: no %r %r event within %.0f s\n%s" % (
                    self.name, name, match, timeout, self.report()))
            if self.proc.poll() is not None and not self.t_out.is_alive() and self.lines.empty():
                raise AssertionError("%s exited (%r) without a %r event\n%s" % (
                    self.name, self.proc.returncode, name, self.report()))

    def write(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def close_stdin(self):
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def finish(self, timeout):
        self.close_stdin()
        return super().finish(timeout)

    def kill(self):
        super().kill()
        self.close_stdin()

    def sanitizer_lines(self):
        return [ln for ln in self.err if any(m in ln for m in SANITIZER_MARKERS)]

    def report(self):
        return "--- %s exit %r: %s\nstdout:\n%s\nstderr (last 60 lines):\n%s" % (
            self.name, self.proc.poll(), " ".join(self.args[:1] + self.args[5:]),
            "\n".join(ln[:600] for ln in self.raw), "\n".join(self.err[-60:]))

    @property
    def peer_id(self):
        j = self.of("joined")
        return j[0]["peerId"] if j else None


class SdkTestCase(ParleyTestCase):
    """Starts sdk_peer processes; checks exits, events and sanitizer output."""

    def setUp(self):
        if not os.path.exists(SDK_PEER):
            missing("sdk_peer not found at %s (set PARLEY_SDK_PEER; built with the SDK)"
                    % SDK_PEER)
        self.procs = []
        self.addCleanup(self.kill_all)

    def kill_all(self):
        for p in self.procs:
            p.kill()

    def sdk(self, name, srv, args, timeout=60, stdin=False, ice=("127.0.0.1",)):
        argv = [SDK_PEER, "--server", srv.url, "--token", mint_token(uniq(name), name)] + \
            [x for a in ice for x in ("--ice-addr", a)] + list(args) + \
            ["--timeout", "%.0f" % scaled(timeout)]
        p = Proc(name, argv, env=sdk_env(), stdin=stdin)
        self.procs.append(p)
        return p

    def report(self):
        return "\n".join(p.report() for p in self.procs)

    def finish_all(self, procs=None, expect=0):
        procs = procs or self.procs
        for p in procs:
            p.finish(timeout=scaled(90))
        for p in procs:
            self.assertEqual(p.rc, expect, "%s exit code\n%s" % (p.name, self.report()))
            if expect == 0:
                self.assertEqual(p.of("error"), [], self.report())
                self.assertEqual(len(p.of("done")), 1, self.report())
                self.assertEqual(p.events[-1].get("event"), "done", self.report())
        self.check_sanitizer(procs)

    def check_sanitizer(self, procs=None):
        for p in procs or self.procs:
            bad = p.sanitizer_lines()
            self.assertEqual(bad, [], "%s: sanitizer reports\n%s" % (p.name, p.report()))

    def assert_session(self, p, other, sent=None, recv=None, echo_of=None):
        """p finished a verified session with the peer whose id is other: connected once,
        received recv messages (or echo_of's sent stream), session-done, done."""
        oid = other.peer_id if isinstance(other, Proc) else other
        self.assertEqual(len(p.of("connected", peer=oid)), 1, p.report())
        c = p.of("connected", peer=oid)[0]
        self.assertIsInstance(c["ms"], int)
        self.assertGreaterEqual(c["ms"], 0)
        r = p.of("recv_ok", peer=oid)
        self.assertEqual(len(r), 1, p.report())
        if recv is not None:
            self.assertEqual(r[0]["n"], recv, r)
        if sent is not None:
            s = p.of("sent", peer=oid)
            self.assertEqual([e["n"] for e in s], [sent], p.report())
        self.assertEqual(len(p.of("session-done", peer=oid)), 1, p.report())
        last = p.index("done")
        self.assertIsNotNone(last, p.report())
        self.assertLess(p.index("connected", peer=oid), p.index("recv_ok", peer=oid))
        self.assertLess(p.index("recv_ok", peer=oid), p.index("session-done", peer=oid))
        return r[0]

    def assert_bytes_agree(self, a, b):
        """What a sent to b is what b verified (bytes), and the other way round."""
        for x, y in ((a, b), (b, a)):
            sent = x.of("sent", peer=y.peer_id)
            if sent:
                got = y.of("recv_ok", peer=x.peer_id)[0]
                self.assertEqual((sent[0]["n"], sent[0]["bytes"]), (got["n"], got["bytes"]),
                                 self.report())

    def assert_clean_server(self, srv, room_id):
        m = metrics(srv)
        self.assertEqual(m.sum("parley_ws_connections_open"), 0, m.text)
        self.assertEqual(m.sum("parley_members"), 0, m.text)
        self.assertEqual(req(srv, "GET", "/signaling/rooms/" + room_id).status, 404,
                         "the room outlived its last member")


def throughput(p, other, sent_by_other):
    """(messages/s, MB/s) of other's stream as p received it, from recv_ok's ms."""
    r = p.of("recv_ok", peer=other.peer_id)[0]
    secs = max(r["ms"], 1) / 1000.0
    return r["n"] / secs, r["bytes"] / secs / 1e6


class SdkToSdk(SdkTestCase):

    def test_pair_1000(self):
        srv = self.server(PARLEY_STUN_URLS="")
        common = ["--messages", "1000", "--sizes", "1:65536", "--seed", uniq("s")]
        a = self.sdk("A", srv, ["--create"] + common)
        ja = a.wait_event("joined", scaled(15))
        self.assertRegex(ja["roomId"], ID_RE)
        self.assertRegex(ja["peerId"], ID_RE)
        self.assertEqual((ja["peers"], ja["topology"]), ([], "mesh"), ja)
        b = self.sdk("B", srv, ["--join", ja["roomId"]] + common)
        self.finish_all()
        jb = b.of("joined")[0]
        self.assertEqual((jb["roomId"], jb["peers"]), (ja["roomId"], [ja["peerId"]]), jb)
        self.assert_session(a, b, sent=1000, recv=1000)
        self.assert_session(b, a, sent=1000, recv=1000)
        self.assert_bytes_agree(a, b)
        for p in (a, b):
            # auto signaling: the WebSocket channel was used, and never lost
            states = [e["state"] for e in p.of("signaling")]
            self.assertIn("websocket", states, p.report())
            self.assertNotIn("reconnecting", states, p.report())
            # No peer was lost during the exchange; once it is over, the other side leaving
            # (whichever finishes first) is reported, rightly.
            gone = p.index("peer-gone")
            if gone is not None:
                self.assertGreater(gone, p.index("session-done"), p.report())
                self.assertEqual([e["reason"] for e in p.of("peer-gone")], ["left"], p.report())
            self.assertEqual(p.of("done")[0]["left"], 0, p.report())
        mps, mbs = throughput(b, a, 1000)
        sys.stderr.write("\n  C<->C 1,000 messages each way (1 B..64 KiB): B got A's %d bytes "
                         "in %d ms (%.0f messages/s, %.1f MB/s); join-to-open A %d ms, B %d ms\n"
                         % (b.of("recv_ok")[0]["bytes"], b.of("recv_ok")[0]["ms"], mps, mbs,
                            a.of("connected")[0]["ms"], b.of("connected")[0]["ms"]))
        self.assert_clean_server(srv, ja["roomId"])

    def test_mesh_third(self):
        srv = self.server(PARLEY_STUN_URLS="")
        seed = uniq("s")
        common = ["--sizes", "1:65536", "--seed", seed, "--peers", "2"]
        a = self.sdk("A", srv, ["--create", "--topology", "mesh", "--messages", "1000"] + common)
        ja = a.wait_event("joined", scaled(15))
        self.assertEqual(ja["topology"], "mesh", ja)
        room = ja["roomId"]
        b = self.sdk("B", srv, ["--join", room, "--messages", "1000"] + common)
        b.wait_event("joined", scaled(15))
        # A and B are connected and have exchanged their streams before C arrives
        a.wait_event("recv_ok", scaled(60), peer=b.peer_id)
        b.wait_event("recv_ok", scaled(60), peer=a.peer_id)
        c = self.sdk("C", srv, ["--join", room, "--messages", "20"] + common)
        self.finish_all()
        jc = c.of("joined")[0]
        self.assertEqual(sorted(jc["peers"]), sorted([a.peer_id, b.peer_id]), jc)
        self.assert_session(a, b, sent=1000, recv=1000)
        self.assert_session(b, a, sent=1000, recv=1000)
        self.assert_session(a, c, sent=1000, recv=20)
        self.assert_session(b, c, sent=1000, recv=20)
        self.assert_session(c, a, sent=20, recv=1000)
        self.assert_session(c, b, sent=20, recv=1000)
        for x, y in ((a, b), (a, c), (b, c)):
            self.assert_bytes_agree(x, y)
        self.assertEqual([e["peer"] for e in a.of("peer-joined")], [b.peer_id, c.peer_id])
        self.assertEqual([e["peer"] for e in b.of("peer-joined")], [c.peer_id])
        for p in (a, b, c):
            self.assertEqual(len(p.of("session-done")), 2, p.report())
            self.assertEqual(p.of("done")[0]["sessions"], 2, p.report())
        self.assert_clean_server(srv, room)

    def test_rest_and_echo(self):
        srv = self.server(PARLEY_STUN_URLS="")
        common = ["--messages", "300", "--sizes", "0:65536", "--seed", uniq("s")]
        a = self.sdk("Ann", srv, ["--create", "--public", "--signaling", "rest"] + common)
        ja = a.wait_event("joined", scaled(15))
        self.assertEqual(ja["broadcasterName"], "Ann", ja)
        b = self.sdk("B", srv, ["--broadcaster", "Ann", "--signaling", "ws", "--echo"] + common)
        self.finish_all()
        self.assertEqual(b.of("joined")[0]["roomId"], ja["roomId"])
        r = self.assert_session(a, b, sent=300, recv=300)
        self.assertEqual(r["bytes"], a.of("sent")[0]["bytes"], "A got its own stream back")
        self.assert_session(b, a, recv=300)
        self.assertEqual(b.of("sent"), [], "an echo peer sends no stream of its own")
        self.assertIn("longpoll", [e["state"] for e in a.of("signaling")], a.report())
        self.assertNotIn("websocket", [e["state"] for e in a.of("signaling")], a.report())
        self.assertIn("websocket", [e["state"] for e in b.of("signaling")], b.report())
        self.assert_clean_server(srv, ja["roomId"])

    def test_sigkill_server(self):
        # The server dies SIGKILLed: its exit code is not checked.
        srv = self.server(PARLEY_STUN_URLS="", expect_exit=None)
        common = ["--messages", "300", "--sizes", "1:65536", "--seed", uniq("s"), "--go-stdin"]
        a = self.sdk("A", srv, ["--create"] + common, stdin=True)
        ja = a.wait_event("joined", scaled(15))
        b = self.sdk("B", srv, ["--join", ja["roomId"]] + common, stdin=True)
        b.wait_event("joined", scaled(15))
        a.wait_event("connected", scaled(30))
        b.wait_event("connected", scaled(30))
        srv.kill()
        self.assertEqual(srv.returncode, -signal.SIGKILL)
        # the loss is noticed (the WebSocket drops) before the streams start
        a.wait_event("signaling", scaled(15), state="reconnecting")
        b.wait_event("signaling", scaled(15), state="reconnecting")
        self.assertEqual(a.of("sent") + b.of("sent"), [], "the streams started too early")
        a.write("go\n")
        b.write("go\n")
        self.finish_all()
        self.assert_session(a, b, sent=300, recv=300)
        self.assert_session(b, a, sent=300, recv=300)
        self.assert_bytes_agree(a, b)
        for p in (a, b):
            # no peer was lost while the exchange ran (once it is over, the other side leaving
            # and closing the channel is reported, rightly)
            gone = p.index("peer-gone")
            if gone is not None:
                self.assertGreater(gone, p.index("session-done"), p.report())
            self.assertGreater(p.index("recv_ok"), p.index("signaling", state="reconnecting"))
            self.assertEqual(p.of("membership-ended"), [], p.report())

    def test_mismatch_seed(self):
        """Different seeds: both sides refuse the other's #hello (exit 1)."""
        srv = self.server(PARLEY_STUN_URLS="")
        a = self.sdk("A", srv, ["--create", "--messages", "5", "--seed", "one"], timeout=20)
        ja = a.wait_event("joined", scaled(15))
        b = self.sdk("B", srv, ["--join", ja["roomId"], "--messages", "5", "--seed", "two"],
                     timeout=20)
        seed_errors = 0
        for p in (a, b):
            p.finish(timeout=scaled(60))
            self.assertEqual(p.rc, 1, self.report())
            err = p.of("error")
            self.assertEqual(len(err), 1, self.report())
            self.assertEqual(p.of("recv_ok") + p.of("done"), [], self.report())
            seed_errors += "uses seed" in err[0]["detail"]
        # at least one side saw the other's #hello before the other one went away
        self.assertGreaterEqual(seed_errors, 1, self.report())
        self.check_sanitizer()


if __name__ == "__main__":
    unittest.main()
