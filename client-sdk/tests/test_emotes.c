/* Emotes (emotes.c, message.c): the collection, the parser and the blocking loader.
 *
 *   add_json: realistic 7TV and custom emoji bodies (fields, URL resolution), later names
 *   replacing earlier ones; hostile bodies (not JSON, wrong shapes, trailing bytes, deep
 *   nesting, entries of the wrong type, missing fields, huge or forbidden names, ids and
 *   URLs, too large, more than PARLEY_EMOTES_MAX emotes)
 *   parse: exact token sequences (kind, slice of the input, emote id) for emotes at the
 *   start, middle and end, next to punctuation, repeated, case, unknown ":names:", colons
 *   that close one candidate and open the next, UTF-8 around emotes, non-ASCII spaces,
 *   7TV before custom; empty text; invalid UTF-8; 64 KiB messages full of emotes, without
 *   any, and of the shapes that would be slow for a careless scanner, each checked and
 *   timed; a 1 MiB message and one byte more
 *   emote_ids: distinct ids in first-use order, aliases of one id, the two kinds apart
 *   load: parley_emotes_load and its wrappers against a local HTTP server (/usr/bin/python3
 *   started by the test) answering the parleyd JSON shapes, a base path, a 500 and a 502 with
 *   error bodies, a bare 503, a 404, a garbage body, a body over the limit, a slow answer
 * (timeout), a refused connection, bad arguments, and the refusal on a client's SDK thread */
#include "internal.h"
#include "test.h"

#include <jansson.h>

#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- fixtures: what parleyd answers ---- */

static const char GLOBAL_JSON[] =
    "{\"emotes\":["
    "{\"id\":\"60ae958e229664e8667aea38\",\"name\":\"KEKW\","
    "\"url\":\"https://cdn.7tv.app/emote/60ae958e229664e8667aea38/1x.webp\","
    "\"animated\":false,\"width\":32,\"height\":32},"
    "{\"id\":\"60aea7074b1ea4526d2b7a70\",\"name\":\"catJAM\","
    "\"url\":\"//cdn.7tv.app/emote/60aea7074b1ea4526d2b7a70/1x.webp\","
    "\"animated\":true,\"width\":32,\"height\":32},"
    "{\"id\":\"01F6MQ33FG000FFJ97ZB8MWV52\",\"name\":\"D:\","
    "\"url\":\"https://cdn.7tv.app/emote/01F6MQ33FG000FFJ97ZB8MWV52/1x.webp\","
    "\"animated\":false,\"width\":28,\"height\":32},"
    "{\"id\":\"01GB2S4JQ8000FQKXBWNQJ4P0T\",\"name\":\"peepo\\u00c5\","
    "\"url\":\"https://cdn.7tv.app/emote/01GB2S4JQ8000FQKXBWNQJ4P0T/1x.webp\","
    "\"animated\":false,\"width\":32,\"height\":32}"
    "]}";

/* A channel's set: its own KEKW (another emote under the same name) and one more. */
static const char CHANNEL_JSON[] =
    "{\"emotes\":["
    "{\"id\":\"6129ca6ad6c9b9a0ac3f9f6a\",\"name\":\"KEKW\","
    "\"url\":\"https://cdn.7tv.app/emote/6129ca6ad6c9b9a0ac3f9f6a/1x.webp\","
    "\"animated\":true,\"width\":48,\"height\":32},"
    "{\"id\":\"61e3f6b8ee2d2e2bb1b8f3c1\",\"name\":\"Pog\","
    "\"url\":\"https://cdn.7tv.app/emote/61e3f6b8ee2d2e2bb1b8f3c1/1x.webp\","
    "\"animated\":false,\"width\":32,\"height\":32}"
    "]}";

static const char EMOJI_JSON[] =
    "{\"emojis\":["
    "{\"id\":\"Qx3pZ2nTRWu0bq1Ck9dFyA\",\"name\":\"wave\",\"url\":\"/emoji/"
    "Qx3pZ2nTRWu0bq1Ck9dFyA\","
    "\"domain\":\"example.com\",\"uploadedBy\":\"u1\",\"uploadedAt\":\"2024-05-01T10:00:00Z\","
    "\"width\":64,\"height\":64,\"animated\":false},"
    "{\"id\":\"b7G2mJqK0sVwXyZ1aBcDeF\",\"name\":\"party_parrot\","
    "\"url\":\"/emoji/b7G2mJqK0sVwXyZ1aBcDeF\",\"domain\":\"example.com\",\"uploadedBy\":\"u2\","
    "\"uploadedAt\":\"2024-05-02T10:00:00Z\",\"width\":128,\"height\":96,\"animated\":true},"
    "{\"id\":\"Zz9_-abc\",\"name\":\"ok2\",\"url\":\"https://img.example.com/ok2.png\","
    "\"domain\":\"example.com\",\"uploadedBy\":\"u1\",\"uploadedAt\":\"2024-05-03T10:00:00Z\","
    "\"width\":32,\"height\":32,\"animated\":false}"
    "]}";

#define ID_KEKW    "60ae958e229664e8667aea38"
#define ID_KEKW_CH "6129ca6ad6c9b9a0ac3f9f6a"
#define ID_CATJAM  "60aea7074b1ea4526d2b7a70"
#define ID_DCOLON  "01F6MQ33FG000FFJ97ZB8MWV52"
#define ID_PEEPO   "01GB2S4JQ8000FQKXBWNQJ4P0T"
#define ID_WAVE    "Qx3pZ2nTRWu0bq1Ck9dFyA"
#define ID_PARROT  "b7G2mJqK0sVwXyZ1aBcDeF"

/* The global set and the domain's emoji, as most cases use them. */
static parley_emotes *fixture(void)
{
    parley_emotes *e = NULL;
    if (parley_emotes_new(&e) < 0)
        return NULL;
    if (parley_emotes_add_json(e, PARLEY_EMOTE_7TV, GLOBAL_JSON, strlen(GLOBAL_JSON), NULL) != 4 ||
        parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, EMOJI_JSON, strlen(EMOJI_JSON),
                               "http://127.0.0.1:8080") != 3) {
        parley_emotes_free(e);
        return NULL;
    }
    return e;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One emote entry of a 7TV body with that name (a JSON string body, escaped by the caller). */
static char *entry_7tv(const char *id, const char *name_json)
{
    char *s = malloc(512 + strlen(name_json));
    sprintf(s, "{\"emotes\":[{\"id\":\"%s\",\"name\":%s,\"url\":\"https://x.test/a\"}]}", id,
            name_json);
    return s;
}

/* ---- add_json ---- */

