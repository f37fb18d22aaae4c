"""Integration test harness for parleyd.

Stdlib only; run with /usr/bin/python3. Every test module imports this file and talks to a
real parleyd process over loopback sockets.

Environment (set by ctest, see tests/CMakeLists.txt):
  PARLEYD               path of the parleyd binary (default: <repo>/build/bin/parleyd)
  PARLEY_TEST_STORE     "memory" (default) or "redis"
  PARLEY_TEST_REDIS_URL when set, passed to parleyd as PARLEY_STORE and flushed (FLUSHDB)
                        before every Server starts unless Server(fresh_store=False): test
                        modules run in parallel then need distinct URLs (db numbers).
                        When PARLEY_TEST_STORE=redis and no URL is given, every Server gets
                        its own redis-server on a free port (RedisServer), so parallel
                        runs are isolated.
  PARLEY_SANITIZED      "1" when the binary is built with ASan/UBSan: servers' logs are
                        checked for sanitizer reports and time bounds are scaled by SLOW
  PARLEY_TEST_KEEP_LOGS "1" keeps every server log file (they are kept on failure anyway)
  PARLEY_TEST_STRICT    "1" (ctest sets it): a missing dependency (the parleyd binary,
                        redis-server, python3-websockets) fails the test instead of
                        skipping it, so a CI run cannot pass by running nothing

The PARLEY_* variables of the test environment itself are never passed to parleyd (it
refuses unknown PARLEY_* keys); the server gets exactly the variables the harness sets.

API (stable; add, don't rename):
  Server(args=None, expect_exit=0, fresh_store=True, wait_healthy=True, **env)
      context manager; .url .host .port .pid .proc .log_path .store .env
      .stop(sig=SIGTERM, timeout=10) -> exit code;  .kill();  .alive()
      .restart(sig=SIGTERM, timeout=10): same port, same store (state kept by Redis)
      .log_text() .log_lines() .log_tail(n) .find_log(msg=None, **fields)
      .wait_log(pred_or_msg, timeout=5, **fields) .stdout_text() .sanitizer_errors()
  RedisServer(): a private redis-server on a free port; .url .port .stop(); context manager
  run_parleyd(args=None, timeout=10, **env) -> subprocess.CompletedProcess (text)
  mint_token(sub, name=None, exp_in=3600, secret=TEST_SECRET, alg="HS256", **claims)
  jwt_encode(header, payload, secret=TEST_SECRET) ; b64url(bytes) ; b64url_decode(str)
  req(server, method, path, body=None, token=None, headers=None, raw_body=None, timeout=10)
      -> Response(.status .reason .headers .body .elapsed .json() .text .error_code)
  Client(server, timeout=10): keep-alive connection; .req(method, path, ...) ; .close()
  create_room(server, token, **fields) -> dict ; join_room(server, token, room_id=None,
      broadcaster_name=None) -> dict (token None = guest)
  Peer: .create(server, sub, name=None, **fields) / .join(server, room_id, sub, name=None)
      .offer() .get_offer() .answer() .get_answer() .candidate() .events() .heartbeat()
      .leave() .get_room() ; attributes .room_id .peer_id .token .user_id .name .data
  free_port() ; raw_socket(server, timeout=5) ; raw_request(server, data, timeout=5)
  read_http_response(sock, timeout=5) -> RawResponse(.status .headers .body .raw .closed)
  wait_until(pred, timeout=5, interval=0.05, msg=None) -> pred's truthy value
  check_error(resp, status, code=None) ; parse_iso(s) ; ISO_RE ; ID_RE ; uniq(prefix)
  curl(*args, timeout=15) -> CompletedProcess ; SLOW ; scaled(seconds)
  is_closed(sock, timeout=2) ; run_in_thread(fn, *a, **kw) -> (thread, box)
  metrics(server) -> Metrics(.types .samples .has(name) .get(name, **labels) .sum .value)
  ParleyTestCase(unittest.TestCase): .server(**kw) starts one that stops at cleanup,
      assertStatus(resp, status), assertError(resp, status, code), assertId(s), assertIso(s)
"""

