/* Unit tests for common/json.c, always against jansson itself: for every input, both
 * parsers must accept or both refuse; accepted trees must be equal (json_equal, and our own
 * walk that also checks key order and the exact bits of reals); and pl_json_dump must write
 * exactly what json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) returns.
 *
 * Sections: a table of hand-written cases for every rule, nesting-depth limits, dumps of
 * built values jansson's parser cannot produce, error reports, a differential fuzz loop
 * (fixed seed; PL_JSON_FUZZ_ITERS overrides the 200,000 iterations, e.g. for valgrind) and
 * a benchmark that prints ns per call next to jansson's and asserts nothing. */
#include "test.h"

#include "common/error.h"
#include "common/json.h"
#include "common/str.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <time.h>

#define ANY  (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
#define OBJS JSON_REJECT_DUPLICATES

/* Totals over every comparison, printed at the end so a run shows what it covered. */
static long n_nul_quirk, n_compared, n_accepted, n_err_code_same, n_err_pos_same,
    n_err_line_col_same;

/* ---------------------------------------------------------------------------------------- */
/* Comparison helpers                                                                       */

/* Like json_equal, but also demands the same key order and bit-identical reals (json_equal
 * would call 0.0 and -0.0 equal). */
static int same_tree(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        while (ia && ib) {
            size_t la = json_object_iter_key_len(ia), lb = json_object_iter_key_len(ib);
            if (la != lb || memcmp(json_object_iter_key(ia), json_object_iter_key(ib), la))
                return 0;
            if (!same_tree(json_object_iter_value(ia), json_object_iter_value(ib)))
                return 0;
            ia = json_object_iter_next((json_t *)a, ia);
            ib = json_object_iter_next((json_t *)b, ib);
        }
        return !ia && !ib;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_tree(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    default:
        return 1;
    }
}

static void show(const char *what, const char *buf, size_t len)
{
    fprintf(stderr, "    %s (%zu bytes): \"", what, len);
    for (size_t i = 0; i < len && i < 300; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "%s\"\n", len > 300 ? "..." : "");
}

/* pl_json_dump(v) must equal json_dumps(v); returns 1 when it does. */
static int dump_matches(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    pl_buf_t b;
    pl_buf_init(&b);
    /* Appending after existing text must leave that text alone. */
    pl_buf_appends(&b, "prefix");
    int rc = pl_json_dump(&b, v);
    int ok = want && rc == 0 && strncmp(b.data, "prefix", 6) == 0 && b.len - 6 == strlen(want) &&
             memcmp(b.data + 6, want, b.len - 6) == 0 && b.data[b.len] == '\0';
    if (!ok) {
        show("jansson dump", want ? want : "(null)", want ? strlen(want) : 6);
        show("our dump", b.data ? b.data + 6 : "", b.data ? b.len - 6 : 0);
    }
    free(want);
    pl_buf_free(&b);
    return ok;
}

/* Parses with both and checks everything this file promises. Returns 1 when they agree;
 * *accepted tells whether the input was valid. */
static int agree(const char *buf, size_t len, size_t flags, int *accepted)
{
    json_error_t je, me;
    json_t *j = json_loadb(buf, len, flags, &je);
    json_t *m = pl_json_loadb(buf, len, flags, &me);
    int ok = 1;
    n_compared++;
    if (j && !m && memchr(buf, '\0', len)) {
        /* jansson 2.14 skips a NUL byte that directly follows a number or a literal (its
         * stream_unget() leaves the NUL as the buffer's terminator, so the next read moves
         * past it); pl_json_loadb refuses it like any other stray byte. A NUL can appear
         * nowhere else in input jansson accepts, so without the NULs both must accept and
         * build jansson's tree. */
        n_nul_quirk++;
        char *stripped = malloc(len + 1);
        size_t k = 0;
        for (size_t i = 0; i < len; i++)
            if (buf[i])
                stripped[k++] = buf[i];
        json_t *m2 = pl_json_loadb(stripped, k, flags, NULL);
        if (!m2 || !same_tree(j, m2) || !agree(stripped, k, flags, NULL)) {
            ok = 0;
            fprintf(stderr, "    NUL-skipping case does not reduce to the same tree\n");
        }
        json_decref(m2);
        free(stripped);
        json_decref(j);
        if (!ok)
            show("input", buf, len);
        if (accepted)
            *accepted = 1;
        return ok;
    }
    if (!j != !m) {
        ok = 0;
        fprintf(stderr, "    jansson %s, pl_json %s\n", j ? "accepts" : je.text,
                m ? "accepts" : me.text);
    } else if (j) {
        n_accepted++;
        if (!json_equal(j, m) || !same_tree(j, m)) {
            ok = 0;
            char *a = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
            char *b = json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY);
            fprintf(stderr, "    trees differ\n");
            show("jansson", a ? a : "", a ? strlen(a) : 0);
            show("pl_json", b ? b : "", b ? strlen(b) : 0);
            free(a);
            free(b);
        }
        if (ok && (!dump_matches(m) || !dump_matches(j)))
            ok = 0;
        if (me.position != je.position)
            ok = 0, fprintf(stderr, "    position on success %d != %d\n", me.position, je.position);
    } else {
        n_err_code_same += json_error_code(&je) == json_error_code(&me);
        n_err_pos_same += je.position == me.position;
        n_err_line_col_same += je.line == me.line && je.column == me.column;
        if (me.text[0] == '\0' || me.line < 1 || me.column < 0)
            ok = 0, fprintf(stderr, "    no usable error report\n");
    }
    if (!ok)
        show("input", buf, len);
    if (accepted)
        *accepted = j != NULL;
    json_decref(j);
    json_decref(m);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* The table                                                                                */

