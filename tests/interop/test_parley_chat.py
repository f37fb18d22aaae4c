"""parley-chat (client-sdk/examples/parley-chat.c): two processes through a real parleyd.

Each test starts parleyd (memory store, no STUN server) and two parley-chat processes on the
loopback interface (--ice-addr 127.0.0.1). Alice creates a room, Bob joins it by id; once
both report the connection, one types a line and the other must print it as
"<senderName>: <text>":

  test_default_name   no --name-as: the senderName is the name the server gives the sender
                      (Alice: the room's broadcasterName; Bob: his token's name), so Bob
                      prints "Alice: hello" and Alice prints "Bob: hi there"
  test_name_as        --name-as overrides it: "Queen A: hello" (Bob, without it, still "Bob")
  test_name_as_refused  a --name-as with a control character is a usage error (exit 2)
  test_emotes         emotes end to end: parleyd's 7TV routes answer from fake7tv.py (a local
                      stand-in for 7TV's API, ../integration) and the domain chat.example has
                      one uploaded custom emoji, "wave"; both sides load --7tv-global,
                      --7tv-set and --emoji-domain, and Bob prints Alice's
                      "catJAM hi:wave:! :nope: Clap, forsenE" as
                      "Alice: [catJAM] hi[wave]! :nope: Clap, [forsenE]" (an unknown :name:
                      and a 7TV name glued to punctuation stay text)
  test_emotes_not_loaded  a receiver shows only the emotes it loaded itself: Bob, with
                      --7tv-global alone, prints ":wave:" and "forsenE" as text; Alice, with
                      all of them, renders Bob's same line in full

Every test's parleyd has PARLEY_7TV_API pointing at its own fake7tv (a thread of this process).

Environment (set by ctest, see tests/interop/CMakeLists.txt):
  PARLEYD           the parleyd binary
  PARLEY_CHAT       the parley-chat binary (default <repo>/build/bin/parley-chat)
"""

import os
import queue
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from fake7tv import SET_ID, Fake7TV  # noqa: E402
from harness import ParleyTestCase, mint_token, req, scaled  # noqa: E402
from test_emoji import png  # noqa: E402

CHAT = os.environ.get("PARLEY_CHAT") or os.path.join(REPO, "build", "bin", "parley-chat")
LSAN_SUPP = os.path.join(REPO, "client-sdk", "tests", "lsan.supp")

# fake7tv's global set holds catJAM and Clap (5 usable emotes in all), SET_ID forsenE and sadge.
EMOJI_DOMAIN = "chat.example"
EMOTE_LINE = "catJAM hi:wave:! :nope: Clap, forsenE"
ALL_EMOTES = ("--7tv-global", "--7tv-set", SET_ID, "--emoji-domain", EMOJI_DOMAIN)