static void test_add_realistic(void)
{
    parley_emotes *e = fixture();
    REQUIRE(e);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), 4);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_CUSTOM), 3);

    const parley_emote *k = parley_emotes_find(e, PARLEY_EMOTE_7TV, "KEKW", 4);
    REQUIRE(k);
    CHECK_EQ_INT(k->kind, PARLEY_EMOTE_7TV);
    CHECK_EQ_STR(k->id, ID_KEKW);
    CHECK_EQ_STR(k->name, "KEKW");
    CHECK_EQ_STR(k->url, "https://cdn.7tv.app/emote/" ID_KEKW "/1x.webp");
    CHECK_EQ_INT(k->width, 32);
    CHECK_EQ_INT(k->height, 32);
    CHECK_EQ_INT(k->animated, 0);
    /* 7TV's scheme-relative CDN URLs become https. */
    const parley_emote *c = parley_emotes_find(e, PARLEY_EMOTE_7TV, "catJAM", 6);
    REQUIRE(c);
    CHECK_EQ_STR(c->url, "https://cdn.7tv.app/emote/" ID_CATJAM "/1x.webp");
    CHECK_EQ_INT(c->animated, 1);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, "peepo\xc3\x85", 7) != NULL);
    /* The namespaces are apart, and names are exact. */
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "KEKW", 4) == NULL);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, "kekw", 4) == NULL);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, "KEK", 3) == NULL);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, NULL, 0) == NULL);
    CHECK(parley_emotes_find(NULL, PARLEY_EMOTE_7TV, "KEKW", 4) == NULL);
    CHECK_EQ_INT(parley_emotes_count(NULL, PARLEY_EMOTE_7TV), 0);

    /* Custom emoji: a relative URL is resolved against the server URL. */
    const parley_emote *w = parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "wave", 4);
    REQUIRE(w);
    CHECK_EQ_INT(w->kind, PARLEY_EMOTE_CUSTOM);
    CHECK_EQ_STR(w->id, ID_WAVE);
    CHECK_EQ_STR(w->url, "http://127.0.0.1:8080/emoji/" ID_WAVE);
    CHECK_EQ_INT(w->width, 64);
    const parley_emote *p = parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "party_parrot", 12);
    REQUIRE(p);
    CHECK_EQ_INT(p->width, 128);
    CHECK_EQ_INT(p->height, 96);
    CHECK_EQ_INT(p->animated, 1);
    const parley_emote *o = parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "ok2", 3);
    REQUIRE(o);
    CHECK_EQ_STR(o->url, "https://img.example.com/ok2.png");

    /* A channel's set after the global one: its KEKW replaces the global KEKW. */
    CHECK_EQ_INT(
        parley_emotes_add_json(e, PARLEY_EMOTE_7TV, CHANNEL_JSON, strlen(CHANNEL_JSON), NULL), 2);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), 5);
    k = parley_emotes_find(e, PARLEY_EMOTE_7TV, "KEKW", 4);
    REQUIRE(k);
    CHECK_EQ_STR(k->id, ID_KEKW_CH);
    CHECK_EQ_INT(k->width, 48);
    CHECK_EQ_INT(k->animated, 1);
    parley_emotes_free(e);

    /* A base URL with a path and trailing slashes: the server's paths go below it. */
    REQUIRE(parley_emotes_new(&e) == 0);
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, EMOJI_JSON, strlen(EMOJI_JSON),
                                        "https://chat.example.com/parley//"),
                 3);
    w = parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "wave", 4);
    REQUIRE(w);
    CHECK_EQ_STR(w->url, "https://chat.example.com/parley/emoji/" ID_WAVE);
    /* Without a base, relative URLs cannot be resolved: those entries are skipped. */
    parley_emotes_free(e);
    REQUIRE(parley_emotes_new(&e) == 0);
    CHECK_EQ_INT(
        parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, EMOJI_JSON, strlen(EMOJI_JSON), NULL), 1);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "ok2", 3) != NULL);
    /* Missing optional fields are 0; an empty list adds nothing. */
    static const char minimal[] = "{\"emotes\":[{\"id\":\"a1\",\"name\":\"Min\","
                                  "\"url\":\"https://x.test/m\",\"width\":null}]}";
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, minimal, strlen(minimal), NULL), 1);
    const parley_emote *m = parley_emotes_find(e, PARLEY_EMOTE_7TV, "Min", 3);
    REQUIRE(m);
    CHECK(m->width == 0 && m->height == 0 && m->animated == 0);
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, "{\"emotes\":[]}", 13, NULL), 0);
    parley_emotes_free(e);
    parley_emotes_free(NULL);
}

/* Duplicate names inside one body: the last one stands. */
static void test_add_duplicates(void)
{
    parley_emotes *e;
    REQUIRE(parley_emotes_new(&e) == 0);
    static const char dup[] =
        "{\"emotes\":[{\"id\":\"first\",\"name\":\"Same\",\"url\":\"https://x.test/1\"},"
        "{\"id\":\"other\",\"name\":\"Other\",\"url\":\"https://x.test/o\"},"
        "{\"id\":\"second\",\"name\":\"Same\",\"url\":\"https://x.test/2\"}]}";
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, dup, strlen(dup), NULL), 3);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), 2);
    const parley_emote *s = parley_emotes_find(e, PARLEY_EMOTE_7TV, "Same", 4);
    REQUIRE(s);
    CHECK_EQ_STR(s->id, "second");
    CHECK_EQ_STR(s->url, "https://x.test/2");
    /* Duplicate keys in an object: jansson keeps the last value. */
    static const char dupkey[] = "{\"emotes\":[{\"id\":\"k1\",\"name\":\"Dk\",\"name\":\"Dk2\","
                                 "\"url\":\"https://x.test/d\"}]}";
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, dupkey, strlen(dupkey), NULL), 1);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, "Dk2", 3) != NULL);
    parley_emotes_free(e);
}

static void test_add_hostile_bodies(void)
{
    parley_emotes *e;
    REQUIRE(parley_emotes_new(&e) == 0);
    static const char *const bad[] = {
        "",
        "<html><body>502 Bad Gateway</body></html>",
        "null",
        "[]",
        "{}",
        "{\"emotes\":{}}",
        "{\"emotes\":\"KEKW\"}",
        "{\"emotes\":null}",
        "{\"emojis\":[]}", /* the custom emoji key, for a 7TV body */
        "{\"emotes\":[]} trailing",
        "{\"emotes\":[{\"id\":\"a\",\"name\":\"A\",\"url\":\"https://x.test/a\"}",
        "{\"error\":{\"code\":\"internal\",\"message\":\"boom\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parley_emotes_add_json(e, PARLEY_EMOTE_7TV, bad[i], strlen(bad[i]), NULL);
        if (rc != PARLEY_EPROTO)
            fprintf(stderr, "body %zu: %d\n", i, rc);
        CHECK_EQ_INT(rc, PARLEY_EPROTO);
    }
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, "{\"emotes\":[]}", 13, NULL),
                 PARLEY_EPROTO);
    /* Not valid UTF-8 inside a string: jansson refuses the document. */
    static const char latin1[] =
        "{\"emotes\":[{\"id\":\"a\",\"name\":\"\xe9\",\"url\":\"https://x\"}]}";
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, latin1, strlen(latin1), NULL),
                 PARLEY_EPROTO);
    /* A NUL inside a string: jansson refuses the document (no JSON_ALLOW_NUL). */
    static const char nul[] =
        "{\"emotes\":[{\"id\":\"a\",\"name\":\"a\\u0000b\",\"url\":\"https://x\"}]}";
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, nul, strlen(nul), NULL),
                 PARLEY_EPROTO);
    /* Nesting far deeper than any answer: refused, not a crash. */
    size_t depth = 200000;
    char *deep = malloc(2 * depth + 32);
    REQUIRE(deep);
    size_t o = (size_t)sprintf(deep, "{\"emotes\":");
    for (size_t i = 0; i < depth; i++)
        deep[o++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, deep, o, NULL), PARLEY_EPROTO);
    free(deep);
    /* Over the size bound: refused before parsing. */
    size_t big = PARLEY_EMOTES_MAX_JSON + 1;
    char *huge = malloc(big);
    REQUIRE(huge);
    memset(huge, ' ', big);
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, huge, big, NULL), PARLEY_EMSGSIZE);
    free(huge);
    /* Arguments. */
    CHECK_EQ_INT(parley_emotes_add_json(NULL, PARLEY_EMOTE_7TV, "{}", 2, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_add_json(e, (parley_emote_kind)0, "{}", 2, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_add_json(e, (parley_emote_kind)3, "{}", 2, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, NULL, 0, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, EMOJI_JSON, strlen(EMOJI_JSON),
                                        "ftp://x.test"),
                 PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, EMOJI_JSON, strlen(EMOJI_JSON),
                                        "http://x.test/a b"),
                 PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_new(NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), 0);
    parley_emotes_free(e);
}