typedef struct {
    const char *text;
    size_t len; /* 0: strlen(text) */
    size_t flags;
    int valid; /* what jansson is expected to say, so the table proves it covers both */
} case_t;

#define OK(s)                                                                                      \
    {                                                                                              \
        s, 0, ANY, 1                                                                               \
    }
#define BAD(s)                                                                                     \
    {                                                                                              \
        s, 0, ANY, 0                                                                               \
    }
#define OKB(s)                                                                                     \
    {                                                                                              \
        s, sizeof(s) - 1, ANY, 1                                                                   \
    }
#define BADB(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1, ANY, 0                                                                   \
    }
#define OKF(s, flags)                                                                              \
    {                                                                                              \
        s, 0, flags, 1                                                                             \
    }
#define BADF(s, flags)                                                                             \
    {                                                                                              \
        s, 0, flags, 0                                                                             \
    }

static const case_t cases[] = {
    /* Top level and whitespace. */
    OK("{}"),
    OK("[]"),
    OK(" \t\r\n{} \t\r\n"),
    BAD(""),
    BAD("   "),
    BADB("\0"),
    BADB("{}\0"),
    BAD("{}x"),
    BAD("{} {}"),
    BAD("[] 1"),
    BAD("\f{}"),
    BAD("\v[]"),
    BAD("\xc2\xa0{}"),
    BAD("{}\xef\xbb\xbf"),
    BAD("\xef\xbb\xbf{}"),
    OKF("{}", OBJS),
    OKF("[1]", OBJS),
    BADF("1", OBJS),
    BADF("\"s\"", OBJS),
    BADF("true", OBJS),
    BADF("null", OBJS),
    BADF("", OBJS),
    BADF("   ", OBJS),
    OK("1"),
    OK(" 1 "),
    OK("\"s\""),
    OK("true"),
    OK("false"),
    OK("null"),
    BAD("1 2"),
    BAD("{"),
    BAD("["),
    BAD("}"),
    BAD("]"),
    BAD("[}"),
    BAD("{]"),
    BAD(","),
    BAD(":"),
    /* Literals. */
    OK("[true,false,null]"),
    BAD("tru"),
    BAD("True"),
    BAD("NULL"),
    BAD("nul"),
    BAD("nulll"),
    BAD("truex"),
    BAD("[truefalse]"),
    BAD("[true1]"),
    BAD("fals"),
    BAD("nan"),
    BAD("NaN"),
    BAD("Infinity"),
    BAD("-Infinity"),
    BAD("undefined"),
    BAD("[t]"),
    BAD("[n"),
    /* Arrays and objects. */
    OK("[1,2,3]"),
    OK("[ 1 , 2 ]"),
    BAD("[1,]"),
    BAD("[,1]"),
    BAD("[1 2]"),
    BAD("[1,,2]"),
    BAD("[1"),
    BAD("[1,"),
    OK("{\"a\":1}"),
    OK("{ \"a\" : 1 , \"b\" : [ ] }"),
    BAD("{\"a\":1,}"),
    BAD("{\"a\" 1}"),
    BAD("{\"a\":}"),
    BAD("{a:1}"),
    BAD("{'a':1}"),
    BAD("{\"a\":1 \"b\":2}"),
    BAD("{1:1}"),
    BAD("{\"a\"}"),
    BAD("{\"a\":1"),
    BAD("{\"a\""),
    BAD("{\"a\":"),
    BAD("{,}"),
    OK("{\"\":0}"),
    OK("[[[]],[{}],{\"x\":[{}]}]"),
    OK("{\"b\":1,\"a\":2,\"c\":3,\"aa\":4}"),
    /* Duplicate keys, including ones that only match after unescaping. */
    BAD("{\"a\":1,\"a\":2}"),
    BAD("{\"a\":1,\"b\":2,\"a\":{}}"),
    BAD("{\"a\":[],\"a\":[]}"),
    BAD("{\"a\":1,\"\\u0061\":2}"),
    BAD("{\"\":1,\"\":2}"),
    OK("{\"a\":{\"a\":{\"a\":1}}}"),
    OK("[{\"a\":1},{\"a\":1}]"),
    OKF("{\"a\":1,\"a\":2}", JSON_DECODE_ANY),
    OKF("{\"a\":[1],\"b\":0,\"a\":{\"c\":2}}", JSON_DECODE_ANY),
    BAD("{\"a\":1,\"A\":2,\"a\":3}"),
    OK("{\"a\":1,\"A\":2}"),
    /* One NUL right after a number or literal: jansson skips it, pl_json refuses it (see
     * agree()). */
    OKB("[1\0]"),
    OKB("[true\0,null\0]"),
    OKB("{\"a\":1.5\0}"),
    OKB("-1\0"),
    BADB("[1\0\0]"),
    BADB("[\"a\"\0]"),
    BADB("[\0]"),
    BADB("[1,\0 2]"),
    /* Strings: escapes. */
    OK("\"\""),
    OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""),
    BAD("\"\\a\""),
    BAD("\"\\x41\""),
    BAD("\"\\'\""),
    BAD("\"\\0\""),
    BAD("\"\\U0041\""),
    BAD("\"\\"),
    BAD("\"\\\""),
    BAD("\"abc"),
    BAD("\""),
    OK("\"\\u0041\\u00e9\\u20AC\\uFFFF\""),
    OK("\"\\u0001\\u001f\""),
    BAD("\"\\u004\""),
    BAD("\"\\u00G1\""),
    BAD("\"\\u\""),
    BAD("\"\\u12"),
    BAD("\"\\u-123\""),
    BAD("\"\\u0000\""),
    BAD("[\"a\\u0000b\"]"),
    BAD("{\"a\\u0000\":1}"),
    OKF("[\"a\\u0000b\"]", ANY | JSON_ALLOW_NUL),
    BADF("{\"\\u0000\":1}", ANY | JSON_ALLOW_NUL),
    /* Surrogates. */
    OK("\"\\uD83D\\uDE00\""),
    OK("\"\\ud83d\\ude00x\""),
    OK("\"\\uDBFF\\uDFFF\""),
    OK("\"\\uD800\\uDC00\""),
    BAD("\"\\uD83D\""),
    BAD("\"\\uD83Dx\""),
    BAD("\"\\uDE00\""),
    BAD("\"\\uD83D\\u0041\""),
    BAD("\"\\uD83D\\uD83D\""),
    BAD("\"\\uDE00\\uD83D\""),
    BAD("\"\\uD83D\\n\""),
    BAD("\"\\uD83D\\uDE0\""),
    BAD("\"\\uD83D\\"),
    /* Strings: raw bytes. */
    BADB("\"a\0b\""),
    BAD("\"a\nb\""),
    BAD("\"a\tb\""),
    BAD("\"\x01\""),
    BAD("\"\x1f\""),
    OK("\"\x7f\""),
    OK("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""),
    OK("\"\xef\xbf\xbf\""),
    OK("\"\xf4\x8f\xbf\xbf\""),
    OK("\"\xed\x9f\xbf\xee\x80\x80\""),
    BAD("\"\xc0\x80\""),
    BAD("\"\xc1\xbf\""),
    BAD("\"\xe0\x80\x80\""),
    BAD("\"\xe0\x9f\xbf\""),
    BAD("\"\xf0\x80\x80\x80\""),
    BAD("\"\xf0\x8f\xbf\xbf\""),
    BAD("\"\xed\xa0\x80\""),
    BAD("\"\xed\xbf\xbf\""),
    BAD("\"\xf4\x90\x80\x80\""),
    BAD("\"\xf5\x80\x80\x80\""),
    BAD("\"\xf8\x88\x80\x80\x80\""),
    BAD("\"\xff\""),
    BAD("\"\xfe\""),
    BAD("\"\x80\""),
    BAD("\"\xbf\""),
    BAD("\"\xc3\""),
    BAD("\"\xc3"),
    BAD("\"\xe2\x82\""),
    BAD("\"\xe2\x82"),
    BAD("\"\xf0\x9f\x98\""),
    BAD("\"\xf0\x9f\x98"),
    BAD("\"\xc3\x28\""),
    BAD("\"\xe2\x28\xa1\""),
    BAD("[\"ok\",\xc3\xa9]"),
    BAD("{\"\xff\":1}"),
    OK("{\"\xc3\xa9\":\"\xe2\x82\xac\"}"),
    /* Numbers. */
    OK("0"),
    OK("-0"),
    OK("[0,1,-1,10,123456789]"),
    OK("9223372036854775807"),
    OK("-9223372036854775808"),
    BAD("9223372036854775808"),
    BAD("-9223372036854775809"),
    BAD("18446744073709551616"),
    BAD("100000000000000000000"),
    OK("0.0"),
    OK("-0.0"),
    OK("1.5"),
    OK("-1.5e10"),
    OK("1e5"),
    OK("1E5"),
    OK("1e+5"),
    OK("1e-5"),
    OK("1E-05"),
    OK("0e0"),
    OK("-0e-0"),
    OK("0.1"),
    OK("0.30000000000000004"),
    OK("1e308"),
    OK("1.7976931348623157e308"),
    BAD("1.7976931348623159e308"),
    BAD("1e309"),
    BAD("-1e400"),
    OK("1e-400"),
    OK("-1e-400"),
    OK("4.9e-324"),
    OK("2.2250738585072014e-308"),
    OK("9007199254740993.0"),
    OK("9007199254740993e0"),
    OK("123456789012345678901234567890.5"),
    OK("0.000000000000000000000000000001"),
    OK("1e22"),
    OK("1e23"),
    OK("12345678901234567e-5"),
    OK("[1e-22,1e-23,3.14159265358979323846264338327950288]"),
    OK("1.00000000000000011102230246251565404236316680908203125"),
    OK("2.00000000000000011102230246251565404236316680908203125"),
    BAD("01"),
    BAD("-01"),
    BAD("00"),
    BAD("00.5"),
    BAD("+1"),
    BAD(".5"),
    BAD("-.5"),
    BAD("5."),
    BAD("5.e3"),
    BAD("1e"),
    BAD("1e+"),
    BAD("1E-"),
    BAD("1ee5"),
    BAD("1.5.5"),
    BAD("-"),
    BAD("--1"),
    BAD("- 1"),
    BAD("1 .5"),
    BAD("0x10"),
    BAD("1_000"),
    BAD("[1.]"),
    BAD("[-]"),
    BAD("[01]"),
    BAD("[1-2]"),
    BAD("[1e5e5]"),
    BAD("1e5.5"),
    OK("[-0,0.5e-3,5E+3]"),
    OK("1e0000000000000000000000001"),
    BAD("1e99999999999999999999"),
    OK("1e-99999999999999999999"),
    OK("0e99999999999999999999"),
    /* Realistic messages. */
    OK("{\"type\":\"candidate\",\"to\":\"I44W_rJsE_A3AcMXD9eA-g\",\"candidate\":{\"candidate\":"
       "\"candidate:1 1 udp 2122260223 192.0.2.10 40000 typ host\",\"sdpMid\":\"0\","
       "\"sdpMLineIndex\":0},\"ref\":\"c1\"}"),
    OK("{\"type\":\"offer\",\"sdp\":\"v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\n"
       "s=-\\r\\nt=0 0\\r\\na=group:BUNDLE 0\\r\\n\",\"meta\":{\"name\":\"J\\u00fcrgen "
       "\\ud83d\\ude00\"}}"),
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const case_t *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->text);
        int accepted = -1;
        if (!agree(c->text, len, c->flags, &accepted)) {
            fprintf(stderr, "    (table case %zu)\n", i);
            CHECK(0);
        }
        if (accepted != c->valid) {
            fprintf(stderr, "    table case %zu: jansson %s it, the table expected otherwise\n", i,
                    accepted ? "accepts" : "refuses");
            show("input", c->text, len);
            CHECK(0);
        }
    }
}