import base64
import calendar
import functools
import hashlib
import hmac
import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PARLEYD = os.environ.get("PARLEYD") or os.path.join(REPO, "build", "bin", "parleyd")
TEST_STORE = os.environ.get("PARLEY_TEST_STORE", "memory") or "memory"
REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL") or None
SANITIZED = os.environ.get("PARLEY_SANITIZED", "0").strip().lower() in ("1", "on", "true", "yes")
KEEP_LOGS = os.environ.get("PARLEY_TEST_KEEP_LOGS", "0") == "1"

# Sanitized builds run several times slower: bounds on how long something may take are scaled.
SLOW = 3.0 if SANITIZED else 1.0

# A fixed 48-byte HS256 secret shared by the harness and every server it starts.
TEST_SECRET = "parley-integration-test-secret-0123456789abcdefg"
assert len(TEST_SECRET.encode()) == 48

ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")


def scaled(seconds):
    """A time bound, stretched for sanitized builds."""
    return seconds * SLOW


_uniq_counter = itertools.count(1)


def uniq(prefix="u"):
    """A name unique within this test process (e.g. a user id)."""
    return "%s%d-%d" % (prefix, os.getpid(), next(_uniq_counter))


# ----------------------------------------------------------------------------------------
# Small helpers


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=5.0, interval=0.05, msg=None):
    """Calls pred() until it returns something truthy (returned) or timeout seconds pass
    (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(msg or "condition not met within %.1f s (last: %r)" % (timeout, last))
        time.sleep(interval)


def parse_iso(s):
    """'2026-11-25T21:34:00.123Z' -> seconds since the epoch (float). Raises ValueError."""
    if not isinstance(s, str) or not ISO_RE.match(s):
        raise ValueError("not an ISO 8601 UTC timestamp with ms: %r" % (s,))
    t = time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) + int(s[20:23]) / 1000.0


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(s):
    if isinstance(s, bytes):
        s = s.decode()
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


_HS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def jwt_encode(header, payload, secret=TEST_SECRET):
    """Low-level JWT: header and payload dicts (or raw strings/bytes, used as-is) are
    encoded; HS* algorithms are signed with secret, anything else gets an empty signature."""

    def part(x):
        if isinstance(x, (bytes, str)):
            return b64url(x)
        return b64url(json.dumps(x, separators=(",", ":")))

    signing_input = part(header) + "." + part(payload)
    alg = header.get("alg") if isinstance(header, dict) else None
    if alg in _HS:
        key = secret.encode() if isinstance(secret, str) else secret
        sig = b64url(hmac.new(key, signing_input.encode(), _HS[alg]).digest())
    else:
        sig = ""
    return signing_input + "." + sig


def mint_token(sub, name=None, exp_in=3600, secret=TEST_SECRET, alg="HS256", **claims):
    """A user JWT. sub None omits `sub`; exp_in None omits `exp`; a claim given as None is
    omitted. alg "none" produces an unsigned token."""
    now = int(time.time())
    payload = {}
    if sub is not None:
        payload["sub"] = sub
    if name is not None:
        payload["name"] = name
    payload["iat"] = now
    if exp_in is not None:
        payload["exp"] = now + int(exp_in)
    for k, v in claims.items():
        if v is None:
            payload.pop(k, None)
        else:
            payload[k] = v
    return jwt_encode({"alg": alg, "typ": "JWT"}, payload, secret)


# ----------------------------------------------------------------------------------------
# Redis (only when PARLEY_TEST_STORE=redis): flush the test database before a server starts


def _redis_flush(url, timeout=3.0):
    m = re.match(r"^redis://(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?(?:/(\d+))?/?$", url)
    if not m:
        raise ValueError("cannot parse redis URL %r" % url)
    host = m.group(1).strip("[]")
    port = int(m.group(2) or 6379)
    db = m.group(3) or "0"

    def cmd(*parts):
        out = b"*%d\r\n" % len(parts)
        for p in parts:
            p = p.encode() if isinstance(p, str) else p
            out += b"$%d\r\n%s\r\n" % (len(p), p)
        return out

    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd("SELECT", db) + cmd("FLUSHDB"))
        buf = b""
        deadline = time.monotonic() + timeout
        while buf.count(b"\r\n") < 2 and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        if buf.count(b"+OK") < 2:
            raise AssertionError("redis flush of %s failed: %r" % (url, buf))


class RedisServer:
    """A throw-away redis-server (no persistence) on a free loopback port."""

    def __init__(self, binary="redis-server"):
        self.binary = binary
        self.port = None
        self.url = None
        self.proc = None

    def start(self, timeout=10.0):
        for _attempt in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.url = "redis://127.0.0.1:%d/0" % self.port
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    _redis_flush(self.url, timeout=1.0)
                    return self
                except (OSError, AssertionError):
                    time.sleep(0.05)
            self.stop()
        raise AssertionError("could not start %s" % self.binary)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
        return False


# ----------------------------------------------------------------------------------------
# The server process


def _base_env():
    """The test process's environment without any PARLEY_* variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}


