"""Smoke test of parley-bench (bench/, label bench): a short `rest` run against a real
parleyd with its rate limits off. It checks the JSON report's shape and that the run saw no
errors; no performance figure is asserted (performance is measured by the bench, never by
the tests).

Environment: PARLEY_BENCH (path of the parley-bench binary, default
<repo>/build/bin/parley-bench) and the harness's (PARLEYD, PARLEY_SANITIZED, ...).
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

BENCH = os.environ.get("PARLEY_BENCH") or os.path.join(harness.REPO, "build", "bin", "parley-bench")

# Every per-user and per-peer limit off: the bench's users would otherwise hit them at once.
NO_RATE_LIMITS = {k: "0" for k in ("PARLEY_RL_CREATE_ROOM", "PARLEY_RL_JOIN_USER",
                                   "PARLEY_RL_JOIN_IP", "PARLEY_RL_SIGNAL", "PARLEY_RL_POLL",
                                   "PARLEY_RL_LIST")}
OPS = ("create-room", "join-room", "heartbeat", "poll-offer", "poll-events", "leave-room")


def run_bench(*args, timeout=60):
    if not os.path.exists(BENCH):
        harness.missing("parley-bench binary not found at %s (set PARLEY_BENCH)" % BENCH)
    return subprocess.run([BENCH] + list(args), capture_output=True, text=True, timeout=timeout)


def assert_latency(tc, r):
    """The report's latency percentiles are numbers, in order: 0 <= p50 <= p90 <= p99 <= max."""
    lat = r["latency_ms"]
    for k in ("p50", "p90", "p99", "max"):
        tc.assertIsInstance(lat[k], (int, float), k)
    tc.assertLessEqual(0, lat["p50"])
    tc.assertLessEqual(lat["p50"], lat["p90"])
    tc.assertLessEqual(lat["p90"], lat["p99"])
    tc.assertLessEqual(lat["p99"], lat["max"])


class BenchSmoke(harness.ParleyTestCase):
    def test_rest_json_report(self):
        srv = self.server(**NO_RATE_LIMITS)
        p = run_bench("rest", "--url", srv.url, "--secret", harness.TEST_SECRET,
                      "--duration", "2", "--connections", "4", "--json",
                      timeout=harness.scaled(30))
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stdout)
        r = json.loads(lines[0])
        self.assertEqual(r["tool"], "parley-bench")
        self.assertEqual(r["scenario"], "rest")
        self.assertEqual(r["connections"], 4)
        for k in ("requests", "ok", "errors"):
            self.assertIsInstance(r[k], int, k)
        self.assertGreater(r["requests"], 0)
        self.assertEqual(r["errors"], 0, r["errors_by_kind"])
        self.assertEqual(r["errors_by_kind"], {})
        self.assertEqual(r["ok"], r["requests"])
        self.assertGreater(r["throughput_rps"], 0)
        self.assertGreater(r["elapsed_s"], 1.5)
        assert_latency(self, r)
        self.assertEqual(set(r["requests_by_op"]), set(OPS))
        for op in OPS:
            self.assertGreater(r["requests_by_op"][op], 0, op)
        # One progress line a second on stderr.
        self.assertIn("requests", p.stderr)

    def test_request_count_and_errors_by_kind(self):
        # A count-bounded run against a port nobody listens on: every attempt is a connect
        # error, the run still ends, and the exit status says nothing succeeded.
        port = harness.free_port()
        p = run_bench("rest", "--url", "http://127.0.0.1:%d" % port, "--secret",
                      harness.TEST_SECRET, "--requests", "3", "--connections", "1", "--json",
                      "--quiet", timeout=harness.scaled(30))
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["requests"], 3)
        self.assertEqual(r["errors"], 3)
        self.assertEqual(r["errors_by_kind"], {"connect": 3})

    def test_help_version_usage(self):
        p = run_bench("--help")
        self.assertEqual(p.returncode, 0)
        for flag in ("--url", "--token", "--secret", "--connections", "--duration",
                     "--requests", "--rate", "--timeout", "--json"):
            self.assertIn(flag, p.stdout)
        p = run_bench("--version")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^parley-bench \d+\.\d+\.\d+")
        self.assertEqual(run_bench("rest").returncode, 2)  # neither --token nor --secret
        self.assertEqual(run_bench("nosuch", "--secret", "x").returncode, 2)


if __name__ == "__main__":
    unittest.main()