/* Strings around the 8-byte word boundaries of the scanners, and escaped strings longer
 * than the decoders' on-stack scratch buffers. */
static void test_string_lengths(void)
{
    static const char *inserts[] = {
        "\\n", "\\u00e9", "\\ud83d\\ude00", "\xc3\xa9", "\xf0\x9f\x98\x80", "\\\"", "\x01", "\xc3"};
    char *buf = malloc(4096);
    for (size_t n = 0; n < 40; n++) {
        for (size_t ins = 0; ins < sizeof inserts / sizeof inserts[0]; ins++) {
            for (size_t at = 0; at <= n; at += (n > 12 ? 5 : 1)) {
                size_t k = 0;
                buf[k++] = '{';
                buf[k++] = '"';
                for (size_t i = 0; i < n; i++) {
                    if (i == at) {
                        memcpy(buf + k, inserts[ins], strlen(inserts[ins]));
                        k += strlen(inserts[ins]);
                    }
                    buf[k++] = (char)('a' + i % 26);
                }
                memcpy(buf + k, "\":\"", 3);
                k += 3;
                for (size_t i = 0; i < n; i++) {
                    if (i == at) {
                        buf[k++] = '\\';
                        buf[k++] = 't';
                    }
                    buf[k++] = (char)('A' + i % 26);
                }
                buf[k++] = '"';
                buf[k++] = '}';
                CHECK(agree(buf, k, ANY, NULL));
            }
        }
    }
    /* Long strings: many escapes (scratch growth), and keys and values both escaped. */
    for (size_t reps = 100; reps <= 1000; reps += 300) {
        size_t k = 0;
        k += (size_t)sprintf(buf + k, "{\"");
        for (size_t i = 0; i < reps; i++)
            k += (size_t)sprintf(buf + k, "k\\n");
        k += (size_t)sprintf(buf + k, "\":\"");
        for (size_t i = 0; i < reps && k < 4000; i++)
            k += (size_t)sprintf(buf + k, i % 3 ? "\\u00e9" : "x\\\"");
        k += (size_t)sprintf(buf + k, "\"}");
        CHECK(k < 4096);
        CHECK(agree(buf, k, ANY, NULL));
    }
    free(buf);
}