STRICT = os.environ.get("PARLEY_TEST_STRICT") == "1"


def missing(reason):
    """A dependency is missing: skip on a manual run, fail under ctest (PARLEY_TEST_STRICT)."""
    if STRICT:
        raise AssertionError("missing dependency: %s (deploy/install-deps.sh installs it)"
                             % reason)
    raise unittest.SkipTest(reason)


def needs(available, reason):
    """unittest.skipUnless for a class or a test, except that under PARLEY_TEST_STRICT=1 a
    missing dependency makes the test fail rather than pass by running nothing."""
    if available or not STRICT:
        return unittest.skipUnless(available, reason)

    def deco(obj):
        if isinstance(obj, type):
            def setUpClass(cls):
                missing(reason)
            obj.setUpClass = classmethod(setUpClass)
            return obj

        @functools.wraps(obj)
        def run(*a, **kw):
            missing(reason)
        return run
    return deco


def run_parleyd(args=None, timeout=10, **env):
    """Runs parleyd to completion (for --help, --version, refused configurations).
    env: PARLEY_* variables (None removes one); nothing PARLEY_* is set by default: the
    process gets exactly what the caller asks for plus the non-PARLEY environment.
    Returns CompletedProcess with text stdout/stderr."""
    if not os.path.exists(PARLEYD):
        missing("parleyd binary not found at %s (set PARLEYD)" % PARLEYD)
    e = _base_env()
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = str(v)
    return subprocess.run([PARLEYD] + list(args or []), env=e, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          text=True, errors="replace")


class ServerStartError(AssertionError):
    pass


