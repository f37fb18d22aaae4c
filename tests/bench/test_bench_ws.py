"""Smoke tests of parley-bench's WebSocket scenarios (bench/, label bench): short `relay`
and `idle` runs against a real parleyd with its rate limits off and against the PeerJS
server (npm `peer`, bench/peerjs), checking the JSON reports: no errors, every relayed
message delivered, the latency percentiles ordered, the counts by type, the sockets opened
and the server's memory read. No performance figure is asserted.

Environment: PARLEY_BENCH (the parley-bench binary, default <repo>/build/bin/parley-bench),
PEERJS_DIR (the directory holding node_modules/.bin/peerjs, default <repo>/bench/peerjs),
and the harness's (PARLEYD, PARLEY_SANITIZED, PARLEY_TEST_STRICT, ...).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from test_bench_smoke import BENCH, NO_RATE_LIMITS, assert_latency, run_bench  # noqa: E402

PEERJS_DIR = os.environ.get("PEERJS_DIR") or os.path.join(harness.REPO, "bench", "peerjs")
TYPES = ("offer", "answer", "candidate")


def report(p):
    lines = p.stdout.strip().splitlines()
    if len(lines) != 1:
        raise AssertionError("expected one JSON line, got %r (stderr %r)" % (p.stdout, p.stderr))
    return json.loads(lines[0])


class PeerJS:
    """The PeerJS server's CLI on a free loopback port; its log goes to a file (it logs
    every connection)."""

    def __init__(self, *args):
        node = shutil.which("node")
        cli = os.path.join(PEERJS_DIR, "node_modules", ".bin", "peerjs")
        if not node:
            harness.missing("node not found (the PeerJS server runs on Node.js)")
        if not os.path.exists(cli):
            harness.missing("PeerJS server not found at %s (npm ci in bench/peerjs)" % cli)
        self.port = harness.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(tempfile.gettempdir(),
                                     "peerjs-%d-%d.log" % (os.getpid(), self.port)), "w+")
        self.proc = subprocess.Popen(
            [cli, "--host", "127.0.0.1", "--port", str(self.port)] + list(args),
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + harness.scaled(15)
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("peerjs exited with %s: %s" % (self.proc.returncode,
                                                                   self.log_text()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("peerjs did not listen: %s" % self.log_text())
                time.sleep(0.1)

    def log_text(self):
        self.log.seek(0)
        return self.log.read()[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


class BenchWs(harness.ParleyTestCase):
    def peerjs(self, *args):
        srv = PeerJS(*args)
        self.addCleanup(srv.stop)
        return srv

    def assert_common(self, r, scenario, target, connections):
        self.assertEqual(r["tool"], "parley-bench")
        self.assertEqual(r["scenario"], scenario)
        self.assertEqual(r["target"], target)
        self.assertEqual(r["connections"], connections)
        self.assertEqual(r["errors"], 0, r["errors_by_kind"])
        self.assertEqual(r["errors_by_kind"], {})
        assert_latency(self, r)

    def assert_relay(self, r, target):
        self.assert_common(r, "relay", target, 4)
        self.assertEqual(r["unit"], "message")
        self.assertEqual(r["pairs"], 2)
        self.assertEqual(r["size"], 300)
        self.assertGreater(r["sent"], 0)
        self.assertEqual(r["received"], r["sent"])  # every message arrived
        self.assertEqual(r["requests"], r["sent"])
        self.assertEqual(r["ok"], r["received"])
        self.assertEqual(r["lost"], 0)
        self.assertEqual(r["out_of_order"], 0)
        self.assertEqual(set(r["sent_by_type"]), set(TYPES))
        for t in TYPES:
            self.assertGreater(r["sent_by_type"][t], 0, t)
            self.assertEqual(r["received_by_type"][t], r["sent_by_type"][t], t)
        # The rotation offer, answer, candidate: the counts differ by at most one per sender.
        counts = [r["sent_by_type"][t] for t in TYPES]
        self.assertLessEqual(max(counts) - min(counts), 4)
        self.assertGreater(r["throughput"], 0)

    def assert_idle(self, r, target, n, pid):
        self.assert_common(r, "idle", target, n)
        self.assertEqual(r["unit"], "connection")
        self.assertEqual(r["opened"], n)
        self.assertEqual(r["failed"], 0)
        self.assertEqual(r["closed_early"], 0)
        self.assertEqual(r["ok"], n)
        self.assertEqual(r["server_pid"], pid)
        for k in ("rss_start", "rss_setup", "rss_open", "rss_held"):
            self.assertIsInstance(r[k], int, k)
            self.assertGreater(r[k], 0, k)
        for k in ("bytes_per_conn", "bytes_per_conn_total"):
            self.assertIsInstance(r[k], (int, float), k)

    # -- parleyd --------------------------------------------------------------------------

    def test_relay_parley(self):
        srv = self.server(**NO_RATE_LIMITS)
        p = run_bench("relay", "--url", srv.url, "--secret", harness.TEST_SECRET,
                      "--duration", "2", "--connections", "4", "--size", "300", "--json",
                      timeout=harness.scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = report(p)
        self.assert_relay(r, "parley")
        self.assertEqual(r["window"], 8)  # flat out, the default window
        self.assertIn("in flight", p.stderr)  # the progress line's fragment

    def relay_parley(self, *extra):
        """A 2 s relay of 4 sockets against a fresh parleyd, its report checked whole."""
        srv = self.server(**NO_RATE_LIMITS)
        p = run_bench("relay", "--url", srv.url, "--secret", harness.TEST_SECRET,
                      "--duration", "2", "--connections", "4", "--size", "300", "--json",
                      "--quiet", *extra, timeout=harness.scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = report(p)
        self.assert_relay(r, "parley")
        return srv, r

    def test_relay_parley_rate(self):
        # --rate: about R messages a second in all; every one delivered.
        _, r = self.relay_parley("--rate", "200")
        self.assertEqual(r["window"], 64)
        self.assertLessEqual(r["sent"], 2 * 200 + 8)  # the slots, not flat out

    def test_relay_parley_window(self):
        # --window: flat out with 32 messages in flight per sender, every one delivered.
        srv, r = self.relay_parley("--window", "32")
        self.assertEqual(r["window"], 32)
        # Out of range: parleyd holds at most 64 undelivered envelopes per sender and member.
        for bad in ("0", "65", "x"):
            self.assertEqual(run_bench("relay", "--url", srv.url, "--secret", "x",
                                       "--window", bad).returncode, 2, bad)

    def test_relay_text_report(self):
        srv = self.server(**NO_RATE_LIMITS)
        p = run_bench("relay", "--url", srv.url, "--secret", harness.TEST_SECRET,
                      "--duration", "1", "--connections", "2", "--quiet",
                      timeout=harness.scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr)
        for word in ("messages", "latency ms", "pairs", "by type", "errors      none"):
            self.assertIn(word, p.stdout)

    def test_idle_parley(self):
        srv = self.server(PARLEY_MAX_CONNECTIONS="1000", **NO_RATE_LIMITS)
        p = run_bench("idle", "--url", srv.url, "--secret", harness.TEST_SECRET,
                      "--connections", "200", "--members", "4", "--hold", "1",
                      "--duration", "60", "--server-pid", str(srv.pid), "--json",
                      timeout=harness.scaled(90))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = report(p)
        self.assert_idle(r, "parley", 200, srv.pid)
        self.assertEqual(r["room_size"], 4)
        self.assertGreater(r["bytes_per_conn"], 0)
        self.assertGreater(r["bytes_per_conn_total"], 0)
        self.assertIn("open 200/200", p.stderr)
        # The sockets were really there: parleyd counted them.
        m = harness.metrics(srv)
        self.assertGreaterEqual(m.sum("parley_ws_connections_total"), 200)
        # --members 4: 50 rooms of 4 were made.
        self.assertEqual(m.sum("parley_rooms"), 50)

    def test_idle_without_server_pid(self):
        srv = self.server(**NO_RATE_LIMITS)
        p = run_bench("idle", "--url", srv.url, "--secret", harness.TEST_SECRET,
                      "--connections", "20", "--hold", "0", "--json", "--quiet",
                      timeout=harness.scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = report(p)
        self.assertEqual(r["opened"], 20)
        for k in ("rss_start", "rss_setup", "rss_open", "rss_held", "bytes_per_conn",
                  "bytes_per_conn_total", "server_pid"):
            self.assertIsNone(r[k], k)

    # -- PeerJS ---------------------------------------------------------------------------

    def test_relay_peerjs(self):
        pj = self.peerjs()
        p = run_bench("relay", "--target", "peerjs", "--url", pj.url, "--duration", "2",
                      "--connections", "4", "--size", "300", "--json",
                      timeout=harness.scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr + pj.log_text())
        self.assert_relay(report(p), "peerjs")

    def test_idle_peerjs(self):
        pj = self.peerjs()
        p = run_bench("idle", "--target", "peerjs", "--url", pj.url, "--connections", "200",
                      "--hold", "1", "--duration", "60", "--server-pid", str(pj.pid), "--json",
                      timeout=harness.scaled(90))
        self.assertEqual(p.returncode, 0, p.stderr + pj.log_text())
        r = report(p)
        self.assert_idle(r, "peerjs", 200, pj.pid)
        self.assertEqual(r["rss_setup"], r["rss_start"])  # no setup phase

    def test_peerjs_concurrent_limit(self):
        # Beyond the server's --concurrent_limit, its ERROR is counted by kind.
        pj = self.peerjs("--concurrent_limit", "5")
        p = run_bench("idle", "--target", "peerjs", "--url", pj.url, "--connections", "8",
                      "--hold", "0", "--json", "--quiet", timeout=harness.scaled(60))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = report(p)
        self.assertEqual(r["opened"], 5)
        self.assertEqual(r["failed"], 3)
        self.assertEqual(r["errors_by_kind"], {"peerjs_concurrent_limit": 3})

    # -- errors ---------------------------------------------------------------------------

    def test_relay_nobody_listening(self):
        # Every pair's setup fails to connect: counted by kind, and nothing succeeded.
        port = harness.free_port()
        p = run_bench("relay", "--url", "http://127.0.0.1:%d" % port, "--secret",
                      harness.TEST_SECRET, "--connections", "4", "--duration", "5", "--json",
                      "--quiet", timeout=harness.scaled(30))
        self.assertEqual(p.returncode, 1, p.stderr)
        r = report(p)
        self.assertEqual(r["errors_by_kind"], {"connect": 2})
        self.assertEqual(r["sent"], 0)
        self.assertEqual(r["ok"], 0)
        self.assertLess(r["elapsed_s"], 5)  # it ends when nothing is left to do

    def test_peerjs_nobody_listening(self):
        port = harness.free_port()
        p = run_bench("idle", "--target", "peerjs", "--url", "http://127.0.0.1:%d" % port,
                      "--connections", "3", "--json", "--quiet", timeout=harness.scaled(30))
        self.assertEqual(p.returncode, 1, p.stderr)
        r = report(p)
        self.assertEqual(r["errors_by_kind"], {"connect": 3})
        self.assertEqual(r["failed"], 3)

    def test_usage_errors(self):
        self.assertEqual(run_bench("relay", "--secret", "x", "--connections", "3").returncode, 1)
        p = run_bench("idle", "--secret", "x", "--connections", "1000000", "--quiet")
        self.assertEqual(p.returncode, 1)
        self.assertIn("RLIMIT_NOFILE", p.stderr)


if __name__ == "__main__":
    unittest.main()