/* jansson counts every value, scalars included, towards its 2048 limit. */
static void test_depth(void)
{
    size_t cap = 8 * 3000 + 16;
    char *buf = malloc(cap);
    const int depths[] = {1, 63, 64, 65, 200, 2047, 2048, 2049, 3000};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
        int n = depths[d];
        for (int form = 0; form < 4; form++) {
            size_t k = 0;
            for (int i = 0; i < n; i++) {
                if (form == 2 && i % 2)
                    k += (size_t)sprintf(buf + k, "{\"k\":");
                else
                    buf[k++] = '[';
            }
            if (form == 1)
                buf[k++] = '1';
            if (form == 3)
                k += (size_t)sprintf(buf + k, "{}");
            for (int i = n - 1; i >= 0; i--)
                buf[k++] = form == 2 && i % 2 ? '}' : ']';
            int accepted = -1;
            CHECK(agree(buf, k, ANY, &accepted));
            if (form == 0)
                CHECK_EQ_INT(accepted, n <= PL_JSON_MAX_DEPTH);
            if (form == 1 || form == 3)
                CHECK_EQ_INT(accepted, n + 1 <= PL_JSON_MAX_DEPTH);
            /* Unclosed too, which must free everything built so far. */
            CHECK(agree(buf, k / 2, ANY, NULL));
        }
    }
    free(buf);
}