class Server:
    """A parleyd process on a free loopback port.

        with Server(PARLEY_MEMBER_TTL="2") as srv:
            r = req(srv, "GET", "/healthz")

    Keyword arguments in UPPER case are environment variables for parleyd (None removes
    one the harness would set). args: extra command-line flags. expect_exit: the exit code
    asserted when the context exits (None: not checked). wait_healthy: wait for
    GET /healthz == 200 before returning from start() (False: return at once).
    fresh_store: flush the Redis test database first (redis runs only).
    """

    START_TIMEOUT = 10.0

    def __init__(self, args=None, expect_exit=0, fresh_store=True, wait_healthy=True, **env):
        self.args = list(args or [])
        self.expect_exit = expect_exit
        self.fresh_store = fresh_store
        self.wait_healthy = wait_healthy
        self.overrides = env
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.url = None
        self.returncode = None
        self.log_path = None
        self.stdout_path = None
        self.env = None
        self.store = None
        self._stopped = False
        self._failed = False
        self._keep_port = False
        self._starts = 0
        self._own_redis = None

    # -- lifecycle --------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        in_flight = exc_type is not None
        try:
            self._finish(check=not in_flight)
        except BaseException:
            self._failed = True
            raise
        finally:
            if in_flight:
                self._failed = True
                sys.stderr.write("\n--- parleyd log tail (%s) ---\n%s\n---\n"
                                 % (self.log_path, self.log_tail(30)))
            self._cleanup_files()
            self.release()
        return False

    def start(self):
        if not os.path.exists(PARLEYD):
            missing("parleyd binary not found at %s (set PARLEYD)" % PARLEYD)
        last_err = None
        try:
            for _attempt in range(3):
                try:
                    self._start_once()
                    return self
                except ServerStartError as e:
                    last_err = e
                    # Retry only if the port was taken between free_port() and bind().
                    if "in use" not in self.log_text().lower():
                        self._cleanup_files(force_keep=True)
                        raise
                    self._cleanup_files()
                    time.sleep(0.2)
            raise last_err
        except BaseException:
            self.release()
            raise

    def _start_once(self):
        if not (self._keep_port and self.port):
            self.port = free_port()
        self.url = "http://%s:%d" % (self.host, self.port)
        env = _base_env()
        env["PARLEY_LISTEN"] = "%s:%d" % (self.host, self.port)
        env["PARLEY_JWT_SECRET"] = TEST_SECRET
        env["PARLEY_LOG_LEVEL"] = "info"
        flush = False
        if "PARLEY_STORE" not in self.overrides:
            if REDIS_URL:
                env["PARLEY_STORE"] = REDIS_URL
                flush = self.fresh_store and self._starts == 0
            elif TEST_STORE == "redis":
                if self._own_redis is None:
                    self._own_redis = RedisServer().start()
                env["PARLEY_STORE"] = self._own_redis.url
        for k, v in self.overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        self.env = env
        self.store = env.get("PARLEY_STORE", "memory")
        if flush:
            _redis_flush(self.store)
        self._starts += 1
        fd, self.log_path = tempfile.mkstemp(prefix="parleyd-", suffix=".log")
        os.close(fd)
        fd, self.stdout_path = tempfile.mkstemp(prefix="parleyd-", suffix=".out")
        os.close(fd)
        self._stopped = False
        self.returncode = None
        with open(self.log_path, "wb") as log, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen([PARLEYD] + self.args, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=log)
        if not self.wait_healthy:
            return
        deadline = time.monotonic() + self.START_TIMEOUT
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self._stopped = True
                raise ServerStartError("parleyd exited with %d during start-up; log:\n%s"
                                       % (rc, self.log_tail(40)))
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=1.0)
                try:
                    # The redis engine connects in the background: wait until it answers, or
                    # the first request of a test could meet 503 store_unavailable.
                    conn.request("GET", "/readyz" if str(self.store).startswith("redis://")
                                 else "/healthz")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        return
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerStartError("parleyd did not answer GET /healthz (/readyz) 200 within %.0f s; "
                                       "log:\n%s" % (self.START_TIMEOUT, self.log_tail(40)))
            time.sleep(0.05)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits up to timeout seconds; returns the exit code (negative for a
        signal, as subprocess reports it). On timeout the process is killed and
        AssertionError raised."""
        if self.proc is None:
            return None
        if self._stopped and self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.returncode = self.proc.returncode
                self._stopped = True
                raise AssertionError("parleyd did not exit within %.1f s of signal %d; log:\n%s"
                                     % (timeout, sig, self.log_tail(30)))
        self.returncode = self.proc.returncode
        self._stopped = True
        return self.returncode

    def restart(self, sig=signal.SIGTERM, timeout=10):
        """Stops the server (asserting expect_exit as at the end), and starts it again on the
        same port with the same environment and store (a harness-owned Redis is kept; the
        memory store starts empty, of course)."""
        self._finish(check=True)
        self._cleanup_files()
        self._keep_port = True
        self.start()
        return self

    def kill(self):
        """SIGKILL, no questions asked (exit code -9)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.returncode = self.proc.returncode
            self._stopped = True
        return self.returncode

    def _finish(self, check=True):
        """Stops the server (if running) and checks the exit code and the sanitizer."""
        if self.proc is None:
            return
        rc = self.stop()
        if not check:
            return
        if self.expect_exit is not None and rc != self.expect_exit:
            raise AssertionError("parleyd exited with %r, expected %r; log:\n%s"
                                 % (rc, self.expect_exit, self.log_tail(40)))
        self.check_sanitizer()

    def sanitizer_errors(self):
        """Lines of the log that report ASan/UBSan/LSan findings."""
        return [ln for ln in self.log_text().splitlines()
                if any(m in ln for m in SANITIZER_MARKERS)]

    def check_sanitizer(self):
        if not SANITIZED:
            return
        bad = self.sanitizer_errors()
        if bad:
            raise AssertionError("sanitizer reports in parleyd log %s:\n%s\n--- tail ---\n%s"
                                 % (self.log_path, "\n".join(bad[:20]), self.log_tail(60)))

    def release(self):
        """Stops a harness-owned redis-server (called at the end of the context/test)."""
        if self._own_redis is not None:
            self._own_redis.stop()
            self._own_redis = None

    def _cleanup_files(self, force_keep=False):
        if KEEP_LOGS or self._failed or force_keep:
            return
        for p in (self.log_path, self.stdout_path):
            if p:
                try:
                    os.unlink(p)
                except OSError:
                    pass

    # -- logs -------------------------------------------------------------------------
    def log_text(self):
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        if not self.stdout_path:
            return ""
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_lines(self):
        """The JSON-lines log parsed: a list of dicts (lines that are not JSON objects, e.g.
        sanitizer output, are skipped)."""
        out = []
        for ln in self.log_text().splitlines():
            ln = ln.strip()
            if not ln.startswith("{"):
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def find_log(self, msg=None, **fields):
        """Log objects whose msg equals msg (if given) and whose fields equal fields."""
        res = []
        for obj in self.log_lines():
            if msg is not None and obj.get("msg") != msg:
                continue
            if all(obj.get(k) == v for k, v in fields.items()):
                res.append(obj)
        return res

    def wait_log(self, msg=None, timeout=5.0, **fields):
        """Waits until find_log(msg, **fields) is non-empty (or msg, if callable, returns a
        truthy value for a log object); returns the matches."""
        if callable(msg):
            pred = msg
            return wait_until(lambda: [o for o in self.log_lines() if pred(o)], timeout,
                              msg="no matching log line within %.1f s; tail:\n%s"
                              % (timeout, self.log_tail(20)))
        def pred():
            found = self.find_log(msg, **fields)
            if not found and not self.alive():
                raise AssertionError("parleyd exited (%r) before logging msg=%r %r; log:\n%s"
                                     % (self.proc.poll() if self.proc else None, msg, fields,
                                        self.log_tail(20)))
            return found
        return wait_until(pred, timeout,
                          msg="no log line msg=%r %r within %.1f s" % (msg, fields, timeout))


