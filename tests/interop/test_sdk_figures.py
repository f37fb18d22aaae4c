"""libparley's figures, C to C through a real parleyd on loopback (label interop;figures).

  test_join_to_open  RUNS times: sdk_peer A creates a room, sdk_peer B joins it; the figure is
                     B's `connected` ms: from B's parley_join_room() call to B's
                     on_peer_connected (REST join, signaling, offer-request to A, A's offer,
                     B's answer, ICE, DTLS, SCTP, DCEP). Median and p99 (with 20 samples the
                     nearest-rank p99 is the maximum).
  test_rtt           1,000 ping-pong round trips of 64 B and 1,000 of 16 KiB on one channel
                     (sdk_peer --rtt: "#ping"/"#pong" text messages, the pong sent from inside
                     on_message): p50, p99, max
  test_throughput    1,000 messages each way of 1 B..64 KiB (the interop mix), and 5,000 of
                     1 KiB one way: messages/s and MB/s as the receiver saw them (from its
                     on_peer_connected to the last message)

The figures are printed on stderr (and appended as JSON lines to $PARLEY_FIGURES_OUT when
set). Only gross failures are asserted (every run succeeds). Run:
  ctest --test-dir build -L figures --output-on-failure -V
or by hand:  cd tests/interop && PARLEY_SDK_PEER=../../build/tests/sdk_peer \\
  PARLEYD=../../build/bin/parleyd /usr/bin/python3 -m unittest -v test_sdk_figures
"""

import json
import os
import statistics
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import test_sdk_c2c as common  # noqa: E402
from harness import SANITIZED, scaled, uniq  # noqa: E402

RUNS = int(os.environ.get("PARLEY_FIGURES_RUNS", "20"))


def nearest_rank(values, q):
    v = sorted(values)
    k = max(1, min(len(v), int(-(-q * len(v) // 1))))
    return v[k - 1]


def report(name, **fields):
    line = dict(figure=name, sanitized=SANITIZED, **fields)
    sys.stderr.write("\n  FIGURE %s\n" % json.dumps(line))
    out = os.environ.get("PARLEY_FIGURES_OUT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")


class SdkFigures(common.SdkTestCase):

    def pair(self, srv, a_args, b_args, procs_ok=True):
        seed = uniq("f")
        a = self.sdk("A", srv, ["--create", "--seed", seed] + a_args)
        ja = a.wait_event("joined", scaled(15))
        b = self.sdk("B", srv, ["--join", ja["roomId"], "--seed", seed] + b_args)
        self.finish_all([a, b])
        return a, b

    def test_join_to_open(self):
        srv = self.server(PARLEY_STUN_URLS="")
        joiner, creator, join_ms = [], [], []
        for _ in range(RUNS):
            a, b = self.pair(srv, ["--messages", "2"], ["--messages", "2"])
            joiner.append(b.of("connected")[0]["ms"])
            creator.append(a.of("connected")[0]["ms"] - a.of("joined")[0]["ms"])
            join_ms.append(b.of("joined")[0]["ms"])
            self.procs = []
        report("join_to_open_ms", runs=RUNS, median=statistics.median(joiner),
               p99=nearest_rank(joiner, 0.99), min=min(joiner), max=max(joiner),
               note="p99 of %d samples (nearest rank) is the maximum" % RUNS if RUNS < 100
               else "", join_answer_median_ms=statistics.median(join_ms),
               creator_joined_to_open_median_ms=statistics.median(creator), samples=joiner)
        self.assertEqual(len(joiner), RUNS)

    def test_rtt(self):
        srv = self.server(PARLEY_STUN_URLS="")
        a, b = self.pair(srv, ["--messages", "0", "--rtt", "1000"], ["--messages", "0"])
        r = a.of("rtt")
        self.assertEqual(len(r), 1, a.report())
        def rounded(d):
            return {k: round(v, 3) for k, v in d.items()}
        report("rtt_ms", n=r[0]["n"], **{"64B": rounded(r[0]["64"]),
                                         "16KiB": rounded(r[0]["16384"])})

    def test_throughput(self):
        srv = self.server(PARLEY_STUN_URLS="")
        mix = ["--messages", "1000", "--sizes", "1:65536"]
        a, b = self.pair(srv, mix, mix)
        for rx, tx in ((b, a), (a, b)):
            mps, mbs = common.throughput(rx, tx, 1000)
            got = rx.of("recv_ok")[0]
            report("throughput_mix", direction="%s->%s" % (tx.name, rx.name), messages=got["n"],
                   bytes=got["bytes"], ms=got["ms"], messages_per_s=round(mps),
                   mb_per_s=round(mbs, 1), note="both directions at once")
        self.procs = []
        a, b = self.pair(srv, ["--messages", "5000", "--sizes", "1024:1024"],
                         ["--messages", "0", "--sizes", "1024:1024"])
        mps, mbs = common.throughput(b, a, 5000)
        got = b.of("recv_ok")[0]
        report("throughput_1KiB", messages=got["n"], bytes=got["bytes"], ms=got["ms"],
               messages_per_s=round(mps), mb_per_s=round(mbs, 1), note="one way")


if __name__ == "__main__":
    unittest.main()