/* Entries that are malformed are skipped one by one; the good ones around them stay. */
static void test_add_hostile_entries(void)
{
    parley_emotes *e;
    REQUIRE(parley_emotes_new(&e) == 0);
    char name101[128], name100[128], url_long[2100];
    memset(name101, 'N', 101);
    name101[101] = '\0';
    memset(name100, 'M', 100);
    name100[100] = '\0';
    strcpy(url_long, "https://x.test/");
    memset(url_long + 15, 'u', 2034);
    url_long[2049] = '\0';
    char *body = malloc(16384);
    REQUIRE(body);
    snprintf(body, 16384,
             "{\"emotes\":["
             "1, \"KEKW\", null, [], true,"
             "{\"name\":\"NoId\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"noname\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"nourl\",\"name\":\"NoUrl\"},"
             "{\"id\":42,\"name\":\"NumId\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"a b\",\"name\":\"SpaceId\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"a\\\"b\",\"name\":\"QuoteId\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123X\","
             "\"name\":\"LongId\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"n1\",\"name\":7,\"url\":\"https://x.test/a\"},"
             "{\"id\":\"n2\",\"name\":\"\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"n3\",\"name\":\"%s\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"n4\",\"name\":\"two words\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"n5\",\"name\":\"tab\\there\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"n6\",\"name\":\"esc\\u001b[2J\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"n7\",\"name\":\"csi\\u009b2J\",\"url\":\"https://x.test/a\"},"
             "{\"id\":\"u1\",\"name\":\"Js\",\"url\":\"javascript:alert(1)\"},"
             "{\"id\":\"u2\",\"name\":\"File\",\"url\":\"file:///etc/passwd\"},"
             "{\"id\":\"u3\",\"name\":\"Data\",\"url\":\"data:image/png;base64,AAAA\"},"
             "{\"id\":\"u4\",\"name\":\"Rel\",\"url\":\"emoji/abc\"},"
             "{\"id\":\"u5\",\"name\":\"Sp\",\"url\":\"https://x.test/a b\"},"
             "{\"id\":\"u6\",\"name\":\"Long\",\"url\":\"%s\"},"
             "{\"id\":\"u7\",\"name\":\"Uni\",\"url\":\"https://x.test/\\u00e9\"},"
             "{\"id\":\"w1\",\"name\":\"W1\",\"url\":\"https://x.test/a\",\"width\":\"32\"},"
             "{\"id\":\"w2\",\"name\":\"W2\",\"url\":\"https://x.test/a\",\"width\":-1},"
             "{\"id\":\"w3\",\"name\":\"W3\",\"url\":\"https://x.test/a\",\"height\":65536},"
             "{\"id\":\"w4\",\"name\":\"W4\",\"url\":\"https://x.test/a\",\"width\":1.5},"
             "{\"id\":\"a1\",\"name\":\"A1\",\"url\":\"https://x.test/a\",\"animated\":\"yes\"},"
             "{\"id\":\"a2\",\"name\":\"A2\",\"url\":\"https://x.test/a\",\"animated\":1},"
             "{\"id\":\"good1\",\"name\":\"%s\",\"url\":\"https://x.test/a\",\"width\":65535},"
             "{\"id\":\"good2\",\"name\":\":)\",\"url\":\"http://x.test/b\",\"animated\":null}"
             "]}",
             name101, url_long, name100);
    /* A trap for the wrong expectation: u6's URL is exactly 2049 bytes. */
    CHECK_EQ_INT(strlen(url_long), 2049);
    int rc = parley_emotes_add_json(e, PARLEY_EMOTE_7TV, body, strlen(body), NULL);
    CHECK_EQ_INT(rc, 2);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), 2);
    const parley_emote *g = parley_emotes_find(e, PARLEY_EMOTE_7TV, name100, 100);
    REQUIRE(g);
    CHECK_EQ_STR(g->id, "good1");
    CHECK_EQ_INT(g->width, 65535);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, ":)", 2) != NULL);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, name101, 101) == NULL);
    /* A URL of 2048 bytes is still fine. */
    url_long[2048] = '\0';
    snprintf(body, 16384, "{\"emotes\":[{\"id\":\"u8\",\"name\":\"Edge\",\"url\":\"%s\"}]}",
             url_long);
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, body, strlen(body), NULL), 1);

    /* Custom emoji names: 2..32 of A-Z a-z 0-9 _, as parleyd takes them at upload. */
    snprintf(body, 16384,
             "{\"emojis\":["
             "{\"id\":\"c1\",\"name\":\"a\",\"url\":\"/emoji/c1\"},"
             "{\"id\":\"c2\",\"name\":\"has-dash\",\"url\":\"/emoji/c2\"},"
             "{\"id\":\"c3\",\"name\":\":colon:\",\"url\":\"/emoji/c3\"},"
             "{\"id\":\"c4\",\"name\":\"abcdefghijklmnopqrstuvwxyz0123456\",\"url\":\"/emoji/c4\"},"
             "{\"id\":\"c5\",\"name\":\"\\u00e9t\\u00e9\",\"url\":\"/emoji/c5\"},"
             "{\"id\":\"c6\",\"name\":\"abcdefghijklmnopqrstuvwxyz012345\",\"url\":\"/emoji/c6\"},"
             "{\"id\":\"c7\",\"name\":\"ab\",\"url\":\"/emoji/c7\"}"
             "]}");
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, body, strlen(body), "http://h"), 2);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "abcdefghijklmnopqrstuvwxyz012345", 32));
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "ab", 2));
    free(body);

    /* A 7TV name that is one of the forbidden shapes, one at a time, to be sure each is
     * refused for itself. */
    static const char *const names[] = {"\"a\\u00a0b\"", "\"a\\u2028b\"", "\"\\u0085x\""};
    static const int taken[] = {1, 1, 0}; /* NBSP and U+2028 are not ASCII whitespace */
    for (size_t i = 0; i < 3; i++) {
        char *one = entry_7tv("x1", names[i]);
        CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, one, strlen(one), NULL), taken[i]);
        free(one);
    }
    parley_emotes_free(e);
}