# ----------------------------------------------------------------------------------------
# HTTP


def _addr(server):
    if isinstance(server, tuple):
        return server
    return (server.host, server.port)


class Response:
    """status, reason, headers (http.client.HTTPMessage: case-insensitive .get/.get_all/in),
    body (bytes), elapsed (seconds from send to full body)."""

    def __init__(self, status, reason, headers, body, elapsed, method="", path=""):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.method = method
        self.path = path

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as e:
            raise AssertionError("%s %s -> %d: body is not JSON (%s): %r"
                                 % (self.method, self.path, self.status, e, self.body[:500]))

    @property
    def error_code(self):
        try:
            return json.loads(self.body.decode("utf-8"))["error"]["code"]
        except Exception:
            return None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        return "<Response %s %s -> %d %r>" % (self.method, self.path, self.status, self.body[:300])


def _prepare(body, token, headers, raw_body):
    hdrs = {}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if raw_body is not None:
        payload = raw_body.encode() if isinstance(raw_body, str) else raw_body
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if headers:
        for k, v in headers.items():
            # A header given as None is removed (e.g. to drop the default Content-Type).
            for existing in [h for h in hdrs if h.lower() == k.lower()]:
                del hdrs[existing]
            if v is not None:
                hdrs[k] = v
    return payload, hdrs


