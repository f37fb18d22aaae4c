"""parleyd's WebSocket channel against the libwebsockets client (tests/interop/lws_client.c).

The C client runs the scripted exchange (handshake with parley.v1, a fragmented heartbeat,
a pushed offer, an acknowledged offer, ping/pong, 1009 for an oversized message on a second
socket, a clean 1000 close); this driver starts parleyd, creates the room over REST, posts the
offer the client waits for when it prints READY, and checks what the server side saw.

Environment (set by ctest, see tests/interop/CMakeLists.txt):
  PARLEYD            the parleyd binary
  PARLEY_LWS_CLIENT  the lws_client binary
  PARLEY_SANITIZED   "1" for ASan/UBSan builds (logs checked, time bounds scaled)
"""

import os
import queue
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import REPO, ParleyTestCase, Peer, metrics, missing, scaled, wait_until  # noqa: E402

LWS_CLIENT = os.environ.get("PARLEY_LWS_CLIENT") or os.path.join(REPO, "build", "tests", "lws_client")
MAX_BODY = 4096
PUSH_SDP = "v=0\r\no=- 77 1 IN IP4 127.0.0.1\r\ns=pushed-by-rest-peer\r\n"
OFFER_SDP = "v=0\r\no=- 78 1 IN IP4 127.0.0.1\r\ns=sent-by-lws-client\r\n"


def _pump(stream, sink):
    for line in iter(stream.readline, ""):
        sink(line.rstrip("\n"))
    stream.close()


class LwsClientInterop(ParleyTestCase):

    def run_client(self, srv, args, on_ready, timeout):
        """Runs lws_client; calls on_ready() when it prints READY. Returns (rc, stdout lines,
        stderr text)."""
        proc = subprocess.Popen([LWS_CLIENT] + args, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace")
        lines = queue.Queue()
        err = []
        t_out = threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True)
        t_err = threading.Thread(target=_pump, args=(proc.stderr, err.append), daemon=True)
        t_out.start()
        t_err.start()
        out = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail("lws_client did not finish within %.0f s; stdout so far:\n%s\n"
                              "stderr:\n%s" % (timeout, "\n".join(out), "\n".join(err)))
                try:
                    line = lines.get(timeout=min(left, 0.5))
                except queue.Empty:
                    if proc.poll() is not None and not t_out.is_alive() and lines.empty():
                        break
                    continue
                out.append(line)
                sys.stderr.write("lws_client: %s\n" % line)
                if line == "READY":
                    on_ready()
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        t_out.join(5)
        t_err.join(5)
        return rc, out, "\n".join(err)

    def test_scripted_exchange(self):
        if not os.path.exists(LWS_CLIENT):
            missing("lws_client not found at %s (set PARLEY_LWS_CLIENT)" % LWS_CLIENT)
        srv = self.server(PARLEY_MAX_BODY=str(MAX_BODY))
        a = Peer.create(srv, name="lws-client")  # the client's socket A
        b = Peer.join(srv, a.room_id, name="rest-peer")  # pushes an offer over REST, gets one
        c = Peer.join(srv, a.room_id, name="lws-oversize")  # the client's socket B (step 6)

        posted = {}

        def on_ready():
            r = b.offer(sdp=PUSH_SDP, to=a.peer_id)
            posted["resp"] = r

        args = ["--port", str(srv.port), "--token", a.token, "--peer", b.peer_id,
                "--token2", c.token, "--room", a.room_id, "--self", a.peer_id,
                "--push-sdp", PUSH_SDP, "--offer-sdp", OFFER_SDP, "--big", str(2 * MAX_BODY),
                "--timeout", str(scaled(10))]
        rc, out, err = self.run_client(srv, args, on_ready, timeout=scaled(90))
        report = "lws_client exit %r\nstdout:\n%s\nstderr:\n%s" % (rc, "\n".join(out), err)

        self.assertIn("READY", out, report)
        self.assertIn("resp", posted, report)
        self.assertEqual(posted["resp"].status, 202, "REST offer B->A: %r" % (posted["resp"],))
        for n in range(1, 8):
            self.assertTrue(any(ln.startswith("PASS step %d:" % n) for ln in out),
                            "step %d did not pass\n%s" % (n, report))
        self.assertEqual(out[-1] if out else None, "7 passed, 0 failed", report)
        self.assertEqual(rc, 0, report)

        # What waited in A's inbox before the socket opened was pushed on connect, in order
        # (mesh: each newcomer's offer-request).
        pushed = [ln for ln in out if ln.startswith("note: pushed ")]
        self.assertEqual(pushed[:2], ["note: pushed offer-request (peer %s) on socket A" % p.peer_id
                                      for p in (b, c)], report)

        # Step 4's offer reached B (the socket's ack said it was taken; B reads it over REST).
        r = b.get_offer()
        self.assertStatus(r, 200)
        env = r.json()
        self.assertEqual((env.get("type"), env.get("from"), env.get("to"), env.get("sdp")),
                         ("offer", a.peer_id, b.peer_id, OFFER_SDP), env)

        # The server saw both closes, and no socket is left open.
        m = wait_until(lambda: (lambda mm: mm if mm.sum("parley_ws_connections_open") == 0
                                else None)(metrics(srv)),
                       timeout=scaled(5), msg="parley_ws_connections_open stayed above 0")
        self.assertGreaterEqual(m.sum("parley_ws_closes_total", code="1009"), 1)
        self.assertGreaterEqual(m.sum("parley_ws_closes_total", code="1000"), 1)

        # A close without leave keeps the member: A still heartbeats over REST.
        self.assertStatus(a.heartbeat(), 200)


if __name__ == "__main__":
    unittest.main()