/* Values that parsing never produces, and failures of the dumper. */
static void test_dump_built(void)
{
    json_t *a = json_array();
    const double reals[] = {0.0,           -0.0,
                            1.0,           -1.0,
                            0.1,           1.5,
                            100.0,         1e15,
                            1e16,          1e17,
                            1e21,          1e22,
                            1e23,          1e100,
                            1e300,         1e-5,
                            1e-7,          1e-300,
                            5e-324,        DBL_MAX,
                            -DBL_MAX,      DBL_MIN,
                            123456789.125, 1.0 / 3,
                            2.0 / 3,       9007199254740993.0,
                            -4.5e-10,      6.02214076e23};
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        json_array_append_new(a, json_real(reals[i]));
    const json_int_t ints[] = {0,
                               1,
                               -1,
                               9,
                               10,
                               -10,
                               99,
                               100,
                               999,
                               1000,
                               12345,
                               -99999,
                               1000000007,
                               4294967296LL,
                               LLONG_MAX,
                               LLONG_MIN,
                               LLONG_MIN + 1,
                               1000000000000000000LL,
                               999999999999999999LL};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        json_array_append_new(a, json_integer(ints[i]));
    char all[0x80];
    for (int i = 0; i < 0x80; i++)
        all[i] = (char)i;
    json_array_append_new(a, json_stringn(all, sizeof all));
    json_array_append_new(a, json_string("/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f"));
    json_array_append_new(a, json_string(""));
    json_t *o = json_object();
    json_object_set_new(o, "z\"\n\x01", json_true());
    json_object_set_new(o, "a", json_false());
    json_object_set_new(o, "m", json_null());
    json_object_set_new(o, "e", json_object());
    json_object_set_new(o, "", json_array());
    json_object_setn_new(o, "n\0ul", 4, json_integer(1));
    json_array_append_new(a, o);
    CHECK(dump_matches(a));
    for (size_t i = 0; i < json_array_size(a); i++)
        CHECK(dump_matches(json_array_get(a, i)));

    /* A loop ends at the depth limit, and the buffer keeps what it had. */
    /* jansson refuses to put an array straight into itself, so the loop takes two. */
    json_t *loop = json_array(), *inner = json_array();
    json_array_append(loop, inner);
    json_array_append(inner, loop);
    pl_buf_t b;
    pl_buf_init(&b);
    pl_buf_appends(&b, "keep");
    CHECK_EQ_INT(pl_json_dump(&b, loop), PL_EINVAL);
    CHECK_EQ_STR(b.data, "keep");
    CHECK_EQ_INT(pl_json_dump(&b, NULL), PL_EINVAL);
    CHECK_EQ_STR(b.data, "keep");
    json_array_clear(inner);
    json_decref(inner);
    json_decref(loop);
    pl_buf_free(&b);
    json_decref(a);
}

static void test_errors(void)
{
    json_error_t e;
    json_t *v = pl_json_loadb("{\n  \"a\": x}", 11, ANY, &e);
    CHECK(v == NULL);
    CHECK_EQ_INT(e.line, 2);
    CHECK_EQ_INT(e.column, 8);
    CHECK_EQ_STR(e.source, "<buffer>");
    CHECK(strstr(e.text, "invalid token") != NULL);
    CHECK_EQ_INT(json_error_code(&e), json_error_invalid_syntax);

    v = pl_json_loadb("{\"a\":1,\"a\":2}", 13, ANY, &e);
    CHECK(v == NULL);
    CHECK_EQ_INT(json_error_code(&e), json_error_duplicate_key);
    CHECK(strstr(e.text, "duplicate") != NULL);

    v = pl_json_loadb("[1,", 3, ANY, &e);
    CHECK(v == NULL);
    CHECK_EQ_INT(json_error_code(&e), json_error_premature_end_of_input);
    CHECK(strstr(e.text, "end of file") != NULL);

    v = pl_json_loadb("99999999999999999999", 20, ANY, &e);
    CHECK(v == NULL);
    CHECK(strstr(e.text, "too big integer") != NULL);
    v = pl_json_loadb("1e999", 5, ANY, &e);
    CHECK(v == NULL);
    CHECK(strstr(e.text, "real number overflow") != NULL);

    /* No error struct, and flags this module does not implement. */
    CHECK(pl_json_loadb("x", 1, ANY, NULL) == NULL);
    v = pl_json_loadb("[1]", 3, ANY, NULL);
    CHECK(v != NULL);
    json_decref(v);
    CHECK(pl_json_loadb("[1]", 3, ANY | JSON_DISABLE_EOF_CHECK, &e) == NULL);
    CHECK_EQ_INT(json_error_code(&e), json_error_invalid_argument);
    CHECK(pl_json_loadb(NULL, 0, ANY, &e) == NULL);

    /* Success still reports the position, as jansson does. */
    v = pl_json_loadb(" [1] ", 5, ANY, &e);
    CHECK(v != NULL);
    CHECK_EQ_INT(e.position, 5);
    json_decref(v);
}

