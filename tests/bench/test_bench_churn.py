"""Smoke test of parley-bench's `churn` scenario (bench/churn.c, label bench): a small run
of rooms whose members heartbeat while members leave and new users join in their place,
against a real parleyd. It checks the report's fields against the run's parameters, and the
server's own view afterwards (its membership gauges and request counters), so that a bench
that lost members or miscounted its work fails. No performance figure is asserted: the CPU
fields are only checked to be numbers.

Environment: PARLEY_BENCH (path of the parley-bench binary, default
<repo>/build/bin/parley-bench) and the harness's (PARLEYD, PARLEY_SANITIZED, ...).
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
# The binary's path, the rate-limit switches and the runner are the smoke test's.
from test_bench_smoke import NO_RATE_LIMITS, run_bench  # noqa: E402

ROOMS, MEMBERS, HEARTBEAT, RATE, DURATION = 20, 5, 0.5, 20, 3


def churn(url, *extra, timeout=60):
    return run_bench("churn", "--url", url, "--secret", harness.TEST_SECRET,
                     "--rooms", str(ROOMS), "--members", str(MEMBERS), "--json", *extra,
                     timeout=harness.scaled(timeout))


class BenchChurn(harness.ParleyTestCase):
    def test_churn_keeps_rooms_full(self):
        srv = self.server(**NO_RATE_LIMITS)
        p = churn(srv.url, "--heartbeat", str(HEARTBEAT), "--rate", str(RATE),
                  "--duration", str(DURATION), "--connections", "4",
                  "--server-pid", str(srv.pid))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["scenario"], "churn")
        self.assertEqual(r["errors"], 0, r["errors_by_kind"])
        self.assertEqual(r["errors_by_kind"], {})
        self.assertEqual(r["rooms"], ROOMS)
        self.assertEqual(r["members_per_room"], MEMBERS)
        self.assertEqual(r["members_total"], ROOMS * MEMBERS)
        self.assertEqual(r["members_live"], ROOMS * MEMBERS)
        self.assertEqual(r["members_failed"], 0)
        self.assertTrue(r["setup_complete"])
        self.assertEqual(r["heartbeat_s"], HEARTBEAT)
        # Setup: one create per room and one join per further member, plus whatever
        # heartbeat slots came round while it ran.
        self.assertGreaterEqual(r["setup_requests"], ROOMS * MEMBERS)
        self.assertEqual(r["setup_errors"], 0)
        self.assertGreaterEqual(r["setup_s"], 0)

        # The steady phase is --duration long and its counters are its own.
        self.assertGreater(r["steady_s"], DURATION * 0.9)
        self.assertLess(r["steady_s"], DURATION + harness.scaled(5))
        self.assertAlmostEqual(r["elapsed_s"], r["steady_s"], delta=0.01)
        expected_hb = DURATION * ROOMS * MEMBERS / HEARTBEAT
        self.assertGreater(r["heartbeats"], expected_hb * 0.6, r)
        self.assertLess(r["heartbeats"], expected_hb * 1.4, r)
        self.assertEqual(r["joins"], r["leaves"])
        self.assertGreater(r["joins"], RATE * DURATION * 0.5, r)
        self.assertLessEqual(r["joins"], RATE * DURATION * 1.2 + 1, r)
        self.assertEqual(r["requests"], r["heartbeats"] + r["joins"] + r["leaves"])
        self.assertEqual(r["ok"], r["requests"])
        self.assertEqual(r["requests_by_op"],
                         {"heartbeat": r["heartbeats"], "leave-room": r["leaves"],
                          "join-room": r["joins"]})
        self.assertAlmostEqual(r["heartbeat_rate"], r["heartbeats"] / r["steady_s"], places=3)
        self.assertAlmostEqual(r["churn_rate"], r["joins"] / r["steady_s"], places=3)
        for k in ("server_cpu_cores", "client_cpu_cores"):
            self.assertIsInstance(r[k], float, k)
            self.assertGreaterEqual(r[k], 0, k)
        self.assertIsInstance(r["server_rss_bytes"], int)
        self.assertGreater(r["server_rss_bytes"], 0)
        lat = r["latency_ms"]
        self.assertLessEqual(lat["p50"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["max"])

        # The server agrees: every room still has its members (a leave without its join, or
        # a heartbeat that stopped, would show here), and it answered what the bench counted.
        m = harness.metrics(srv)
        self.assertEqual(m.value("parley_rooms"), ROOMS)
        self.assertEqual(m.value("parley_members"), ROOMS * MEMBERS)
        self.assertEqual(m.sum("parley_http_requests_total", route="create_room"), ROOMS)
        self.assertEqual(m.sum("parley_http_requests_total", route="leave_room", status="204"),
                         r["leaves"])
        self.assertEqual(m.sum("parley_http_requests_total", route="join_room", status="200"),
                         ROOMS * (MEMBERS - 1) + r["joins"])
        self.assertGreaterEqual(
            m.sum("parley_http_requests_total", route="heartbeat", status="200"),
            r["heartbeats"])
        # One progress line a second, saying which phase it is in.
        self.assertIn("hb ", p.stderr)
        self.assertIn("churn ", p.stderr)

    def test_rate_limited_joins_counted_by_kind(self):
        # parleyd's default limits allow 60 joins a minute per client IP: most of the
        # setup's joins are refused. Each refusal is an http_429, the member is left out,
        # the others go on heartbeating, and the server holds exactly the members the bench
        # says are live.
        srv = self.server()
        p = churn(srv.url, "--heartbeat", "1", "--duration", "1", "--server-pid", str(srv.pid))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(set(r["errors_by_kind"]), {"http_429"}, r["errors_by_kind"])
        self.assertGreaterEqual(r["errors_by_kind"]["http_429"], 1)
        self.assertEqual(r["setup_errors"], r["errors_by_kind"]["http_429"])
        self.assertEqual(r["errors"], r["setup_errors"])
        self.assertEqual(r["members_failed"], r["setup_errors"])
        self.assertEqual(r["members_live"] + r["members_failed"], ROOMS * MEMBERS)
        self.assertTrue(r["setup_complete"])
        self.assertGreater(r["heartbeats"], 0)
        m = harness.metrics(srv)
        self.assertEqual(m.value("parley_members"), r["members_live"])
        self.assertEqual(m.sum("parley_rate_limited_total"), r["setup_errors"])

    def test_dead_server_ends_run_with_status_1(self):
        # Nobody listens: every create fails to connect, no member exists, setup gives up
        # at once, and with no steady phase the exit status says nothing was measured.
        port = harness.free_port()
        p = churn("http://127.0.0.1:%d" % port, "--duration", "30", "--quiet", timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertFalse(r["setup_complete"])
        self.assertEqual(r["errors_by_kind"], {"connect": ROOMS})
        self.assertEqual(r["setup_errors"], ROOMS)
        self.assertEqual(r["members_failed"], ROOMS * MEMBERS)
        self.assertEqual(r["members_live"], 0)
        self.assertEqual(r["requests"], 0)
        self.assertIsNone(r["server_cpu_cores"])
        self.assertIn("no member could be set up", p.stderr)

    def test_needs_secret(self):
        # With one --token every member would be the same user, who has one room.
        p = run_bench("churn", "--token", "x.y.z", "--url", "http://127.0.0.1:1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("--secret", p.stderr)


if __name__ == "__main__":
    unittest.main()