def _do(conn, method, path, body, token, headers, raw_body):
    payload, hdrs = _prepare(body, token, headers, raw_body)
    t0 = time.monotonic()
    conn.request(method, path, body=payload, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.monotonic() - t0
    return Response(resp.status, resp.reason, resp.headers, data, elapsed, method, path), resp


def req(server, method, path, body=None, token=None, headers=None, raw_body=None, timeout=10):
    """One request on a new connection. body: a JSON-able value (sent as application/json);
    raw_body: bytes/str sent as-is; token: Bearer token; headers: extra headers (a value of
    None removes a default one)."""
    host, port = _addr(server)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        r, _ = _do(conn, method, path, body, token, headers, raw_body)
        return r
    finally:
        conn.close()


class Client:
    """A keep-alive connection: every .req() reuses it (reconnecting only if the server
    closed it, which .reconnects counts)."""

    def __init__(self, server, timeout=10):
        self.host, self.port = _addr(server)
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self.reconnects = 0
        self.requests = 0

    def req(self, method, path, body=None, token=None, headers=None, raw_body=None):
        if self.conn.sock is None and self.requests > 0:
            self.reconnects += 1
        self.requests += 1
        r, resp = _do(self.conn, method, path, body, token, headers, raw_body)
        if resp.will_close:
            self.conn.close()
        return r

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False


def check_error(resp, status, code=None):
    """Asserts an error response: status, JSON content type, {"error":{"code","message"}}."""
    if resp.status != status:
        raise AssertionError("expected %d, got %r" % (status, resp))
    if resp.status == 204 or resp.method == "HEAD":
        return
    ctype = resp.headers.get("Content-Type", "")
    if not ctype.startswith("application/json"):
        raise AssertionError("error content type %r in %r" % (ctype, resp))
    j = resp.json()
    err = j.get("error") if isinstance(j, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str) \
            or not isinstance(err.get("message"), str):
        raise AssertionError("malformed error body %r" % (resp,))
    if code is not None and err["code"] != code:
        raise AssertionError("expected error code %r, got %r" % (code, resp))
    return err


def curl(*args, timeout=15):
    """Runs curl -sS with args; CompletedProcess (bytes stdout, text stderr)."""
    return subprocess.run(["curl", "-sS", "--max-time", str(int(timeout))] + list(args),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout + 5)


# ----------------------------------------------------------------------------------------
# Raw sockets (hostile tests)


def raw_socket(server, timeout=5):
    host, port = _addr(server)
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


class RawResponse:
    def __init__(self, status, headers, body, raw, closed):
        self.status = status
        self.headers = headers  # dict, lower-case names (last value wins)
        self.body = body
        self.raw = raw
        self.closed = closed

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<RawResponse %r %r>" % (self.status, self.raw[:300])


# Bytes read past the end of one response (pipelining), kept for the next call per socket.
_leftover = weakref.WeakKeyDictionary()


def read_http_response(sock, timeout=5, head=False):
    """Reads one HTTP/1.1 response from sock (Content-Length or chunked or until close).
    Returns RawResponse, or None when the peer closed before sending anything. status is
    None if what came back is not HTTP. closed tells whether EOF was seen. head=True: the
    response to a HEAD request (no body whatever the headers say). Bytes past the response
    are kept for the next call on the same socket, so pipelined responses can be read one
    by one."""
    sock.settimeout(timeout)
    buf = _leftover.pop(sock, b"")
    closed = False
    deadline = time.monotonic() + timeout

    def more():
        nonlocal buf, closed
        if time.monotonic() >= deadline:
            raise socket.timeout("read_http_response timed out")
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            closed = True
            return False
        buf += chunk
        return True

    while b"\r\n\r\n" not in buf:
        if not more():
            if not buf:
                return None
            return RawResponse(None, {}, b"", buf, True)
    head_raw, rest = buf.split(b"\r\n\r\n", 1)
    lines = head_raw.split(b"\r\n")
    m = re.match(rb"^HTTP/1\.[01] (\d{3})", lines[0])
    status = int(m.group(1)) if m else None
    headers = {}
    for ln in lines[1:]:
        if b":" in ln:
            k, v = ln.split(b":", 1)
            headers[k.decode("latin-1").strip().lower()] = v.decode("latin-1").strip()
    body = b""
    if head or status in (204, 304) or (status is not None and 100 <= status < 200):
        body = b""
        consumed = len(head_raw) + 4
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) - len(head_raw) - 4 < n:
            if not more():
                break
        body = buf[len(head_raw) + 4:len(head_raw) + 4 + n]
        consumed = len(head_raw) + 4 + n
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        pos = len(head_raw) + 4
        while True:
            while b"\r\n" not in buf[pos:]:
                if not more():
                    break
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(buf[pos:line_end].split(b";")[0], 16)
            pos = line_end + 2
            while len(buf) < pos + size + 2:
                if not more():
                    break
            body += buf[pos:pos + size]
            pos += size + 2
            if size == 0:
                break
        consumed = pos
    else:
        while more():
            pass
        body = buf[len(head_raw) + 4:]
        consumed = len(buf)
    raw = buf[:consumed]
    if len(buf) > consumed:
        _leftover[sock] = buf[consumed:]
    return RawResponse(status, headers, body, raw, closed)