/* PARLEY_EMOTES_MAX emotes fit; the next one is refused, the ones before it stay. */
static void test_add_cap(void)
{
    parley_emotes *e;
    REQUIRE(parley_emotes_new(&e) == 0);
    size_t n = PARLEY_EMOTES_MAX + 1;
    size_t cap = n * 80 + 64;
    char *body = malloc(cap);
    REQUIRE(body);
    size_t o = (size_t)sprintf(body, "{\"emotes\":[");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(body + o,
                             "%s{\"id\":\"i%zu\",\"name\":\"e%zu\",\"url\":\"https://x/\"}",
                             i ? "," : "", i, i);
    o += (size_t)sprintf(body + o, "]}");
    double t0 = now_s();
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, body, o, NULL), PARLEY_EMSGSIZE);
    fprintf(stderr, "  %zu emotes in %.0f ms\n", n, (now_s() - t0) * 1000);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), PARLEY_EMOTES_MAX);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, "e99999", 6) != NULL);
    CHECK(parley_emotes_find(e, PARLEY_EMOTE_7TV, "e100000", 7) == NULL);
    /* Full: a replacement still works (it adds nothing), a new name does not. */
    static const char repl[] =
        "{\"emotes\":[{\"id\":\"new\",\"name\":\"e5\",\"url\":\"https://y/\"}]}";
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, repl, strlen(repl), NULL), 1);
    CHECK_EQ_STR(parley_emotes_find(e, PARLEY_EMOTE_7TV, "e5", 2)->id, "new");
    static const char more[] =
        "{\"emojis\":[{\"id\":\"c\",\"name\":\"cc\",\"url\":\"https://y/\"}]}";
    CHECK_EQ_INT(parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, more, strlen(more), NULL),
                 PARLEY_EMSGSIZE);
    free(body);
    parley_emotes_free(e);
}

/* ---- parse ---- */

typedef struct {
    parley_token_kind kind;
    const char *slice;
    const char *id; /* the emote's id; NULL for text */
} want_t;

#define T(s)                                                                                       \
    {                                                                                              \
        PARLEY_TOKEN_TEXT, s, NULL                                                                 \
    }
#define E(s, id)                                                                                   \
    {                                                                                              \
        PARLEY_TOKEN_EMOTE, s, id                                                                  \
    }
#define C(s, id)                                                                                   \
    {                                                                                              \
        PARLEY_TOKEN_CUSTOM, s, id                                                                 \
    }

static void dump_tokens(const parley_token *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "    [%zu] kind %d \"%.*s\" %s\n", i, (int)t[i].kind, (int)t[i].len,
                t[i].text, t[i].emote ? t[i].emote->id : "-");
}

/* Checks what every parse must hold — the tokens cover the text in order, slices of it,
 * no two text tokens in a row, an emote exactly where the kind says — and then the exact
 * sequence wanted (nw tokens). */
static int tokens_are(const parley_emotes *e, const char *text, size_t len, const want_t *w,
                      size_t nw, int line)
{
    parley_token *t = NULL;
    size_t n = 99;
    int rc = parley_message_parse(e, text, len, &t, &n);
    int ok = rc == 0 && n == nw;
    size_t off = 0;
    for (size_t i = 0; ok && i < n; i++) {
        ok = t[i].text == text + off && t[i].len > 0 && t[i].kind == w[i].kind &&
             t[i].len == strlen(w[i].slice) && memcmp(t[i].text, w[i].slice, t[i].len) == 0 &&
             (t[i].kind == PARLEY_TOKEN_TEXT) == (t[i].emote == NULL) &&
             !(i && t[i].kind == PARLEY_TOKEN_TEXT && t[i - 1].kind == PARLEY_TOKEN_TEXT);
        if (ok && t[i].emote) {
            ok = strcmp(t[i].emote->id, w[i].id) == 0 && (int)t[i].emote->kind == (int)t[i].kind;
            /* The slice names the emote: the word itself, or ":name:". */
            if (t[i].kind == PARLEY_TOKEN_EMOTE)
                ok = ok && strlen(t[i].emote->name) == t[i].len &&
                     memcmp(t[i].emote->name, t[i].text, t[i].len) == 0;
            else
                ok = ok && strlen(t[i].emote->name) + 2 == t[i].len &&
                     memcmp(t[i].emote->name, t[i].text + 1, t[i].len - 2) == 0;
        }
        off += t[i].len;
    }
    ok = ok && off == len;
    if (!ok) {
        fprintf(stderr, "  line %d: \"%.*s\": rc %d, %zu tokens (want %zu):\n", line, (int)len,
                text, rc, n, nw);
        dump_tokens(t, rc == 0 ? n : 0);
    }
    parley_tokens_free(t);
    return ok;
}

#define EXPECT(e, text, ...)                                                                       \
    do {                                                                                           \
        const want_t w_[] = {__VA_ARGS__};                                                         \
        CHECK(tokens_are(e, text, strlen(text), w_, sizeof w_ / sizeof w_[0], __LINE__));          \
    } while (0)

static void test_parse_7tv(void)
{
    parley_emotes *e = fixture();
    REQUIRE(e);
    /* Alone, at the start, in the middle, at the end. */
    EXPECT(e, "KEKW", E("KEKW", ID_KEKW));
    EXPECT(e, "KEKW that was good", E("KEKW", ID_KEKW), T(" that was good"));
    EXPECT(e, "that KEKW was", T("that "), E("KEKW", ID_KEKW), T(" was"));
    EXPECT(e, "that was good KEKW", T("that was good "), E("KEKW", ID_KEKW));
    EXPECT(e, "  KEKW  ", T("  "), E("KEKW", ID_KEKW), T("  "));
    /* Next to punctuation a word is not the emote (as 7TV and Twitch clients do). */
    EXPECT(e, "KEKW, nice", T("KEKW, nice"));
    EXPECT(e, "lol (KEKW)", T("lol (KEKW)"));
    EXPECT(e, "KEKW!", T("KEKW!"));
    EXPECT(e, "\"KEKW\"", T("\"KEKW\""));
    /* Exact, case-sensitive names. */
    EXPECT(e, "kekw KEKw KEK KEKWW", T("kekw KEKw KEK KEKWW"));
    /* Repeated: a token for each use; glued together they are one word, not the emote. */
    EXPECT(e, "KEKW KEKW KEKW", E("KEKW", ID_KEKW), T(" "), E("KEKW", ID_KEKW), T(" "),
           E("KEKW", ID_KEKW));
    EXPECT(e, "KEKWKEKW", T("KEKWKEKW"));
    EXPECT(e, "catJAM KEKW", E("catJAM", ID_CATJAM), T(" "), E("KEKW", ID_KEKW));
    /* Every ASCII whitespace separates words; NBSP and other Unicode spaces do not. */
    EXPECT(e, "KEKW\tKEKW\nKEKW\r\nx\vKEKW\f", E("KEKW", ID_KEKW), T("\t"), E("KEKW", ID_KEKW),
           T("\n"), E("KEKW", ID_KEKW), T("\r\nx\v"), E("KEKW", ID_KEKW), T("\f"));
    EXPECT(e, "KEKW\xc2\xa0x", T("KEKW\xc2\xa0x"));
    EXPECT(e, "a\xe3\x80\x80KEKW", T("a\xe3\x80\x80KEKW"));
    /* Names with punctuation or beyond ASCII are whole words too. */
    EXPECT(e, "D: oh no", E("D:", ID_DCOLON), T(" oh no"));
    EXPECT(e, "D:D:", T("D:D:"));
    EXPECT(e, "hey peepo\xc3\x85 there", T("hey "), E("peepo\xc3\x85", ID_PEEPO), T(" there"));
    EXPECT(e, "peepo\xc3\x85\xc3\x85", T("peepo\xc3\x85\xc3\x85"));
    /* UTF-8 around emotes. */
    EXPECT(e, "\xe6\x97\xa5\xe6\x9c\xac KEKW \xf0\x9f\x98\x80", T("\xe6\x97\xa5\xe6\x9c\xac "),
           E("KEKW", ID_KEKW), T(" \xf0\x9f\x98\x80"));
    EXPECT(e, "\xf0\x9f\x98\x80KEKW", T("\xf0\x9f\x98\x80KEKW"));
    /* No emotes loaded, or no collection at all: one text token. */
    EXPECT(NULL, "KEKW :wave:", T("KEKW :wave:"));
    parley_emotes *empty;
    REQUIRE(parley_emotes_new(&empty) == 0);
    EXPECT(empty, "KEKW :wave:", T("KEKW :wave:"));
    parley_emotes_free(empty);
    parley_emotes_free(e);
}

