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

from harness import ParleyTestCase, mint_token, scaled  # noqa: E402

CHAT = os.environ.get("PARLEY_CHAT") or os.path.join(REPO, "build", "bin", "parley-chat")
LSAN_SUPP = os.path.join(REPO, "client-sdk", "tests", "lsan.supp")


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
        self.srv = self.server(PARLEY_STUN_URLS="")
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


if __name__ == "__main__":
    unittest.main()