class Chat:
    """A parley-chat process: stdin to type into, stdout and stderr lines in queues."""

    def __init__(self, args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        env["G_SLICE"] = "always-malloc"
        if os.path.exists(LSAN_SUPP):
            env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % LSAN_SUPP
        self.proc = subprocess.Popen([CHAT] + args, env=env, text=True, errors="replace",
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out, self.err, self.err_all = queue.Queue(), queue.Queue(), []
        self.threads = [threading.Thread(target=self._pump, args=(src, sink), daemon=True)
                        for src, sink in ((self.proc.stdout, self.out),
                                          (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _pump(self, src, sink):
        for line in src:
            line = line.rstrip("\n")
            if sink is self.err:
                self.err_all.append(line)
            sink.put(line)

    def expect(self, q, pred, timeout, what):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: not seen within %.0f s; stderr:\n%s"
                                     % (what, timeout, "\n".join(self.err_all[-40:])))
            try:
                line = q.get(timeout=left)
            except queue.Empty:
                continue
            if pred(line):
                return line

    def type(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self):
        """EOF on stdin: it leaves and exits (0); the exit code, None when it had to be killed."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            rc = self.proc.wait(timeout=scaled(15))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        for t in self.threads:
            t.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


class ParleyChatTest(ParleyTestCase):
    def setUp(self):
        if not os.access(CHAT, os.X_OK):
            self.fail("parley-chat not built: %s" % CHAT)
        self.fake7tv = Fake7TV().start()
        self.addCleanup(self.fake7tv.stop)
        self.srv = self.server(PARLEY_STUN_URLS="", PARLEY_7TV_API=self.fake7tv.url)
        self.url = "http://127.0.0.1:%d" % self.srv.port
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.kill()
            if not p.proc.stdout.closed:
                p.finish()

    def chat(self, token, *args):
        c = Chat(["--server", self.url, "--token", token, "--ice-addr", "127.0.0.1"] + list(args))
        self.procs.append(c)
        return c

    def pair(self, a_args=(), b_args=()):
        a = self.chat(mint_token("alice", "Alice"), "--create", *a_args)
        room = a.expect(a.out, lambda l: l.startswith("room "), scaled(10), "alice joined")[5:]
        b = self.chat(mint_token("bob", "Bob"), "--join", room, *b_args)
        b.expect(b.out, lambda l: l.startswith("room "), scaled(10), "bob joined")
        for c, who in ((a, "alice"), (b, "bob")):
            c.expect(c.err, lambda l: l.startswith("connected: "), scaled(15), who + " connected")
        return a, b

    def stop(self, *chats):
        for c in chats:
            self.assertEqual(c.finish(), 0, "\n".join(c.err_all[-20:]))

    def upload_wave(self):
        """The custom emoji "wave" of EMOJI_DOMAIN (a 16x16 PNG), before any chat loads it."""
        r = req(self.srv, "POST", "/emoji/upload?domain=%s&name=wave" % EMOJI_DOMAIN,
                token=mint_token("uploader", domains=[EMOJI_DOMAIN]),
                headers={"Content-Type": "image/png"}, raw_body=png(16, 16))
        self.assertStatus(r, 201)

    def said(self, c, who, line, expected):
        """c prints the line the other side typed as exactly expected."""
        self.assertEqual(c.expect(c.out, lambda l: l.startswith(who + ": "), scaled(10), line),
                         who + ": " + expected)

    def assertLoaded(self, c, *reports):
        for r in reports:
            self.assertIn("emotes: " + r, c.err_all)

    def test_default_name(self):
        a, b = self.pair()
        a.type("hello")
        self.assertEqual(b.expect(b.out, lambda l: l.endswith(": hello"), scaled(10), "hello"),
                         "Alice: hello")
        b.type("hi there")
        self.assertEqual(a.expect(a.out, lambda l: l.endswith(": hi there"), scaled(10), "hi"),
                         "Bob: hi there")
        self.stop(a, b)

    def test_name_as(self):
        a, b = self.pair(a_args=("--name-as", "Queen A"))
        a.type("hello")
        self.assertEqual(b.expect(b.out, lambda l: l.endswith(": hello"), scaled(10), "hello"),
                         "Queen A: hello")
        b.type("hi")
        self.assertEqual(a.expect(a.out, lambda l: l.endswith(": hi"), scaled(10), "hi"),
                         "Bob: hi")
        self.stop(a, b)

    def test_name_as_refused(self):
        """A --name-as that receivers would not show is refused up front (usage error 2)."""
        c = self.chat(mint_token("carol", "Carol"), "--create", "--name-as", "x\ty")
        self.assertEqual(c.finish(), 2)

    def test_emotes(self):
        self.upload_wave()
        a, b = self.pair(a_args=ALL_EMOTES, b_args=ALL_EMOTES)
        for c in (a, b):
            self.assertLoaded(c, "7TV global emotes: 5", "7TV emote set %s: 2" % SET_ID,
                              "custom emoji of %s: 1" % EMOJI_DOMAIN)
        # Both loaded through parleyd, which asked 7TV once per set.
        self.assertEqual(self.fake7tv.count("/emote-sets/global"), 1)
        self.assertEqual(self.fake7tv.count("/emote-sets/" + SET_ID), 1)
        a.type(EMOTE_LINE)
        self.said(b, "Alice", EMOTE_LINE, "[catJAM] hi[wave]! :nope: Clap, [forsenE]")
        self.stop(a, b)

    def test_emotes_not_loaded(self):
        self.upload_wave()
        a, b = self.pair(a_args=ALL_EMOTES, b_args=("--7tv-global",))
        self.assertLoaded(b, "7TV global emotes: 5")
        a.type(EMOTE_LINE)
        self.said(b, "Alice", EMOTE_LINE, "[catJAM] hi:wave:! :nope: Clap, forsenE")
        b.type(EMOTE_LINE)
        self.said(a, "Bob", EMOTE_LINE, "[catJAM] hi[wave]! :nope: Clap, [forsenE]")
        self.stop(a, b)


if __name__ == "__main__":
    unittest.main()