static void test_parse_custom(void)
{
    parley_emotes *e = fixture();
    REQUIRE(e);
    EXPECT(e, ":wave:", C(":wave:", ID_WAVE));
    EXPECT(e, "hi :wave: all", T("hi "), C(":wave:", ID_WAVE), T(" all"));
    /* Anywhere: next to letters and punctuation. */
    EXPECT(e, "hi:wave:!", T("hi"), C(":wave:", ID_WAVE), T("!"));
    EXPECT(e, "(:wave:)", T("("), C(":wave:", ID_WAVE), T(")"));
    EXPECT(e, ":wave::party_parrot:", C(":wave:", ID_WAVE), C(":party_parrot:", ID_PARROT));
    EXPECT(e, ":wave: :wave:", C(":wave:", ID_WAVE), T(" "), C(":wave:", ID_WAVE));
    EXPECT(e, "::wave::", T(":"), C(":wave:", ID_WAVE), T(":"));
    /* Unknown names stay text, and their closing colon may open the next one. */
    EXPECT(e, ":unknown:", T(":unknown:"));
    EXPECT(e, "a:x:wave:", T("a:x"), C(":wave:", ID_WAVE));
    EXPECT(e, ":nope:wave:", T(":nope"), C(":wave:", ID_WAVE));
    EXPECT(e, "at 10:30:45 ok", T("at 10:30:45 ok"));
    /* Case, incomplete forms, characters outside names, spaces inside. */
    EXPECT(e, ":WAVE: :Wave:", T(":WAVE: :Wave:"));
    EXPECT(e, ":wave :wave wave: ::", T(":wave :wave wave: ::"));
    EXPECT(e, ":wa ve: :wa-ve: :w\xc3\xa4ve:", T(":wa ve: :wa-ve: :w\xc3\xa4ve:"));
    EXPECT(e, "http://example.com/:wave:", T("http://example.com/"), C(":wave:", ID_WAVE));
    /* A name of 33 characters is not a name; the scan goes on after it. */
    EXPECT(e, ":abcdefghijklmnopqrstuvwxyz0123456:wave:", T(":abcdefghijklmnopqrstuvwxyz0123456"),
           C(":wave:", ID_WAVE));
    /* UTF-8 right next to the colons. */
    EXPECT(e, "\xe6\x97\xa5:wave:\xe8\xaa\x9e", T("\xe6\x97\xa5"), C(":wave:", ID_WAVE),
           T("\xe8\xaa\x9e"));
    /* Both kinds in one text. */
    EXPECT(e, "KEKW:wave: KEKW :party_parrot:!", T("KEKW"), C(":wave:", ID_WAVE), T(" "),
           E("KEKW", ID_KEKW), T(" "), C(":party_parrot:", ID_PARROT), T("!"));
    parley_emotes_free(e);

    /* A word that is exactly a 7TV emote's name is that emote, before any ":name:" in it. */
    REQUIRE(parley_emotes_new(&e) == 0);
    static const char tv[] =
        "{\"emotes\":[{\"id\":\"tvwave\",\"name\":\":wave:\",\"url\":\"https://x/1\"}]}";
    static const char cu[] =
        "{\"emojis\":[{\"id\":\"cuwave\",\"name\":\"wave\",\"url\":\"https://x/2\"}]}";
    REQUIRE(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, tv, strlen(tv), NULL) == 1);
    REQUIRE(parley_emotes_add_json(e, PARLEY_EMOTE_CUSTOM, cu, strlen(cu), NULL) == 1);
    EXPECT(e, ":wave: x:wave:", E(":wave:", "tvwave"), T(" x"), C(":wave:", "cuwave"));
    parley_emotes_free(e);
}

static void test_parse_edges(void)
{
    parley_emotes *e = fixture();
    REQUIRE(e);
    parley_token *t = (parley_token *)1;
    size_t n = 5;
    /* Empty text: no tokens, nothing to free. */
    CHECK_EQ_INT(parley_message_parse(e, "", 0, &t, &n), 0);
    CHECK(t == NULL && n == 0);
    CHECK_EQ_INT(parley_message_parse(e, NULL, 0, &t, &n), 0);
    CHECK(t == NULL && n == 0);
    parley_tokens_free(NULL);
    /* Whitespace only. */
    EXPECT(e, " \t\n", T(" \t\n"));
    /* A NUL byte is text like any other (len says where the text ends). */
    static const char nul[] = "KEKW\0 KEKW";
    CHECK_EQ_INT(parley_message_parse(e, nul, sizeof nul - 1, &t, &n), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK(t[0].kind == PARLEY_TOKEN_TEXT && t[0].len == 6);
        CHECK(t[1].kind == PARLEY_TOKEN_EMOTE && t[1].text == nul + 6);
    }
    parley_tokens_free(t);
    /* Invalid UTF-8: refused, *out NULL. */
    static const char *const invalid[] = {
        "\xff",
        "\x80",
        "KEKW \xc0\xaf",
        "\xc1\xbf",
        "\xe0\x80\x80",
        "\xed\xa0\x80",
        "\xe2\x82",
        "\xe2\x28\xa1",
        "\xf0\x8f\xbf\xbf",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "ok \xf0\x9f\x98",
        ":wave:\xfe",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        t = (parley_token *)1;
        int rc = parley_message_parse(e, invalid[i], strlen(invalid[i]), &t, &n);
        if (rc != PARLEY_EINVAL)
            fprintf(stderr, "  invalid[%zu] gave %d\n", i, rc);
        CHECK_EQ_INT(rc, PARLEY_EINVAL);
        CHECK(t == NULL && n == 0);
    }
    /* The largest valid sequences of each length are fine. */
    EXPECT(e, "\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf \xed\x9f\xbf",
           T("\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf \xed\x9f\xbf"));
    /* Arguments. */
    CHECK_EQ_INT(parley_message_parse(e, "x", 1, NULL, &n), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_message_parse(e, "x", 1, &t, NULL), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_message_parse(e, NULL, 3, &t, &n), PARLEY_EINVAL);
    parley_emotes_free(e);
}

