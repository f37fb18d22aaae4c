"""libparley and aiortc: sdk_peer against aiortc_peer.py (python3-aiortc 1.4.0) through parleyd.

Both directions of offer, messages both ways (text and binary, 1 B to 64 KiB: aiortc's
limit), byte for byte and in order (the shared channel protocol of aiortc_peer.py):

  test_sdk_offers            sdk_peer creates, aiortc joins: the SDK gets offer-request and
                             offers (trickling its candidates), aiortc answers with its
                             candidates in the SDP (a=end-of-candidates)
  test_aiortc_offers         aiortc creates, sdk_peer joins: aiortc offers the legacy form
                             (m=application ... DTLS/SCTP 5000, a=sctpmap), the SDK answers
  test_sdk_offers_trickle_echo  the SDK (REST long-polls) offers, aiortc answers trickling
                             its candidates as candidate envelopes, then a made-up mDNS
                             .local candidate as a bare string, then null; aiortc echoes
  test_aiortc_offers_trickle_sdk_echo  aiortc offers without candidates in its SDP and
                             trickles them; the SDK joins over REST and echoes

aioice never gathers 127.0.0.1: both sides use the machine's first non-loopback IPv4
address (aiortc_peer.find_ice_address(); sdk_peer --ice-addr). No STUN server anywhere.

Environment: PARLEYD, PARLEY_SDK_PEER, PARLEY_SANITIZED (see test_sdk_c2c.py).
"""

import os
import sys
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import test_sdk_c2c as common  # noqa: E402
from harness import mint_token, missing, scaled, uniq  # noqa: E402

AIORTC_PEER = os.path.join(HERE, "aiortc_peer.py")
PYTHON = "/usr/bin/python3"
MESSAGES = 200
SIZES = "1:65536"


class SdkAiortc(common.SdkTestCase):

    @classmethod
    def setUpClass(cls):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import aiortc  # noqa: F401
                import websockets  # noqa: F401
        except ImportError as e:
            cls.env_problem = "aiortc/websockets not importable with %s: %s" % (sys.executable, e)
            return
        from aiortc_peer import find_ice_address
        cls.ice_address = find_ice_address()
        cls.env_problem = None if cls.ice_address else \
            "no non-loopback IPv4 address on this machine (ip -4 addr): aioice does not " \
            "gather 127.0.0.1, so aiortc cannot meet another peer"

    def setUp(self):
        if self.env_problem:
            missing(self.env_problem)
        super().setUp()

    def aiortc(self, name, srv, args, timeout=40):
        argv = [PYTHON, AIORTC_PEER, "--server", srv.url, "--token", mint_token(uniq(name), name),
                "--ice-address", self.ice_address] + list(args) + \
            ["--timeout", "%.0f" % scaled(timeout)]
        p = common.Proc(name, argv)
        self.procs.append(p)
        return p

    def sdk_here(self, name, srv, args):
        return self.sdk(name, srv, args, ice=(self.ice_address,))

    def run_pair(self, sdk_creates, sdk_args=(), aiortc_args=(), sdk_echo=False,
                 aiortc_echo=False):
        srv = self.server(PARLEY_STUN_URLS="")
        opts = ["--messages", str(MESSAGES), "--sizes", SIZES, "--seed", uniq("s")]
        sdk_args = list(sdk_args) + (["--echo"] if sdk_echo else [])
        aiortc_args = list(aiortc_args) + (["--echo"] if aiortc_echo else [])
        if sdk_creates:
            creator = s = self.sdk_here("S", srv, ["--create"] + opts + sdk_args)
        else:
            creator = a = self.aiortc("R", srv, ["--create"] + opts + aiortc_args)
        room = creator.wait_event("joined", scaled(15))["roomId"]
        if sdk_creates:
            a = self.aiortc("R", srv, ["--join=" + room] + opts + aiortc_args)
        else:
            s = self.sdk_here("S", srv, ["--join", room] + opts + sdk_args)
        self.finish_all()
        # the SDK side
        self.assert_session(s, a, sent=None if sdk_echo else MESSAGES, recv=MESSAGES)
        self.assertEqual(s.of("peer-gone", reason="failed"), [], s.report())
        # the aiortc side: who offered, and the exchange
        role = "answerer" if sdk_creates else "offerer"
        opened = a.of("open", peer=s.peer_id)
        self.assertEqual(len(opened), 1, a.report())
        self.assertEqual((opened[0]["role"], opened[0]["label"]), (role, "parley"), opened)
        if sdk_creates:
            self.assertEqual([e["from"] for e in a.of("offer-received")], [s.peer_id])
            self.assertEqual(a.of("offer-request"), [], a.report())
        else:
            self.assertEqual([e["peer"] for e in a.of("offer-request")], [s.peer_id])
            self.assertEqual([e["from"] for e in a.of("answer-received")], [s.peer_id])
        got = a.of("recv_ok", peer=s.peer_id)
        self.assertEqual([e["n"] for e in got], [MESSAGES], a.report())
        self.assertEqual(len(a.of("session-done", peer=s.peer_id)), 1, a.report())
        # bytes agree across the two stacks (content was compared byte for byte)
        if not sdk_echo:
            sent = s.of("sent", peer=a.peer_id)[0]
            target = a.of("recv_ok", peer=s.peer_id)[0] if not aiortc_echo else \
                s.of("recv_ok", peer=a.peer_id)[0]
            self.assertEqual((sent["n"], sent["bytes"]), (target["n"], target["bytes"]))
        if not aiortc_echo:
            sent = a.of("sent", peer=s.peer_id)[0]
            target = s.of("recv_ok", peer=a.peer_id)[0] if not sdk_echo else \
                a.of("recv_ok", peer=s.peer_id)[0]
            self.assertEqual((sent["n"], sent["bytes"]), (target["n"], target["bytes"]))
        self.assert_clean_server(srv, room)
        return s, a

    def test_sdk_offers(self):
        self.run_pair(sdk_creates=True)

    def test_aiortc_offers(self):
        self.run_pair(sdk_creates=False)

    def test_sdk_offers_trickle_echo(self):
        s, a = self.run_pair(sdk_creates=True, sdk_args=["--signaling", "rest"],
                             aiortc_args=["--trickle", "--signaling", "rest"], aiortc_echo=True)
        self.assertEqual(a.of("candidate-sent", to=s.peer_id)[0]["n"], 3, a.report())

    def test_aiortc_offers_trickle_sdk_echo(self):
        s, a = self.run_pair(sdk_creates=False, sdk_args=["--signaling", "rest"],
                             aiortc_args=["--trickle"], sdk_echo=True)
        self.assertEqual(a.of("candidate-sent", to=s.peer_id)[0]["n"], 3, a.report())


if __name__ == "__main__":
    unittest.main()