/* ---------------------------------------------------------------------------------------- */
/* Differential fuzzing                                                                     */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
    /* xorshift64*: fixed seed, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rn(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static const char *corpus[] = {
    "{\"type\":\"candidate\",\"to\":\"I44W_rJsE_A3AcMXD9eA-g\",\"candidate\":{\"candidate\":"
    "\"candidate:1 1 udp 2122260223 192.0.2.10 40000 typ host\",\"sdpMid\":\"0\","
    "\"sdpMLineIndex\":0},\"ref\":\"c1\"}",
    "{\"type\":\"offer\",\"to\":\"q9X2mYk0T1uQ3b7Z8wA1cD\",\"ref\":\"o-17\",\"sdp\":{\"type\":"
    "\"offer\",\"sdp\":\"v=0\\r\\no=- 4611731400430051336 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 "
    "0\\r\\na=group:BUNDLE 0 1\\r\\na=extmap-allow-mixed\\r\\na=msid-semantic: WMS stream\\r\\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\\r\\nc=IN IP4 0.0.0.0\\r\\na=rtcp:9 IN IP4 "
    "0.0.0.0\\r\\na=ice-ufrag:Xy9z\\r\\na=ice-pwd:abcdefghijklmnopqrstuvwx\\r\\na=ice-options:"
    "trickle\\r\\na=fingerprint:sha-256 12:34:56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:12:34:"
    "56:78:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0\\r\\na=setup:actpass\\r\\na=mid:0\\r\\n"
    "a=sendrecv\\r\\na=rtcp-mux\\r\\na=rtpmap:111 opus/48000/2\\r\\na=fmtp:111 minptime=10;"
    "useinbandfec=1\\r\\n\"}}",
    "{\"type\":\"answer\",\"to\":\"abc\",\"sdp\":{\"type\":\"answer\",\"sdp\":\"v=0\\r\\n\"},"
    "\"meta\":{\"name\":\"J\\u00fcrgen \\ud83d\\ude00\",\"tags\":[\"a\",\"b\",[1,[2,[3]]]],"
    "\"n\":-12.5e-3,\"big\":9223372036854775807,\"z\":-0,\"t\":true,\"f\":false,\"x\":null}}",
    "{\"type\":\"join\",\"room\":\"r-\xc3\xa9\xe2\x82\xac\",\"token\":\"eyJhbGciOiJIUzI1NiJ9."
    "eyJzdWIiOiJ1In0.sig\",\"caps\":[\"trickle\",\"relay\"],\"ttl\":30}",
    "[{\"id\":1,\"v\":0.1},{\"id\":2,\"v\":1e21},{\"id\":3,\"v\":[]},{\"id\":4,\"v\":{}}]",
    "{\"type\":\"leave\",\"ref\":\"l\\/1\\t\\\"q\\\"\"}",
    "{\"type\":\"ping\",\"ts\":1700000000123}",
};

static const char *fragments[] = {
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\"a\":",
    "\"a\":1",
    "\"a\":1,\"a\":2",
    "{\"k\":[1,2,{\"x\":null}]}",
    "[[[[[]]]]]",
    "true",
    "false",
    "null",
    "0",
    "-0",
    "-",
    "1e5",
    "1.5e-300",
    "1e400",
    "-1e-400",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "0.30000000000000004",
    "123456789012345678901",
    "01",
    ".5",
    "5.",
    "1e",
    "\\u0000",
    "\\u00e9",
    "\\ud83d\\ude00",
    "\\ud83d",
    "\\ude00",
    "\\uD83D\\u0041",
    "\\n",
    "\\r\\n",
    "\\x",
    "\\",
    "\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x98\x80",
    "\xc0\x80",
    "\xed\xa0\x80",
    "\xf4\x90\x80\x80",
    "\xff",
    "\xc3",
    "\xe2\x82",
    " ",
    "\t",
    "\r\n",
    "\n",
    "\"\":\"\"",
    "{}",
    "[]",
    "\"sdpMid\":\"0\"",
    "\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.10 40000 typ host\"",
};

/* A random number text, valid or nearly so, to exercise the fast real path against
 * strtod(). */