/* Builds a text of exactly len bytes by repeating unit (the last copy cut at a character
 * boundary: units are ASCII here). */
static char *repeat(const char *unit, size_t len)
{
    char *s = malloc(len + 1);
    size_t u = strlen(unit);
    for (size_t i = 0; i < len; i++)
        s[i] = unit[i % u];
    s[len] = '\0';
    return s;
}

/* Parses text; returns the milliseconds it took, with the counts of each kind. */
static double timed_parse(const parley_emotes *e, const char *text, size_t len, size_t counts[3],
                          int *rc)
{
    parley_token *t;
    size_t n;
    double t0 = now_s();
    *rc = parley_message_parse(e, text, len, &t, &n);
    double ms = (now_s() - t0) * 1000;
    counts[0] = counts[1] = counts[2] = 0;
    size_t covered = 0;
    for (size_t i = 0; *rc == 0 && i < n; i++) {
        counts[t[i].kind]++;
        covered += t[i].len;
    }
    if (*rc == 0 && covered != len)
        *rc = -100;
    parley_tokens_free(t);
    return ms;
}

/* 64 KiB messages: full of emotes, and with none, both exact and fast; and the shapes that
 * would cost a careless scanner quadratic time. The bound (300 ms for 64 KiB) is some
 * hundred times what a linear parse takes even under ASan, and far below what a quadratic
 * one would. */
