"""Custom emoji (docs/api.md "Custom emoji"): uploads checked by their bytes (PNG, GIF, WebP
made by ImageMagick at test time, and hand-built hostile files), the domain claim, Origin
checks and CORS, unique names, immutable serving with ETag/304, delete rights, rate limits,
the per-domain bound, metrics, and (Redis) every node serving every emoji."""

import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

from harness import (TEST_STORE, ParleyTestCase, RedisServer, metrics, mint_token, req,
                     scaled, wait_until)

CONVERT = "/usr/bin/convert"
GIF2WEBP = "/usr/bin/gif2webp"
STRICT = os.environ.get("PARLEY_TEST_STRICT") == "1"
DOMAIN = "example.com"
APP_ORIGIN = "https://app.example.net"
CACHE_CONTROL = "public, max-age=31536000, immutable"

UPLOADER = mint_token("u-up", domains=[DOMAIN])
OWNER = mint_token("u-owner", domains=["Example.COM"])  # claims are lower-cased
STRANGER = mint_token("u-stranger", domains=["other.org"])


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))


def png(width, height):
    """A valid greyscale PNG of width x height (all black), built by hand."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\0" + b"\0" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b""))


class Images:
    """Files made once per run with ImageMagick: the kinds of image users upload."""
    dir = None
    made = {}

    @classmethod
    def make(cls):
        if cls.made:
            return cls.made
        for tool in (CONVERT, GIF2WEBP):
            if not os.path.exists(tool):
                if STRICT:
                    raise AssertionError("%s is missing (deploy/install-deps.sh)" % tool)
                raise unittest.SkipTest("%s is missing" % tool)
        cls.dir = tempfile.mkdtemp(prefix="parley-emoji-")
        recipes = {
            "png": (["-size", "32x24", "xc:red"], "a.png"),
            "gif": (["-delay", "10", "-size", "16x16", "xc:red", "xc:blue", "-loop", "0"],
                    "anim.gif"),
            "gif_still": (["-size", "8x8", "xc:green"], "still.gif"),
            "webp_lossy": (["-size", "20x10", "xc:green", "-quality", "80"], "lossy.webp"),
            "webp_lossless": (["-size", "20x10", "xc:green", "-define", "webp:lossless=true"],
                              "lossless.webp"),
            # ImageMagick 6's own animated WebP carries a second RIFF after the first (the
            # last frame again): bytes after the image's end, which uploads refuse.
            "webp_anim_im6": (["-delay", "10", "-size", "16x16", "xc:red", "xc:blue",
                               "-loop", "0"], "anim-im6.webp"),
            "big": (["-size", "600x600", "xc:red"], "big.png"),
        }
        for key, (args, name) in recipes.items():
            path = os.path.join(cls.dir, name)
            subprocess.run([CONVERT] + args + [path], check=True, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(path, "rb") as f:
                cls.made[key] = f.read()
        # libwebp's own tool makes the animated WebP users upload.
        path = os.path.join(cls.dir, "anim.webp")
        subprocess.run([GIF2WEBP, "-quiet", os.path.join(cls.dir, "anim.gif"), "-o", path],
                       check=True, timeout=30)
        with open(path, "rb") as f:
            cls.made["webp_anim"] = f.read()
        return cls.made


def tearDownModule():
    if Images.dir:
        shutil.rmtree(Images.dir, ignore_errors=True)


class EmojiCase(ParleyTestCase):
    def setUp(self):
        super().setUp()
        self.img = Images.make()

    def srv(self, **env):
        env.setdefault("PARLEY_ALLOWED_ORIGINS", APP_ORIGIN)
        env.setdefault("PARLEY_RL_EMOJI_UPLOAD", "0")  # TestLimits sets one
        return self.server(**env)

    def upload(self, srv, data, ctype, name, token=UPLOADER, domain=DOMAIN, origin=None):
        headers = {"Content-Type": ctype} if ctype else {"Content-Type": None}
        if origin:
            headers["Origin"] = origin
        return req(srv, "POST", "/emoji/upload?domain=%s&name=%s" % (domain, name),
                   token=token, headers=headers, raw_body=data)

    def created(self, r):
        self.assertStatus(r, 201)
        return r.json()


class TestUploadAndServe(EmojiCase):
    def test_every_format_roundtrips(self):
        srv = self.srv()
        cases = [("png", "image/png", 32, 24, False), ("gif", "image/gif", 16, 16, True),
                 ("gif_still", "image/gif", 8, 8, False),
                 ("webp_lossy", "image/webp", 20, 10, False),
                 ("webp_lossless", "image/webp", 20, 10, False),
                 ("webp_anim", "image/webp", 16, 16, True)]
        ids = []
        for i, (key, ctype, w, h, anim) in enumerate(cases):
            name = "e%d_%s" % (i, key)
            r = self.upload(srv, self.img[key], ctype, name)
            e = self.created(r)
            self.assertId(e["id"])
            self.assertEqual(e["name"], name)
            self.assertEqual(e["url"], "/emoji/" + e["id"])
            self.assertEqual(r.headers.get("Location"), e["url"])
            self.assertEqual(e["domain"], DOMAIN)
            self.assertEqual(e["uploadedBy"], "u-up")
            self.assertIso(e["uploadedAt"])
            self.assertEqual((e["width"], e["height"], e["animated"]), (w, h, anim), key)
            ids.append(e["id"])
            g = req(srv, "GET", e["url"])
            self.assertStatus(g, 200)
            self.assertEqual(g.body, self.img[key])
            self.assertEqual(g.headers.get("Content-Type"), ctype)
            self.assertEqual(g.headers.get("Cache-Control"), CACHE_CONTROL)
            self.assertEqual(g.headers.get("X-Content-Type-Options"), "nosniff")
            self.assertIn("Origin", g.headers.get("Vary", ""))
            etag = g.headers.get("ETag")
            self.assertRegex(etag, r'^"[0-9a-f]{32}"$')
        # Listed in upload order, the same records.
        lst = req(srv, "GET", "/emoji/list?domain=" + DOMAIN)
        self.assertStatus(lst, 200)
        self.assertEqual([e["id"] for e in lst.json()["emojis"]], ids)
        self.assertEqual(req(srv, "GET", "/emoji/list?domain=nobody.example").json(),
                         {"emojis": []})

    def test_etag_304_and_head(self):
        srv = self.srv()
        e = self.created(self.upload(srv, self.img["png"], "image/png", "wave"))
        g = req(srv, "GET", e["url"])
        etag = g.headers.get("ETag")
        for inm in (etag, "W/" + etag, '"x", ' + etag, "*"):
            r = req(srv, "GET", e["url"], headers={"If-None-Match": inm})
            self.assertStatus(r, 304)
            self.assertEqual(r.body, b"")
            self.assertEqual(r.headers.get("ETag"), etag)
        r = req(srv, "GET", e["url"], headers={"If-None-Match": '"0123"'})
        self.assertStatus(r, 200)
        h = req(srv, "HEAD", e["url"])
        self.assertStatus(h, 200)
        self.assertEqual(h.headers.get("Content-Length"), str(len(self.img["png"])))
        # The same bytes under another name: the same strong validator.
        e2 = self.created(self.upload(srv, self.img["png"], "image/png", "wave2"))
        self.assertEqual(req(srv, "GET", e2["url"]).headers.get("ETag"), etag)
        self.assertEqual(req(srv, "GET", "/emoji/AAAAAAAAAAAAAAAAAAAAAA").status, 404)
        self.assertEqual(req(srv, "GET", "/emoji/..%2F..%2Fetc").status, 404)


class TestHostileUploads(EmojiCase):
    def test_refused_by_their_bytes(self):
        srv = self.srv()
        p = self.img["png"]
        gif = self.img["gif"]
        cases = [
            ("truncated", p[: len(p) // 2], "image/png", 400, "invalid_request"),
            ("truncated_gif", gif[:-1], "image/gif", 400, "invalid_request"),
            ("lying_type", gif, "image/png", 415, "unsupported_media_type"),
            ("lying_webp", self.img["webp_lossy"], "image/gif", 415, "unsupported_media_type"),
            ("text_type", p, "text/plain", 415, "unsupported_media_type"),
            ("no_type", p, None, 415, "unsupported_media_type"),
            ("not_an_image", b"hello, world" * 10, "image/png", 415, "unsupported_media_type"),
            ("tall_header", png(1, 65535), "image/png", 400, "invalid_request"),
            ("too_big_sides", self.img["big"], "image/png", 400, "invalid_request"),
            ("zero_bytes", b"", "image/png", 400, "invalid_request"),
            ("polyglot_zip", gif + b"PK\x03\x04" + b"\0" * 26 + b"evil.js", "image/gif",
             400, "invalid_request"),
            ("polyglot_html", p + b"<html><script>alert(1)</script></html>", "image/png",
             400, "invalid_request"),
            ("webp_second_riff", self.img["webp_anim_im6"], "image/webp", 400,
             "invalid_request"),
        ]
        for name, body, ctype, status, code in cases:
            r = self.upload(srv, body, ctype, name)
            self.assertError(r, status, code)
        # Over 256 KiB: 413 while it arrives, whatever it is.
        r = self.upload(srv, p + b"\0" * (256 * 1024), "image/png", "huge")
        self.assertError(r, 413, "payload_too_large")
        # Nothing of it was stored, and the server is fine.
        self.assertEqual(req(srv, "GET", "/emoji/list?domain=" + DOMAIN).json(), {"emojis": []})
        self.assertEqual(req(srv, "GET", "/healthz").status, 200)
        m = metrics(srv)
        self.assertEqual(m.value("parley_emoji_uploads_total", result="invalid"), len(cases))
        self.assertEqual(m.value("parley_emoji_uploads_total", result="created"), 0)
        # A 1 x 512 image is at the limit and fine.
        self.created(self.upload(srv, png(1, 512), "image/png", "tall_ok"))

    def test_names_domains_and_tokens(self):
        srv = self.srv()
        p = self.img["png"]
        self.assertError(self.upload(srv, p, "image/png", "a"), 400, "invalid_request")
        self.assertError(self.upload(srv, p, "image/png", "x" * 33), 400, "invalid_request")
        self.assertError(self.upload(srv, p, "image/png", "no-dash"), 400, "invalid_request")
        self.assertError(self.upload(srv, p, "image/png", "%3Cb%3E"), 400, "invalid_request")
        self.assertError(self.upload(srv, p, "image/png", "ok", domain="bad_domain!"), 400,
                         "invalid_request")
        self.assertError(self.upload(srv, p, "image/png", "ok", domain=""), 400,
                         "invalid_request")
        self.assertError(self.upload(srv, p, "image/png", "ok", domain="a." * 126 + "com"), 400,
                         "invalid_request")  # 255 bytes: refused, not cut to fit
        self.assertError(self.upload(srv, p, "image/png", "ok", token=None), 401, "unauthorized")
        self.assertError(self.upload(srv, p, "image/png", "ok", token=STRANGER), 403, "forbidden")
        self.created(self.upload(srv, p, "image/png", "x" * 32))
        self.created(self.upload(srv, p, "image/png", "Ok_9"))
        # Names are unique per domain, case-sensitive; the owner's lower-cased claim counts.
        self.assertError(self.upload(srv, p, "image/png", "Ok_9", token=OWNER), 409, "conflict")
        self.created(self.upload(srv, p, "image/png", "ok_9", token=OWNER))
        self.created(self.upload(srv, p, "image/png", "Ok_9", token=STRANGER,
                                 domain="other.org"))
        self.created(self.upload(srv, p, "image/png", "upper",
                                 domain="EXAMPLE.com"))  # the domain is lower-cased
        names = [e["name"] for e in req(srv, "GET", "/emoji/list?domain=example.com")
                 .json()["emojis"]]
        self.assertEqual(names, ["x" * 32, "Ok_9", "ok_9", "upper"])
        m = metrics(srv)
        self.assertEqual(m.value("parley_emoji_uploads_total", result="forbidden"), 1)
        self.assertEqual(m.value("parley_emoji_uploads_total", result="conflict"), 1)


class TestOrigins(EmojiCase):
    def test_origin_rules(self):
        srv = self.srv()
        p = self.img["png"]
        # Allowed: the configured app, the domain itself, its subdomains (any port).
        for i, origin in enumerate([APP_ORIGIN, "https://example.com", "https://cdn.example.com",
                                    "http://a.b.example.com:8443"]):
            r = self.upload(srv, p, "image/png", "ok%d" % i, origin=origin)
            self.assertStatus(r, 201)
            self.assertEqual(r.headers.get("Access-Control-Allow-Origin"), origin)
        eid = r.json()["id"]
        # Refused: others, and names that only end like the domain.
        for i, origin in enumerate(["https://evil.net", "https://evilexample.com",
                                    "https://example.com.evil.net", "null",
                                    "https://example.com:", "ftp://example.com"]):
            r = self.upload(srv, p, "image/png", "no%d" % i, origin=origin)
            self.assertError(r, 403, "forbidden")
            self.assertIsNone(r.headers.get("Access-Control-Allow-Origin"))
            self.assertError(req(srv, "GET", "/emoji/list?domain=" + DOMAIN,
                                 headers={"Origin": origin}), 403, "forbidden")
            self.assertError(req(srv, "GET", "/emoji/" + eid, headers={"Origin": origin}), 403,
                             "forbidden")
        # No Origin (an <img> load, curl): served.
        self.assertStatus(req(srv, "GET", "/emoji/" + eid), 200)
        ok = req(srv, "GET", "/emoji/list?domain=" + DOMAIN,
                 headers={"Origin": "https://www.example.com"})
        self.assertStatus(ok, 200)
        self.assertEqual(ok.headers.get("Access-Control-Allow-Origin"), "https://www.example.com")
        # A preflight lets the request through to its own check.
        pf = req(srv, "OPTIONS", "/emoji/" + eid,
                 headers={"Origin": "https://evil.net", "Access-Control-Request-Method": "DELETE"})
        self.assertStatus(pf, 204)
        self.assertIn("DELETE", pf.headers.get("Access-Control-Allow-Methods"))
        # Other routes still refuse foreign preflights.
        pf = req(srv, "OPTIONS", "/signaling/create-room",
                 headers={"Origin": "https://evil.net", "Access-Control-Request-Method": "POST"})
        self.assertError(pf, 403, "forbidden")


class TestDelete(EmojiCase):
    def test_delete_rights(self):
        srv = self.srv()
        p = self.img["png"]
        a = self.created(self.upload(srv, p, "image/png", "first"))
        b = self.created(self.upload(srv, p, "image/png", "second"))
        self.assertError(req(srv, "DELETE", a["url"]), 401, "unauthorized")
        self.assertError(req(srv, "DELETE", a["url"], token=STRANGER), 403, "forbidden")
        self.assertError(req(srv, "DELETE", a["url"], token=UPLOADER,
                             headers={"Origin": "https://evil.net"}), 403, "forbidden")
        self.assertStatus(req(srv, "DELETE", a["url"], token=UPLOADER), 204)
        self.assertStatus(req(srv, "DELETE", b["url"], token=OWNER), 204)  # domain owner
        self.assertError(req(srv, "DELETE", a["url"], token=UPLOADER), 404, "not_found")
        self.assertError(req(srv, "GET", a["url"]), 404, "not_found")
        self.assertEqual(req(srv, "GET", "/emoji/list?domain=" + DOMAIN).json(), {"emojis": []})
        # The name is free again.
        self.created(self.upload(srv, p, "image/png", "first"))


class TestLimits(EmojiCase):
    def test_rate_limit_per_user(self):
        srv = self.srv(PARLEY_RL_EMOJI_UPLOAD="2/3600")
        p = self.img["png"]
        self.created(self.upload(srv, p, "image/png", "one"))
        r = self.upload(srv, p, "image/png", "two")
        self.assertStatus(r, 201)
        self.assertEqual(r.headers.get("RateLimit-Remaining"), "0")
        r = self.upload(srv, p, "image/png", "three")
        self.assertError(r, 429, "rate_limited")
        self.assertTrue(int(r.headers.get("Retry-After")) > 0)
        # Another user of the domain has a budget of its own.
        self.created(self.upload(srv, p, "image/png", "three", token=OWNER))
        m = metrics(srv)
        self.assertEqual(m.value("parley_emoji_uploads_total", result="created"), 3)
        self.assertEqual(m.value("parley_rate_limited_total", scope="emoji_upload"), 1)
        self.assertEqual(m.value("parley_emoji_upload_bytes_total"), 3 * len(p))

    def test_per_domain_bound(self):
        srv = self.srv(PARLEY_EMOJI_MAX_PER_DOMAIN="2")
        p = self.img["png"]
        self.created(self.upload(srv, p, "image/png", "one"))
        self.created(self.upload(srv, p, "image/png", "two"))
        self.assertError(self.upload(srv, p, "image/png", "three"), 409, "limit_reached")
        self.created(self.upload(srv, p, "image/png", "three", token=STRANGER,
                                 domain="other.org"))


@unittest.skipUnless(TEST_STORE == "redis", "two nodes share emoji through Redis")
class TestTwoNodes(EmojiCase):
    def test_every_node_serves_every_emoji(self):
        with RedisServer() as r:
            n1 = self.srv(PARLEY_STORE=r.url, fresh_store=False)
            n2 = self.srv(PARLEY_STORE=r.url, fresh_store=False)
            for n in (n1, n2):
                wait_until(lambda n=n: req(n, "GET", "/readyz").status == 200, scaled(5))
            e = self.created(self.upload(n1, self.img["webp_anim"], "image/webp", "dance"))
            g = req(n2, "GET", e["url"])
            self.assertStatus(g, 200)
            self.assertEqual(g.body, self.img["webp_anim"])
            self.assertEqual([x["id"] for x in req(n2, "GET", "/emoji/list?domain=" + DOMAIN)
                              .json()["emojis"]], [e["id"]])
            self.assertError(self.upload(n2, self.img["png"], "image/png", "dance"), 409,
                             "conflict")
            self.assertStatus(req(n2, "DELETE", e["url"], token=UPLOADER), 204)
            self.assertError(req(n1, "GET", e["url"]), 404, "not_found")
            # Stored without a TTL.
            n1.stop()
            n2.stop()


if __name__ == "__main__":
    unittest.main()