static size_t random_number(char *out)
{
    size_t k = 0;
    if (rn(2))
        out[k++] = '-';
    size_t nd = 1 + rn(rn(4) ? 8 : 25);
    for (size_t i = 0; i < nd; i++)
        out[k++] = (char)('0' + (i == 0 && nd > 1 && rn(8) ? 1 + rn(9) : rn(10)));
    if (rn(2)) {
        out[k++] = '.';
        size_t nf = rn(8) ? 1 + rn(18) : rn(30);
        for (size_t i = 0; i < nf; i++)
            out[k++] = (char)('0' + rn(10));
    }
    if (rn(2)) {
        out[k++] = rn(2) ? 'e' : 'E';
        if (rn(2))
            out[k++] = rn(2) ? '-' : '+';
        size_t ne = rn(8) ? 1 + rn(2) : rn(4);
        for (size_t i = 0; i < ne; i++)
            out[k++] = (char)('0' + rn(10));
    }
    return k;
}

#define FUZZ_CAP 16384

static void mutate(char *buf, size_t *len)
{
    static const unsigned char interesting[] = {'"',  '\\', '{',  '}',  '[', ']',  ',', ':',
                                                '0',  '-',  'e',  '.',  ' ', '\n', 0,   0x80,
                                                0xC3, 0xED, 0xF4, 0xFF, 'u', 't',  'n', '/'};
    size_t n = *len;
    char tmp[96];
    switch (rn(9)) {
    case 0: /* bit flip */
        if (n)
            buf[rn(n)] ^= (char)(1u << rn(8));
        break;
    case 1: /* overwrite with an interesting byte */
        if (n)
            buf[rn(n)] = (char)interesting[rn(sizeof interesting)];
        break;
    case 2: /* insert bytes */
        if (n + 4 < FUZZ_CAP) {
            size_t at = rn(n + 1), k = 1 + rn(3);
            memmove(buf + at + k, buf + at, n - at);
            for (size_t i = 0; i < k; i++)
                buf[at + i] = rn(2) ? (char)interesting[rn(sizeof interesting)] : (char)rnd();
            n += k;
        }
        break;
    case 3: /* delete a range */
        if (n) {
            size_t at = rn(n), k = 1 + rn(rn(4) ? 3 : 40);
            if (k > n - at)
                k = n - at;
            memmove(buf + at, buf + at + k, n - at - k);
            n -= k;
        }
        break;
    case 4: /* truncate */
        n = rn(n + 1);
        break;
    case 5:   /* splice a fragment in, or over a range */
    case 6: { /* a random number, likewise */
        const char *f = tmp;
        size_t fl;
        if (rn(9) == 0 || n == 0) {
            fl = random_number(tmp);
        } else if (rn(2)) {
            f = fragments[rn(sizeof fragments / sizeof fragments[0])];
            fl = strlen(f);
        } else {
            fl = random_number(tmp);
        }
        size_t at = rn(n + 1), del = rn(2) ? rn(n - at + 1) : 0;
        if (del > 12)
            del = rn(13);
        if (del > n - at)
            del = n - at;
        if (n - del + fl < FUZZ_CAP) {
            memmove(buf + at + fl, buf + at + del, n - at - del);
            memcpy(buf + at, f, fl);
            n = n - del + fl;
        }
        break;
    }
    case 7: /* random UTF-8, valid or not */
        if (n + 4 < FUZZ_CAP) {
            size_t at = rn(n + 1), k;
            uint32_t cp = (uint32_t)rn(4) == 0 ? (uint32_t)rn(0x110000) : (uint32_t)rn(0x800);
            if (cp < 0x80) {
                tmp[0] = (char)cp;
                k = 1;
            } else if (cp < 0x800) {
                tmp[0] = (char)(0xC0 | cp >> 6);
                tmp[1] = (char)(0x80 | (cp & 0x3F));
                k = 2;
            } else if (cp < 0x10000) {
                tmp[0] = (char)(0xE0 | cp >> 12);
                tmp[1] = (char)(0x80 | (cp >> 6 & 0x3F));
                tmp[2] = (char)(0x80 | (cp & 0x3F));
                k = 3;
            } else {
                tmp[0] = (char)(0xF0 | cp >> 18);
                tmp[1] = (char)(0x80 | (cp >> 12 & 0x3F));
                tmp[2] = (char)(0x80 | (cp >> 6 & 0x3F));
                tmp[3] = (char)(0x80 | (cp & 0x3F));
                k = 4;
            }
            if (rn(4) == 0)
                tmp[rn(k)] ^= (char)(1u << rn(8)); /* break it */
            memmove(buf + at + k, buf + at, n - at);
            memcpy(buf + at, tmp, k);
            n += k;
        }
        break;
    default: /* copy a chunk of the message elsewhere in it */
        if (n) {
            size_t from = rn(n), k = 1 + rn(24);
            if (k > n - from)
                k = n - from;
            if (n + k < FUZZ_CAP && k <= sizeof tmp) {
                memcpy(tmp, buf + from, k);
                size_t at = rn(n + 1);
                memmove(buf + at + k, buf + at, n - at);
                memcpy(buf + at, tmp, k);
                n += k;
            }
        }
        break;
    }
    *len = n;
}