def raw_request(server, data, timeout=5):
    """Sends data (bytes) on a new connection, half-closes nothing, and reads one response.
    Returns RawResponse or None (closed without an answer)."""
    with raw_socket(server, timeout) as s:
        s.sendall(data)
        try:
            return read_http_response(s, timeout)
        except socket.timeout:
            return None


def is_closed(sock, timeout=2.0):
    """True if the peer closed the connection within timeout (EOF or reset); data received
    meanwhile is discarded."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
            if not chunk:
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


# ----------------------------------------------------------------------------------------
# Flow helpers


def _expect(resp, statuses, what):
    if resp.status not in statuses:
        raise AssertionError("%s: expected %s, got %r" % (what, statuses, resp))
    return resp.json()


def create_room(server, token, **fields):
    """POST /signaling/create-room; asserts 200/201; returns the JSON body."""
    r = req(server, "POST", "/signaling/create-room", body=fields, token=token)
    return _expect(r, (200, 201), "create-room")


def join_room(server, token, room_id=None, broadcaster_name=None):
    """POST /signaling/join-room (token None = guest); asserts 200; returns the JSON body."""
    body = {}
    if room_id is not None:
        body["roomId"] = room_id
    if broadcaster_name is not None:
        body["broadcasterName"] = broadcaster_name
    r = req(server, "POST", "/signaling/join-room", body=body, token=token)
    return _expect(r, (200,), "join-room")


class Peer:
    """A room member as seen by a client: the create/join response plus signaling calls.
    Every call returns a Response (status not checked)."""

    def __init__(self, server, data, user_id=None, name=None, user_token=None):
        self.server = server
        self.data = data
        self.room_id = data["roomId"]
        self.peer_id = data["peerId"]
        self.token = data["signalingToken"]
        self.user_id = user_id
        self.name = name
        self.user_token = user_token

    @classmethod
    def create(cls, server, sub=None, name=None, **fields):
        sub = sub or uniq("b")
        tok = mint_token(sub, name)
        return cls(server, create_room(server, tok, **fields), sub, name, tok)

    @classmethod
    def join(cls, server, room_id, sub=None, name=None):
        sub = sub or uniq("v")
        tok = mint_token(sub, name)
        return cls(server, join_room(server, tok, room_id=room_id), sub, name, tok)

    def _post(self, path, body, timeout=10):
        body = dict(body)
        body.setdefault("roomId", self.room_id)
        return req(self.server, "POST", path, body=body, token=self.token, timeout=timeout)

    def _get(self, what, wait=None, timeout=None):
        path = "/signaling/%s/%s" % (what, self.room_id)
        if wait is not None:
            path += "?wait=%s" % wait
        if timeout is None:
            timeout = 10 + (float(wait) if isinstance(wait, (int, float)) else 30)
        return req(self.server, "GET", path, token=self.token, timeout=timeout)

    def offer(self, sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", to=None):
        b = {"sdp": sdp}
        if to is not None:
            b["to"] = to
        return self._post("/signaling/offer", b)

    def answer(self, sdp="v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n", to=None):
        b = {"sdp": sdp}
        if to is not None:
            b["to"] = to
        return self._post("/signaling/answer", b)

    def candidate(self, to, candidate):
        return self._post("/signaling/candidate", {"to": to, "candidate": candidate})

    def get_offer(self, wait=None, timeout=None):
        return self._get("offer", wait, timeout)

    def get_answer(self, wait=None, timeout=None):
        return self._get("answer", wait, timeout)

    def events(self, wait=None, timeout=None):
        return self._get("events", wait, timeout)

    def event_list(self, wait=None):
        """GET events, asserting 200; returns the list."""
        r = self.events(wait)
        return _expect(r, (200,), "events")["events"]

    def heartbeat(self):
        r = self._post("/signaling/heartbeat", {})
        if r.status == 200:
            tok = r.json().get("signalingToken")
            if isinstance(tok, str) and tok:
                self.token = tok
        return r

    def leave(self):
        return self._post("/signaling/leave-room", {})

    def get_room(self, token=True):
        return req(self.server, "GET", "/signaling/rooms/" + self.room_id,
                   token=self.token if token else None)


# ----------------------------------------------------------------------------------------
# unittest base


class ParleyTestCase(unittest.TestCase):
    maxDiff = None

    def server(self, **kw):
        """Starts a Server(**kw) stopped (and checked) at test cleanup."""
        srv = Server(**kw)
        srv.start()

        def fin():
            try:
                srv._finish(check=True)
            except BaseException:
                srv._failed = True
                raise
            finally:
                srv._cleanup_files()
                srv.release()

        self.addCleanup(fin)
        return srv

    def assertStatus(self, resp, status, msg=None):
        if resp.status != status:
            self.fail(msg or "expected %d, got %r" % (status, resp))

    def assertError(self, resp, status, code=None):
        try:
            return check_error(resp, status, code)
        except AssertionError as e:
            self.fail(str(e))

    def assertJsonType(self, resp):
        ctype = resp.headers.get("Content-Type", "")
        self.assertTrue(ctype.startswith("application/json"), "content type %r of %r" % (ctype, resp))

    def assertId(self, s, what="id"):
        self.assertIsInstance(s, str, what)
        self.assertRegex(s, ID_RE, what)

    def assertIso(self, s, what="timestamp"):
        self.assertIsInstance(s, str, what)
        self.assertRegex(s, ISO_RE, what)
        return parse_iso(s)


def run_in_thread(fn, *args, **kw):
    """Starts fn(*args, **kw) in a daemon thread; returns (thread, box) where box['result']
    or box['error'] holds the outcome after thread.join()."""
    box = {}

    def run():
        try:
            box["result"] = fn(*args, **kw)
        except BaseException as e:  # noqa: B902 - reported to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


# ----------------------------------------------------------------------------------------
# Prometheus text


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?\s*$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Parsed Prometheus text: .types {family: type}, .samples [(name, labels, value)]."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.helps = {}
        self.samples = []
        self.bad_lines = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("# TYPE "):
                parts = line.split(None, 3)
                if len(parts) == 4:
                    self.types[parts[2]] = parts[3].strip()
                continue
            if line.startswith("# HELP "):
                parts = line.split(None, 3)
                if len(parts) >= 3:
                    self.helps[parts[2]] = parts[3] if len(parts) == 4 else ""
                continue
            if line.startswith("#"):
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                self.bad_lines.append(line)
                continue
            labels = dict(_LABEL_RE.findall(m.group(3) or ""))
            try:
                value = float(m.group(4))
            except ValueError:
                self.bad_lines.append(line)
                continue
            self.samples.append((m.group(1), labels, value))

    def has(self, name):
        """True if the family is declared (TYPE) or has a sample (name, name_bucket, ...)."""
        if name in self.types:
            return True
        return any(s[0] == name or s[0] in (name + "_bucket", name + "_sum", name + "_count")
                   for s in self.samples)

    def get(self, name, **labels):
        """Samples of exactly this name whose labels include labels."""
        return [s for s in self.samples
                if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]

    def sum(self, name, **labels):
        return sum(s[2] for s in self.get(name, **labels))

    def value(self, name, **labels):
        """The single sample's value (AssertionError if not exactly one)."""
        got = self.get(name, **labels)
        if len(got) != 1:
            raise AssertionError("expected one sample %s%r, found %r" % (name, labels, got))
        return got[0][2]


def metrics(server):
    """GET /metrics (asserting 200) parsed."""
    r = req(server, "GET", "/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics: %r" % (r,))
    return Metrics(r.text)