static void test_parse_64k(void)
{
    parley_emotes *e = fixture();
    REQUIRE(e);
    const size_t len = 65536;
    const double bound_ms = 300;
    size_t k[3];
    int rc;
    double ms;

    /* "KEKW :wave: " is 12 bytes: 5461 whole units, then "KEKW" (4 bytes). */
    char *full = repeat("KEKW :wave: ", len);
    ms = timed_parse(e, full, len, k, &rc);
    fprintf(stderr, "  64 KiB of emotes: %.2f ms\n", ms);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(k[PARLEY_TOKEN_EMOTE], 5462);
    CHECK_EQ_INT(k[PARLEY_TOKEN_CUSTOM], 5461);
    CHECK_EQ_INT(k[PARLEY_TOKEN_TEXT], 2 * 5461);
    CHECK(ms < bound_ms);
    /* The exact sequence, token by token. */
    parley_token *t;
    size_t n;
    REQUIRE(parley_message_parse(e, full, len, &t, &n) == 0);
    CHECK_EQ_INT(n, 4 * 5461 + 1);
    int exact = 1;
    for (size_t i = 0; i < n && exact; i++) {
        static const char *const slices[] = {"KEKW", " ", ":wave:", " "};
        const char *want = slices[i % 4];
        exact = t[i].len == strlen(want) && memcmp(t[i].text, want, t[i].len) == 0 &&
                t[i].text == full + (i / 4) * 12 + (size_t[]){0, 4, 5, 11}[i % 4] &&
                (i % 2 ? t[i].emote == NULL
                       : strcmp(t[i].emote->id, i % 4 == 0 ? ID_KEKW : ID_WAVE) == 0);
        if (!exact)
            fprintf(stderr, "  token %zu differs\n", i);
    }
    CHECK(exact);
    parley_tokens_free(t);
    free(full);

    /* One word of emotes only: 10922 of ":wave:" glued together, then "KEKW" (text: the
     * word is not a 7TV name, while custom emoji count anywhere). */
    size_t units = (len - 4) / 6, dlen = units * 6 + 4;
    char *dense = repeat(":wave:", dlen);
    memcpy(dense + units * 6, "KEKW", 4);
    ms = timed_parse(e, dense, dlen, k, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(k[PARLEY_TOKEN_CUSTOM], 10922);
    CHECK_EQ_INT(k[PARLEY_TOKEN_TEXT], 1);
    CHECK_EQ_INT(k[PARLEY_TOKEN_EMOTE], 0);
    CHECK(ms < bound_ms);
    free(dense);

    /* No emote at all: exactly one text token. */
    char *prose = repeat("The quick brown fox: jumps over the lazy dog, 10:30 KEK. ", len);
    ms = timed_parse(e, prose, len, k, &rc);
    fprintf(stderr, "  64 KiB of prose: %.2f ms\n", ms);
    CHECK_EQ_INT(rc, 0);
    CHECK(k[0] == 1 && k[1] == 0 && k[2] == 0);
    CHECK(ms < bound_ms);
    free(prose);

    /* Shapes that hurt a naive scanner: one 64 KiB word, all colons, unknown names of the
     * longest length back to back, a word per byte, and a long word ending in an emote. */
    static const char *const hostile[] = {
        "KEKW", ":", ":abcdefghijklmnopqrstuvwxyz012345", "a ", ":x", "ab:",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char *h = repeat(hostile[i], len);
        ms = timed_parse(e, h, len, k, &rc);
        CHECK_EQ_INT(rc, 0);
        CHECK(k[1] == 0 && k[2] == 0);
        if (ms >= bound_ms)
            fprintf(stderr, "  hostile \"%s\": %.1f ms\n", hostile[i], ms);
        CHECK(ms < bound_ms);
        free(h);
    }
    char *tail = repeat("x", len);
    memcpy(tail + len - 6, ":wave:", 6);
    ms = timed_parse(e, tail, len, k, &rc);
    CHECK(rc == 0 && k[0] == 1 && k[2] == 1 && ms < bound_ms);
    free(tail);

    /* The largest text taken, and one byte more. */
    size_t max = PARLEY_MESSAGE_MAX_TEXT;
    char *big = repeat("KEKW :wave: ", max + 1);
    ms = timed_parse(e, big, max, k, &rc);
    fprintf(stderr, "  1 MiB of emotes: %.2f ms\n", ms);
    CHECK_EQ_INT(rc, 0);
    CHECK(ms < 16 * bound_ms);
    CHECK_EQ_INT(parley_message_parse(e, big, max + 1, &t, &n), PARLEY_EMSGSIZE);
    free(big);
    parley_emotes_free(e);
}

/* ---- emote ids ---- */

static void test_emote_ids(void)
{
    parley_emotes *e = fixture();
    REQUIRE(e);
    /* An alias: another name for the catJAM emote (7TV sets may rename emotes). */
    static const char alias[] = "{\"emotes\":[{\"id\":\"" ID_CATJAM "\",\"name\":\"jam\","
                                "\"url\":\"https://x/j\"},{\"id\":\"" ID_WAVE
                                "\",\"name\":\"sameid\",\"url\":\"https://x/s\"}]}";
    REQUIRE(parley_emotes_add_json(e, PARLEY_EMOTE_7TV, alias, strlen(alias), NULL) == 2);
    parley_emote_ids ids;
    static const char text[] = "jam KEKW :wave: hi catJAM KEKW :party_parrot: :wave: KEKW, "
                               ":nope: sameid :wave:";
    REQUIRE(parley_message_emote_ids(e, text, strlen(text), &ids) == 0);
    CHECK_EQ_INT(ids.n_emote_ids, 3);
    if (ids.n_emote_ids == 3) {
        CHECK_EQ_STR(ids.emote_ids[0], ID_CATJAM);
        CHECK_EQ_STR(ids.emote_ids[1], ID_KEKW);
        CHECK_EQ_STR(ids.emote_ids[2], ID_WAVE); /* the 7TV "sameid": the kinds are apart */
    }
    CHECK_EQ_INT(ids.n_custom_emoji_ids, 2);
    if (ids.n_custom_emoji_ids == 2) {
        CHECK_EQ_STR(ids.custom_emoji_ids[0], ID_WAVE);
        CHECK_EQ_STR(ids.custom_emoji_ids[1], ID_PARROT);
    }
    parley_emote_ids_free(&ids);
    CHECK(ids.emote_ids == NULL && ids.n_emote_ids == 0 && ids.custom_emoji_ids == NULL);
    parley_emote_ids_free(&ids); /* twice is fine */
    parley_emote_ids_free(NULL);

    /* Custom only; none at all; invalid text. */
    REQUIRE(parley_message_emote_ids(e, ":wave::wave:", 12, &ids) == 0);
    CHECK(ids.n_emote_ids == 0 && ids.n_custom_emoji_ids == 1);
    CHECK_EQ_STR(ids.n_custom_emoji_ids ? ids.custom_emoji_ids[0] : NULL, ID_WAVE);
    parley_emote_ids_free(&ids);
    REQUIRE(parley_message_emote_ids(e, "plain text", 10, &ids) == 0);
    CHECK(ids.n_emote_ids == 0 && ids.n_custom_emoji_ids == 0 && ids.emote_ids == NULL);
    parley_emote_ids_free(&ids);
    CHECK_EQ_INT(parley_message_emote_ids(e, "\xff KEKW", 6, &ids), PARLEY_EINVAL);
    CHECK(ids.n_emote_ids == 0 && ids.emote_ids == NULL);
    CHECK_EQ_INT(parley_message_emote_ids(e, "x", 1, NULL), PARLEY_EINVAL);

    /* Many distinct emotes, each used many times: order of first use, each once. */
    parley_emotes *many;
    REQUIRE(parley_emotes_new(&many) == 0);
    char *body = malloc(2000 * 80), *msg = malloc(2000 * 16 * 3);
    REQUIRE(body && msg);
    size_t o = (size_t)sprintf(body, "{\"emotes\":[");
    for (int i = 0; i < 2000; i++)
        o +=
            (size_t)sprintf(body + o, "%s{\"id\":\"id%d\",\"name\":\"E%d\",\"url\":\"https://x/\"}",
                            i ? "," : "", i, i);
    sprintf(body + o, "]}");
    REQUIRE(parley_emotes_add_json(many, PARLEY_EMOTE_7TV, body, strlen(body), NULL) == 2000);
    size_t m = 0;
    for (int round = 0; round < 3; round++)
        for (int i = 1999; i >= 0; i--)
            m += (size_t)sprintf(msg + m, "E%d ", (i * 7 + round) % 2000);
    REQUIRE(parley_message_emote_ids(many, msg, m, &ids) == 0);
    CHECK_EQ_INT(ids.n_emote_ids, 2000);
    int order = ids.n_emote_ids == 2000;
    for (int i = 1999, j = 0; order && i >= 0; i--, j++) {
        char want[16];
        sprintf(want, "id%d", (i * 7) % 2000);
        order = strcmp(ids.emote_ids[j], want) == 0;
    }
    CHECK(order);
    parley_emote_ids_free(&ids);
    free(body);
    free(msg);
    parley_emotes_free(many);
    parley_emotes_free(e);
}

/* ---- load: a local HTTP server ---- */

/* The server: routes from a JSON file (path with query → [status, body]), plus /slow
 * (answers after 3 s) and /huge (a 17 MiB body). Any path may come below /base. Prints its
 * port, then serves until killed. */
static const char SERVER_PY[] =
    "import http.server, json, sys, time\n"
    "routes = json.load(open(sys.argv[1]))\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def answer(self, status, body):\n"
    "        body = body.encode() if isinstance(body, str) else body\n"
    "        self.send_response(status)\n"
    "        self.send_header('Content-Type', 'application/json')\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.send_header('Connection', 'close')\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def do_GET(self):\n"
    "        p = self.path[5:] if self.path.startswith('/base/') else self.path\n"
    "        if p.endswith('/slow'):\n"
    "            time.sleep(3)\n"
    "            return self.answer(200, '{\"emotes\":[]}')\n"
    "        if p.endswith('/huge'):\n"
    "            return self.answer(200, b'{\"emotes\":[' + b' ' * (17 << 20) + b']}')\n"
    "        status, body = routes.get(p, [404, '{\"error\":{\"code\":\"not_found\","
    "\"message\":\"no route\"}}'])\n"
    "        self.answer(status, body)\n"
    "class S(http.server.ThreadingHTTPServer):\n"
    "    daemon_threads = True\n"
    "    def handle_error(self, request, address):\n"
    "        pass  # a client that gave up (timeout, body too large) is expected\n"
    "srv = S(('127.0.0.1', 0), H)\n"
    "print(srv.server_address[1], flush=True)\n"
    "srv.serve_forever()\n";

static struct {
    pid_t pid;
    int port;
    char routes[64];
    char url[64];
} http_srv;

static int start_http(void)
{
    snprintf(http_srv.routes, sizeof http_srv.routes, "/tmp/parley-emotes-XXXXXX");
    int fd = mkstemp(http_srv.routes);
    if (fd < 0)
        return -1;
    close(fd);
    json_t *r = json_pack(
        "{s:[i,s], s:[i,s], s:[i,s], s:[i,s], s:[i,s], s:[i,s], s:[i,s], s:[i,s], s:[i,s]}",
        "/emotes/7tv/global", 200, GLOBAL_JSON, "/emotes/7tv/users/twitch/12345", 200, CHANNEL_JSON,
        "/emotes/7tv/emote-sets/01SETID", 200, CHANNEL_JSON, "/emoji/list?domain=example.com", 200,
        EMOJI_JSON, "/emotes/7tv/emote-sets/err500", 500,
        "{\"error\":{\"code\":\"internal\",\"message\":\"boom\"}}", "/emotes/7tv/emote-sets/err502",
        502, "{\"error\":{\"code\":\"upstream_unavailable\",\"message\":\"7tv down\"}}",
        "/emotes/7tv/emote-sets/bare503", 503, "", "/emotes/7tv/emote-sets/garbage", 200,
        "<html>not json</html>", "/emotes/7tv/emote-sets/empty", 200, "");
    if (!r || json_dump_file(r, http_srv.routes, 0) != 0) {
        json_decref(r);
        return -1;
    }
    json_decref(r);
    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl("/usr/bin/python3", "python3", "-c", SERVER_PY, http_srv.routes, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }
    http_srv.pid = pid;
    char line[32] = "";
    FILE *f = fdopen(pfd[0], "r");
    if (!f || !fgets(line, sizeof line, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    http_srv.port = atoi(line);
    snprintf(http_srv.url, sizeof http_srv.url, "http://127.0.0.1:%d", http_srv.port);
    return http_srv.port > 0 ? 0 : -1;
}

static void stop_http(void)
{
    if (http_srv.pid > 0) {
        kill(http_srv.pid, SIGTERM);
        waitpid(http_srv.pid, NULL, 0);
        http_srv.pid = 0;
    }
    if (http_srv.routes[0])
        unlink(http_srv.routes);
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t al = sizeof a;
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

static void test_load(void)
{
    REQUIRE(http_srv.port > 0);
    const char *url = http_srv.url;
    parley_emotes *e;
    REQUIRE(parley_emotes_new(&e) == 0);
    /* The global set, then a channel's set over it. */
    CHECK_EQ_INT(parley_emotes_load_7tv_global(e, url, 5000), 4);
    CHECK_EQ_STR(parley_emotes_find(e, PARLEY_EMOTE_7TV, "KEKW", 4)->id, ID_KEKW);
    CHECK_EQ_INT(parley_emotes_load_7tv_user(e, url, "twitch", "12345", 5000), 2);
    const parley_emote *k = parley_emotes_find(e, PARLEY_EMOTE_7TV, "KEKW", 4);
    REQUIRE(k);
    CHECK_EQ_STR(k->id, ID_KEKW_CH);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), 5);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "01SETID", 5000), 2);
    /* The domain's custom emoji: their relative URLs point at the server. */
    CHECK_EQ_INT(parley_emotes_load_custom(e, url, "example.com", 5000), 3);
    const parley_emote *w = parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "wave", 4);
    REQUIRE(w);
    char want[128];
    snprintf(want, sizeof want, "%s/emoji/%s", url, ID_WAVE);
    CHECK_EQ_STR(w->url, want);
    /* The generic call, the same route. */
    CHECK_EQ_INT(parley_emotes_load(e, url, "/emotes/7tv/global", PARLEY_EMOTE_7TV, 0), 4);
    parley_emotes_free(e);

    /* A server URL with a base path: every path goes below it, URLs too. */
    REQUIRE(parley_emotes_new(&e) == 0);
    char based[96];
    snprintf(based, sizeof based, "%s/base/", url);
    CHECK_EQ_INT(parley_emotes_load_custom(e, based, "example.com", 5000), 3);
    w = parley_emotes_find(e, PARLEY_EMOTE_CUSTOM, "wave", 4);
    snprintf(want, sizeof want, "%s/base/emoji/%s", url, ID_WAVE);
    CHECK_EQ_STR(w ? w->url : NULL, want);

    /* Errors: nothing is added. */
    size_t before = parley_emotes_count(e, PARLEY_EMOTE_7TV);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "err500", 5000), PARLEY_ESRV_INTERNAL);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "err502", 5000),
                 PARLEY_ESRV_UPSTREAM_UNAVAILABLE);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "bare503", 5000),
                 PARLEY_ESRV_STORE_UNAVAILABLE);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "missing", 5000), PARLEY_ESRV_NOT_FOUND);
    CHECK_EQ_INT(parley_emotes_load_7tv_user(e, url, "kick", "1", 5000), PARLEY_ESRV_NOT_FOUND);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "garbage", 5000), PARLEY_EPROTO);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "empty", 5000), PARLEY_EPROTO);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "huge", 20000), PARLEY_EPROTO);
    CHECK_EQ_INT(parley_emotes_count(e, PARLEY_EMOTE_7TV), before);
    /* A slow answer: the timeout, and soon after it. */
    double t0 = now_s();
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "slow", 300), PARLEY_ETIMEDOUT);
    double took = now_s() - t0;
    CHECK(took >= 0.25 && took < 2.0);
    /* Nobody listening. */
    char refused[64];
    snprintf(refused, sizeof refused, "http://127.0.0.1:%d", closed_port());
    CHECK_EQ_INT(parley_emotes_load_7tv_global(e, refused, 2000), PARLEY_ENETWORK);

    /* Arguments. */
    CHECK_EQ_INT(parley_emotes_load(NULL, url, "/x", PARLEY_EMOTE_7TV, 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load(e, NULL, "/x", PARLEY_EMOTE_7TV, 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load(e, url, "x", PARLEY_EMOTE_7TV, 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load(e, url, "/a b", PARLEY_EMOTE_7TV, 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load(e, url, "/a\r\nX: y", PARLEY_EMOTE_7TV, 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load(e, url, "/x", (parley_emote_kind)9, 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load(e, "https://127.0.0.1", "/x", PARLEY_EMOTE_7TV, 0),
                 PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load_7tv_user(e, url, "Twitch", "1", 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load_7tv_user(e, url, "twitch", "1/../x", 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load_7tv_user(e, url, "", "1", 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load_7tv_set(e, url, "a?b", 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load_custom(e, url, "a.com&domain=b.com", 0), PARLEY_EINVAL);
    CHECK_EQ_INT(parley_emotes_load_custom(e, url, "", 0), PARLEY_EINVAL);
    parley_emotes_free(e);
}

/* On a client's SDK thread the blocking load is refused (it would stall that client). */
typedef struct {
    parley_emotes *e;
    int rc;
} on_thread_t;

static void load_on_sdk_thread(parley_client *c, void *arg)
{
    on_thread_t *a = arg;
    a->rc = parley_emotes_load_7tv_global(a->e, http_srv.url, 1000);
}

static void test_load_refused_on_sdk_thread(void)
{
    REQUIRE(http_srv.port > 0);
    parley_config cfg;
    parley_config_init(&cfg);
    cfg.server_url = http_srv.url;
    cfg.log_level = 0;
    parley_client *c;
    REQUIRE(parley_client_new(&cfg, NULL, NULL, &c) == 0);
    on_thread_t a = {NULL, 1};
    REQUIRE(parley_emotes_new(&a.e) == 0);
    CHECK_EQ_INT(pl__test_call(c, load_on_sdk_thread, &a), 0);
    CHECK_EQ_INT(a.rc, PARLEY_ESTATE);
    CHECK_EQ_INT(parley_emotes_count(a.e, PARLEY_EMOTE_7TV), 0);
    parley_client_free(c);
    /* The same call from this thread works. */
    CHECK_EQ_INT(parley_emotes_load_7tv_global(a.e, http_srv.url, 5000), 4);
    parley_emotes_free(a.e);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(test_add_realistic);
    RUN(test_add_duplicates);
    RUN(test_add_hostile_bodies);
    RUN(test_add_hostile_entries);
    RUN(test_add_cap);
    RUN(test_parse_7tv);
    RUN(test_parse_custom);
    RUN(test_parse_edges);
    RUN(test_parse_64k);
    RUN(test_emote_ids);
    if (start_http() != 0)
        fprintf(stderr, "cannot start the HTTP server (/usr/bin/python3)\n");
    RUN(test_load);
    RUN(test_load_refused_on_sdk_thread);
    stop_http();
    TEST_MAIN();
}