static void test_fuzz(void)
{
    long iters = 200000;
    const char *env = getenv("PL_JSON_FUZZ_ITERS");
    if (env)
        iters = atol(env);
    char *buf = malloc(FUZZ_CAP);
    size_t len = 0;
    long accepted = 0, failures = 0;
    for (long it = 0; it < iters && failures < 10; it++) {
        /* Mostly fresh mutants of a corpus message; sometimes keep mutating the last one. */
        if (it == 0 || rn(4)) {
            const char *c = corpus[rn(sizeof corpus / sizeof corpus[0])];
            len = strlen(c);
            memcpy(buf, c, len);
        }
        size_t rounds = 1 + rn(rn(3) ? 2 : 6);
        for (size_t r = 0; r < rounds; r++)
            mutate(buf, &len);
        int ok = 0;
        size_t flags = rn(4) ? ANY : (rn(2) ? OBJS : JSON_DECODE_ANY);
        if (!agree(buf, len, flags, &ok)) {
            fprintf(stderr, "    (fuzz iteration %ld, flags %zu)\n", it, flags);
            failures++;
        }
        accepted += ok;
    }
    CHECK_EQ_INT(failures, 0);
    /* The loop is only useful if a fair share of mutants are still valid JSON. */
    CHECK(iters < 1000 || accepted > iters / 20);
    printf("fuzz: %ld inputs, %ld accepted by both\n", iters, accepted);
    free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/* Benchmark (printed only)                                                                 */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* What a benchmark loop measures: one parse (and free) or one dump, by either library. */
enum { B_JPARSE, B_PPARSE, B_JDUMP, B_PDUMP, B_N };

/* ns per call of `what`, the best of five rounds: the machine may be busy with other work,
 * and the minimum is the figure least disturbed by it. */
static double bench_ns(int what, const char *msg, size_t len, const json_t *v, long n)
{
    double best = 0;
    pl_buf_t b;
    pl_buf_init(&b);
    for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            if (what == B_JPARSE)
                json_decref(json_loadb(msg, len, ANY, NULL));
            else if (what == B_PPARSE)
                json_decref(pl_json_loadb(msg, len, ANY, NULL));
            else if (what == B_JDUMP)
                free(json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY));
            else {
                pl_buf_reset(&b);
                pl_json_dump(&b, v);
            }
        }
        double t = (now_ns() - t0) / (double)n;
        if (round == 0 || t < best)
            best = t;
    }
    pl_buf_free(&b);
    return best;
}

static void bench_one(const char *name, const char *msg)
{
    size_t len = strlen(msg);
    long n = 5000;
    const char *env = getenv("PL_JSON_BENCH_ITERS");
    if (env)
        n = atol(env);
    json_t *v = pl_json_loadb(msg, len, ANY, NULL);
    double r[B_N];
    for (int what = 0; what < B_N; what++)
        r[what] = bench_ns(what, msg, len, v, n);
    printf("bench %-10s %5zu bytes: parse jansson %7.0f ns, pl_json %7.0f ns (x%.1f); "
           "dump jansson %7.0f ns, pl_json %7.0f ns (x%.1f)\n",
           name, len, r[B_JPARSE], r[B_PPARSE], r[B_JPARSE] / r[B_PPARSE], r[B_JDUMP], r[B_PDUMP],
           r[B_JDUMP] / r[B_PDUMP]);
    json_decref(v);
}

static void test_bench(void)
{
    bench_one("candidate", corpus[0]);
    /* A ~2 KB offer: the corpus offer with its SDP repeated. */
    char *offer = malloc(4096);
    size_t k = (size_t)sprintf(offer, "{\"type\":\"offer\",\"to\":\"q9X2mYk0T1uQ3b7Z8wA1cD\","
                                      "\"ref\":\"o-17\",\"sdp\":{\"type\":\"offer\",\"sdp\":\"");
    const char *sdp_line = "a=candidate:1 1 udp 2122260223 192.0.2.10 40000 typ host\\r\\n"
                           "a=rtpmap:111 opus/48000/2\\r\\na=ssrc:1001 cname:xYz\\r\\n";
    while (k < 1950)
        k += (size_t)sprintf(offer + k, "%s", sdp_line);
    sprintf(offer + k, "\"}}");
    CHECK(agree(offer, strlen(offer), ANY, NULL));
    bench_one("offer", offer);
    free(offer);
}

int main(void)
{
    RUN(test_table);
    RUN(test_string_lengths);
    RUN(test_depth);
    RUN(test_dump_built);
    RUN(test_errors);
    RUN(test_fuzz);
    RUN(test_bench);
    printf("jansson accepted %ld inputs only because it skips a NUL after a number or literal\n",
           n_nul_quirk);
    printf("compared %ld inputs (%ld accepted); on refused ones jansson's error code matched "
           "in %ld, position in %ld, line and column in %ld\n",
           n_compared, n_accepted, n_err_code_same, n_err_pos_same, n_err_line_col_same);
    TEST_MAIN();
}
