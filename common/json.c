/* A strict one-pass JSON parser and a compact dumper that match jansson 2.14's json_loadb()
 * and json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) (see json.h for the contract).
 *
 * The parser walks the bytes once with an explicit stack of open containers instead of
 * recursion. Each container is attached to its parent as soon as it opens, so the stack
 * only holds borrowed pointers and a pending object key never has to outlive the next
 * string. Strings without escapes go to jansson straight from the input; escaped ones are
 * decoded into one of two scratch buffers (one for keys, one for values, because a string
 * value is decoded while its key is still pending). */
#include "common/json.h"

#include "common/error.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIKELY(x)   __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---------------------------------------------------------------------------------------- */
/* Byte classes                                                                             */

/* What a byte means inside a string: most bytes are copied as they are, and the scanner
 * stops only on these classes. */
enum { C_PLAIN = 0, C_QUOTE, C_ESCAPE, C_CONTROL, C_UTF8 };

/* GNU range designators keep the table readable; the build uses gnu11 anyway. */
static const unsigned char string_class[256] = {
    [0x00 ... 0x1F] = C_CONTROL,
    ['"'] = C_QUOTE,
    ['\\'] = C_ESCAPE,
    [0x80 ... 0xFF] = C_UTF8,
};

/* Word-at-a-time test: does any of the 8 bytes of x need the byte loop (a quote, a
 * backslash, a control character or a non-ASCII byte)? Each term is the classic exact
 * "some byte is zero / below n" test, so the OR of them is exact too. */
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline uint64_t needs_attention(uint64_t x)
{
    uint64_t q = x ^ (ONES * '"');
    uint64_t b = x ^ (ONES * '\\');
    return (((x - ONES * 0x20) & ~x) | ((q - ONES) & ~q) | ((b - ONES) & ~b) | x) & HIGHS;
}

/* The same test for the dumper, where non-ASCII bytes are copied through untouched. */
static inline uint64_t needs_escape(uint64_t x)
{
    uint64_t q = x ^ (ONES * '"');
    uint64_t b = x ^ (ONES * '\\');
    return (((x - ONES * 0x20) & ~x) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

/* The index of the first byte flagged in a needs_* mask. A borrow in those subtractions
 * only ever runs from a lower byte into higher ones, so the lowest flagged byte is always a
 * true hit even where higher ones may not be. That holds for the little-endian loads used
 * here; elsewhere the caller simply walks the word byte by byte. */
static inline size_t first_flagged(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (size_t)__builtin_ctzll(m) >> 3;
#else
    (void)m;
    return 0;
#endif
}

static inline int is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline int is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10;
}

static inline int hex_value(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0 if it is not one:
 * overlong forms, UTF-16 surrogates, code points above U+10FFFF, stray continuation bytes
 * and sequences cut short by the end of the input are all refused, exactly the set that
 * jansson's utf8_check_first() and utf8_check_full() refuse. The second byte's allowed range
 * depends on the lead byte (Unicode table 3-7), which is what excludes the overlongs,
 * surrogates and out-of-range values without decoding. */
static inline size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t avail = (size_t)(end - p);
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Parser state                                                                             */

/* A decode buffer that starts on the stack and moves to the heap only for long escaped
 * strings; its size never exceeds the input's length plus a few bytes. */
typedef struct {
    char *p;
    size_t cap;
    char local[256];
} scratch_t;

/* One open container and how many members it has received, so that a duplicate key shows
 * as an object whose size did not grow (one hash lookup instead of two). */
typedef struct {
    json_t *c;
    size_t n;
} frame_t;

typedef struct {
    const unsigned char *buf, *end;
    size_t flags;
    json_error_t *err;
    scratch_t key, val;
} parser_t;

static void scratch_init(scratch_t *s)
{
    s->p = s->local;
    s->cap = sizeof s->local;
}

static void scratch_free(scratch_t *s)
{
    if (s->p != s->local)
        free(s->p);
}

/* Makes room for `need` bytes, keeping the first `used`. */
static int scratch_grow(scratch_t *s, size_t used, size_t need)
{
    size_t cap = s->cap;
    while (cap < need)
        cap *= 2;
    char *p = malloc(cap);
    if (!p)
        return -1;
    memcpy(p, s->p, used);
    scratch_free(s);
    s->p = p;
    s->cap = cap;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                   */

static void set_code(json_error_t *err, enum json_error_code code)
{
    err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)code;
}

static void error_init(json_error_t *err)
{
    err->line = -1;
    err->column = -1;
    err->position = 0;
    memcpy(err->source, "<buffer>", sizeof "<buffer>");
    err->text[0] = '\0';
    set_code(err, json_error_unknown);
}

/* Reports an error found after reading the input up to `at`, about the token that starts
 * at `tok` (NULL when there is none to quote). Line, column and position are counted the
 * way jansson counts them for the bytes it has read: lines from 1, columns in characters
 * (UTF-8 lead bytes) from the last newline. This runs only on failure, so the counting walk
 * costs the successful path nothing. */
__attribute__((cold, noinline)) static void fail(parser_t *ps, const unsigned char *at,
                                                 const unsigned char *tok,
                                                 enum json_error_code code, const char *msg)
{
    json_error_t *err = ps->err;
    if (!err)
        return;
    if (at > ps->end)
        at = ps->end;
    int line = 1, column = 0;
    for (const unsigned char *q = ps->buf; q < at; q++) {
        if (*q == '\n') {
            line++;
            column = 0;
        } else if (*q < 0x80 || *q >= 0xC0) {
            column++;
        }
    }
    err->line = line;
    err->column = column;
    err->position = (int)((size_t)(at - ps->buf) > INT_MAX ? INT_MAX : (size_t)(at - ps->buf));

    /* Quote the offending token like jansson does when it is short and printable, and say
     * "near end of file" when the input simply stopped. */
    size_t tlen = tok && tok < at ? (size_t)(at - tok) : 0;
    int printable = tlen > 0 && tlen <= 20;
    for (size_t i = 0; printable && i < tlen; i++)
        if (tok[i] < 0x20 || tok[i] == 0x7F)
            printable = 0;
    if (printable)
        snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "%s near '%.*s'", msg, (int)tlen,
                 (const char *)tok);
    else if (at == ps->end && (tok == NULL || tok >= at)) {
        snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "%s near end of file", msg);
        if (code == json_error_invalid_syntax)
            code = json_error_premature_end_of_input;
    } else
        snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "%s", msg);
    set_code(err, code);
}

/* ---------------------------------------------------------------------------------------- */
/* Strings                                                                                  */

/* Scans the string whose opening quote is at p[-1]. On success returns the byte after the
 * closing quote and sets *out and *out_len: a pointer into the input when the string has no
 * escapes (the common case, which copies nothing), otherwise into sc. *has_nul tells
 * whether a \u0000 was decoded. Returns NULL after reporting an error. */
static const unsigned char *scan_string(parser_t *ps, const unsigned char *p, scratch_t *sc,
                                        const char **out, size_t *out_len, int *has_nul)
{
    const unsigned char *end = ps->end;
    const unsigned char *tok = p - 1;
    const unsigned char *run = p; /* start of the bytes not yet copied to sc */
    size_t w = 0;                 /* bytes decoded into sc so far */
    int escaped = 0;
    *has_nul = 0;

    for (;;) {
        /* Skip whole words of plain bytes, then straight to the first byte that needs a
         * look (see first_flagged). */
        if ((size_t)(end - p) >= 8) {
            uint64_t m = needs_attention(load64(p));
            if (!m) {
                p += 8;
                continue;
            }
            p += first_flagged(m);
        }
        if (UNLIKELY(p >= end)) {
            fail(ps, end, tok, json_error_premature_end_of_input, "premature end of input");
            return NULL;
        }
        switch (string_class[*p]) {
        case C_PLAIN:
            p++;
            continue;
        case C_UTF8: {
            size_t n = utf8_len(p, end);
            if (UNLIKELY(n == 0)) {
                fail(ps, p, NULL, json_error_invalid_utf8, "unable to decode byte");
                if (ps->err)
                    snprintf(ps->err->text, JSON_ERROR_TEXT_LENGTH - 1,
                             "unable to decode byte 0x%x", *p);
                return NULL;
            }
            p += n;
            continue;
        }
        case C_CONTROL:
            fail(ps, p, tok, json_error_invalid_syntax,
                 *p == '\n' ? "unexpected newline" : "control character in string");
            return NULL;
        case C_QUOTE:
            if (!escaped) {
                *out = (const char *)run;
                *out_len = (size_t)(p - run);
            } else {
                size_t n = (size_t)(p - run);
                if (w + n > sc->cap && scratch_grow(sc, w, w + n)) {
                    fail(ps, p, NULL, json_error_out_of_memory, "out of memory");
                    return NULL;
                }
                memcpy(sc->p + w, run, n);
                *out = sc->p;
                *out_len = w + n;
            }
            return p + 1;
        default: /* C_ESCAPE */
            break;
        }

        /* A backslash: flush the plain run, then decode one escape (at most 4 bytes). */
        escaped = 1;
        size_t n = (size_t)(p - run);
        if (w + n + 4 > sc->cap && scratch_grow(sc, w, w + n + 4)) {
            fail(ps, p, NULL, json_error_out_of_memory, "out of memory");
            return NULL;
        }
        memcpy(sc->p + w, run, n);
        w += n;
        p++;
        if (UNLIKELY(p >= end)) {
            fail(ps, end, tok, json_error_premature_end_of_input, "premature end of input");
            return NULL;
        }
        char *o = sc->p + w;
        switch (*p) {
        case '"':
        case '\\':
        case '/':
            *o = (char)*p;
            break;
        case 'b':
            *o = '\b';
            break;
        case 'f':
            *o = '\f';
            break;
        case 'n':
            *o = '\n';
            break;
        case 'r':
            *o = '\r';
            break;
        case 't':
            *o = '\t';
            break;
        case 'u': {
            const unsigned char *u = p;
            int32_t cp = 0;
            for (int i = 1; i <= 4; i++) {
                int h = u + i < end ? hex_value(u[i]) : -1;
                if (h < 0) {
                    fail(ps, u + i + 1, tok, json_error_invalid_syntax, "invalid escape");
                    return NULL;
                }
                cp = cp << 4 | h;
            }
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate is only valid as the first half of a pair. */
                int32_t lo = -1;
                if (end - p >= 7 && p[1] == '\\' && p[2] == 'u') {
                    lo = 0;
                    for (int i = 3; i <= 6 && lo >= 0; i++) {
                        int h = hex_value(p[i]);
                        lo = h < 0 ? -1 : (lo << 4 | h);
                    }
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, p + 1, NULL, json_error_invalid_syntax,
                         "invalid Unicode: a high surrogate escape must be followed by a low "
                         "surrogate escape");
                    return NULL;
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(ps, p + 1, NULL, json_error_invalid_syntax,
                     "invalid Unicode: lone low surrogate escape");
                return NULL;
            }
            if (cp < 0x80) {
                *o = (char)cp;
                if (cp == 0)
                    *has_nul = 1;
            } else if (cp < 0x800) {
                o[0] = (char)(0xC0 | cp >> 6);
                o[1] = (char)(0x80 | (cp & 0x3F));
                w += 1;
            } else if (cp < 0x10000) {
                o[0] = (char)(0xE0 | cp >> 12);
                o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
                o[2] = (char)(0x80 | (cp & 0x3F));
                w += 2;
            } else {
                o[0] = (char)(0xF0 | cp >> 18);
                o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
                o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
                o[3] = (char)(0x80 | (cp & 0x3F));
                w += 3;
            }
            break;
        }
        default:
            fail(ps, p + 1, tok, json_error_invalid_syntax, "invalid escape");
            return NULL;
        }
        w += 1;
        p++;
        run = p;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Numbers                                                                                  */

/* Powers of ten that doubles hold exactly; with a mantissa below 2^53, one multiplication
 * or division by one of them is correctly rounded (Clinger's fast path), so strtod() is
 * needed only for long mantissas and large exponents. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define FAST_REALS 1
#else
#define FAST_REALS 0 /* extended-precision intermediates would round twice */
#endif

static const double exact_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* strtod() on a copy of the number text, with '.' turned into the locale's decimal point
 * as jansson does. Returns -1 on overflow to infinity, or -2 when out of memory. */
static int slow_strtod(const unsigned char *s, size_t n, double *out)
{
    char local[64];
    char *t = n < sizeof local ? local : malloc(n + 1);
    if (!t)
        return -2;
    memcpy(t, s, n);
    t[n] = '\0';
    const char *point = localeconv()->decimal_point;
    if (point[0] != '.') {
        char *dot = memchr(t, '.', n);
        if (dot)
            *dot = point[0];
    }
    errno = 0;
    double v = strtod(t, NULL);
    int overflow = (v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE;
    if (t != local)
        free(t);
    if (overflow)
        return -1;
    *out = v;
    return 0;
}

/* Scans the number starting at p and makes its value. Returns the byte after it, or NULL
 * after reporting an error. */
static const unsigned char *scan_number(parser_t *ps, const unsigned char *p, json_t **out)
{
    const unsigned char *end = ps->end, *tok = p;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    uint64_t m = 0; /* the integer part's digits, while they fit */
    int int_digits = 0;
    if (p < end && *p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            fail(ps, p, tok, json_error_invalid_syntax, "invalid token");
            return NULL;
        }
        int_digits = 1;
    } else if (p < end && is_digit(*p)) {
        const unsigned char *d = p;
        while (p < end && is_digit(*p)) {
            if (p - d < 19)
                m = m * 10 + (uint64_t)(*p - '0');
            p++;
        }
        int_digits = (int)(p - d < INT_MAX ? p - d : INT_MAX);
    } else {
        fail(ps, p, tok, json_error_invalid_syntax, "invalid token");
        return NULL;
    }

    if (LIKELY(p >= end || (*p != '.' && *p != 'e' && *p != 'E'))) {
        /* An integer: 19 digits always fit in m; 20 or more never fit json_int_t. */
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (int_digits > 19 || m > limit) {
            fail(ps, p, tok, json_error_numeric_overflow,
                 neg ? "too big negative integer" : "too big integer");
            return NULL;
        }
        json_int_t v = neg ? (json_int_t)(0 - m) : (json_int_t)m;
        *out = json_integer(v);
        if (!*out) {
            fail(ps, p, NULL, json_error_out_of_memory, "out of memory");
            return NULL;
        }
        return p;
    }

    /* A real. Keep the mantissa digits while they fit in 19 and count the exponent the
     * dropped or fractional digits imply. */
    int exp10 = 0, sig = int_digits > 19 ? 19 : int_digits, exact = int_digits <= 19;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) {
            fail(ps, p, tok, json_error_invalid_syntax, "invalid token");
            return NULL;
        }
        while (p < end && is_digit(*p)) {
            if (sig < 19 && exp10 > -1000000) {
                if (m || *p != '0')
                    sig++;
                m = m * 10 + (uint64_t)(*p - '0');
                exp10--;
            } else {
                exact = 0;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            fail(ps, p, tok, json_error_invalid_syntax, "invalid token");
            return NULL;
        }
        int e = 0;
        while (p < end && is_digit(*p)) {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -e : e;
    }

    double v;
    if (FAST_REALS && exact && m <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        v = (double)m;
        v = exp10 < 0 ? v / exact_pow10[-exp10] : v * exact_pow10[exp10];
        if (neg)
            v = -v;
    } else {
        int rc = slow_strtod(tok, (size_t)(p - tok), &v);
        if (rc == -1) {
            fail(ps, p, tok, json_error_numeric_overflow, "real number overflow");
            return NULL;
        }
        if (rc) {
            fail(ps, p, NULL, json_error_out_of_memory, "out of memory");
            return NULL;
        }
    }
    *out = json_real(v);
    if (!*out) {
        fail(ps, p, NULL, json_error_out_of_memory, "out of memory");
        return NULL;
    }
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Parser                                                                                   */

#define SKIP_WS(p, end)                                                                            \
    while ((p) < (end) && is_ws(*(p)))                                                             \
    (p)++

json_t *pl_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err)
{
    if (err)
        error_init(err);
    parser_t ps;
    ps.buf = (const unsigned char *)buf;
    ps.end = buf ? ps.buf + len : ps.buf;
    ps.flags = flags;
    ps.err = err;
    if (!buf || (flags & ~(size_t)(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL))) {
        if (err) {
            snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "wrong arguments");
            set_code(err, json_error_invalid_argument);
        }
        return NULL;
    }
    scratch_init(&ps.key);
    scratch_init(&ps.val);

    frame_t local_stack[64];
    frame_t *stack = local_stack;
    size_t depth = 0, stack_cap = sizeof local_stack / sizeof local_stack[0];
    json_t *root = NULL;
    const char *key = NULL; /* the pending key of the member being parsed */
    size_t key_len = 0;
    const unsigned char *key_end = NULL;
    const unsigned char *p = ps.buf, *end = ps.end;
    const int reject_dups = (flags & JSON_REJECT_DUPLICATES) != 0;
    json_t *v;

    SKIP_WS(p, end);
    if (!(flags & JSON_DECODE_ANY) && (p >= end || (*p != '{' && *p != '['))) {
        fail(&ps, p < end ? p + 1 : end, p, json_error_invalid_syntax, "'[' or '{' expected");
        goto error;
    }

value:
    /* p is at the first byte of a value (whitespace already skipped). */
    if (UNLIKELY(depth >= PL_JSON_MAX_DEPTH)) {
        fail(&ps, p < end ? p + 1 : end, p, json_error_stack_overflow,
             "maximum parsing depth reached");
        goto error;
    }
    if (UNLIKELY(p >= end)) {
        fail(&ps, end, NULL, json_error_invalid_syntax, "unexpected token");
        goto error;
    }
    switch (*p) {
    case '"': {
        const char *s;
        size_t n;
        int nul;
        p = scan_string(&ps, p + 1, &ps.val, &s, &n, &nul);
        if (!p)
            goto error;
        if (nul && !(flags & JSON_ALLOW_NUL)) {
            fail(&ps, p, NULL, json_error_null_character,
                 "\\u0000 is not allowed without JSON_ALLOW_NUL");
            goto error;
        }
        v = json_stringn_nocheck(s, n);
        break;
    }
    case '{':
    case '[':
        v = *p == '{' ? json_object() : json_array();
        p++;
        break;
    case 't':
        if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
            v = json_true();
            p += 4;
            break;
        }
        goto bad_token;
    case 'f':
        if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
            v = json_false();
            p += 5;
            break;
        }
        goto bad_token;
    case 'n':
        if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            v = json_null();
            p += 4;
            break;
        }
        goto bad_token;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        p = scan_number(&ps, p, &v);
        if (!p)
            goto error;
        break;
    case ']':
    case '}':
    case ',':
    case ':':
        fail(&ps, p + 1, p, json_error_invalid_syntax, "unexpected token");
        goto error;
    default:
        goto bad_token;
    }
    if (UNLIKELY(!v)) {
        fail(&ps, p, NULL, json_error_out_of_memory, "out of memory");
        goto error;
    }

    /* Attach v to the open container, or make it the root. */
    if (depth == 0) {
        root = v;
    } else {
        frame_t *top = &stack[depth - 1];
        if (json_typeof(top->c) == JSON_ARRAY) {
            if (json_array_append_new(top->c, v)) {
                fail(&ps, p, NULL, json_error_out_of_memory, "out of memory");
                goto error;
            }
        } else {
            if (json_object_setn_new_nocheck(top->c, key, key_len, v)) {
                fail(&ps, p, NULL, json_error_out_of_memory, "out of memory");
                goto error;
            }
            top->n++;
            if (reject_dups && json_object_size(top->c) != top->n) {
                fail(&ps, key_end, NULL, json_error_duplicate_key, "duplicate object key");
                goto error;
            }
        }
    }

    if (json_is_object(v) || json_is_array(v)) {
        if (depth == stack_cap) {
            size_t cap = stack_cap * 2;
            frame_t *s = malloc(cap * sizeof *s);
            if (!s) {
                fail(&ps, p, NULL, json_error_out_of_memory, "out of memory");
                goto error;
            }
            memcpy(s, stack, depth * sizeof *s);
            if (stack != local_stack)
                free(stack);
            stack = s;
            stack_cap = cap;
        }
        stack[depth].c = v;
        stack[depth].n = 0;
        depth++;
        SKIP_WS(p, end);
        if (json_is_object(v)) {
            if (p < end && *p == '}')
                goto close;
            goto member;
        }
        if (p < end && *p == ']')
            goto close;
        goto value;
    }

next:
    /* After a complete value: a separator, a closing bracket, or the end. */
    SKIP_WS(p, end);
    if (depth == 0) {
        if (p < end) {
            fail(&ps, p + 1, p, json_error_end_of_input_expected, "end of file expected");
            goto error;
        }
        goto done;
    }
    if (p >= end) {
        fail(&ps, end, NULL, json_error_invalid_syntax,
             json_is_object(stack[depth - 1].c) ? "'}' expected" : "']' expected");
        goto error;
    }
    if (*p == ',') {
        p++;
        SKIP_WS(p, end);
        if (json_is_object(stack[depth - 1].c))
            goto member;
        goto value;
    }
    if (json_is_object(stack[depth - 1].c) ? *p == '}' : *p == ']')
        goto close;
    fail(&ps, p + 1, p, json_error_invalid_syntax,
         json_is_object(stack[depth - 1].c) ? "'}' expected" : "']' expected");
    goto error;

close:
    /* p is at the closing bracket of the innermost container. */
    p++;
    depth--;
    goto next;

member:
    /* p is at what must be an object key (whitespace skipped). */
    if (p >= end || *p != '"') {
        fail(&ps, p < end ? p + 1 : end, p, json_error_invalid_syntax, "string or '}' expected");
        goto error;
    }
    {
        int nul;
        p = scan_string(&ps, p + 1, &ps.key, &key, &key_len, &nul);
        if (!p)
            goto error;
        key_end = p;
        /* A raw NUL never gets this far (control characters are refused), so only a
         * decoded \u0000 can put one in a key. */
        if (nul) {
            fail(&ps, p, NULL, json_error_null_byte_in_key, "NUL byte in object key not supported");
            goto error;
        }
    }
    SKIP_WS(p, end);
    if (p >= end || *p != ':') {
        fail(&ps, p < end ? p + 1 : end, p < end ? p : NULL, json_error_invalid_syntax,
             "':' expected");
        goto error;
    }
    p++;
    SKIP_WS(p, end);
    goto value;

bad_token:
    /* Say which bytes made no token: a run of letters as jansson reads it, else one byte
     * (one character if it starts a valid UTF-8 sequence). */
    {
        const unsigned char *q = p;
        while (q < end && (((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z')))
            q++;
        if (q == p) {
            size_t n = *p >= 0x80 ? utf8_len(p, end) : 1;
            if (n == 0) {
                fail(&ps, p, NULL, json_error_invalid_utf8, "unable to decode byte");
                if (err)
                    snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "unable to decode byte 0x%x",
                             *p);
                goto error;
            }
            q = p + n;
        }
        fail(&ps, q, *p >= 0x20 ? p : NULL, json_error_invalid_syntax, "invalid token");
    }
    goto error;

done:
    if (err)
        err->position = (int)(len > INT_MAX ? INT_MAX : len);
    if (stack != local_stack)
        free(stack);
    scratch_free(&ps.key);
    scratch_free(&ps.val);
    return root;

error:
    /* Everything made so far hangs off root: containers are attached as they open. A value
     * that failed to attach was already released by jansson's *_new functions. */
    json_decref(root);
    if (stack != local_stack)
        free(stack);
    scratch_free(&ps.key);
    scratch_free(&ps.val);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Dumper                                                                                   */

/* The output is written straight into the buffer's memory; `w` and `lim` bracket the free
 * space, always leaving one byte for the terminator pl_buf_t promises. */
typedef struct {
    pl_buf_t *b;
    char *w, *lim;
} out_t;

__attribute__((noinline)) static int out_grow(out_t *o, size_t n)
{
    o->b->len = (size_t)(o->w - o->b->data);
    if (pl_buf_reserve(o->b, n))
        return PL_ENOMEM;
    o->w = o->b->data + o->b->len;
    o->lim = o->b->data + o->b->cap - 1;
    return 0;
}

static inline int out_need(out_t *o, size_t n)
{
    if (LIKELY((size_t)(o->lim - o->w) >= n))
        return 0;
    return out_grow(o, n);
}

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

static int dump_integer(out_t *o, json_int_t v)
{
    char tmp[24];
    char *e = tmp + sizeof tmp, *s = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        s -= 2;
        memcpy(s, digit_pairs + 2 * r, 2);
    }
    if (u >= 10) {
        s -= 2;
        memcpy(s, digit_pairs + 2 * u, 2);
    } else {
        *--s = (char)('0' + u);
    }
    if (v < 0)
        *--s = '-';
    size_t n = (size_t)(e - s);
    if (out_need(o, n))
        return PL_ENOMEM;
    memcpy(o->w, s, n);
    o->w += n;
    return 0;
}

/* jansson's jsonp_dtostr() with its default precision: "%.17g", the locale's decimal point
 * turned back into '.', ".0" added when the text would read back as an integer, and the
 * exponent stripped of its '+' and leading zeros. */
static int dump_real(out_t *o, double d)
{
    char t[64];
    int r = snprintf(t, sizeof t, "%.17g", d);
    if (r < 0 || (size_t)r >= sizeof t - 3)
        return PL_EINVAL;
    size_t n = (size_t)r;
    const char *point = localeconv()->decimal_point;
    if (point[0] != '.') {
        char *q = memchr(t, point[0], n);
        if (q)
            *q = '.';
    }
    char *e = memchr(t, 'e', n);
    if (!e && !memchr(t, '.', n)) {
        t[n++] = '.';
        t[n++] = '0';
    }
    if (e) {
        char *s = e + 1, *q = e + 2;
        if (*s == '-')
            s++;
        while (q < t + n && *q == '0')
            q++;
        if (q != s) {
            memmove(s, q, (size_t)(t + n - q));
            n -= (size_t)(q - s);
        }
    }
    if (out_need(o, n))
        return PL_ENOMEM;
    memcpy(o->w, t, n);
    o->w += n;
    return 0;
}

static const char hex_upper[] = "0123456789ABCDEF";

/* Writes s quoted and escaped, one copy per run of bytes that need no escape. */
static int dump_string(out_t *o, const char *str, size_t len)
{
    const unsigned char *p = (const unsigned char *)str, *end = p + len, *run = p;
    if (out_need(o, len + 2))
        return PL_ENOMEM;
    *o->w++ = '"';
    for (;;) {
        for (;;) {
            if ((size_t)(end - p) >= 8) {
                uint64_t m = needs_escape(load64(p));
                if (!m) {
                    p += 8;
                    continue;
                }
                p += first_flagged(m);
            }
            if (p == end || *p < 0x20 || *p == '"' || *p == '\\')
                break;
            p++;
        }
        size_t n = (size_t)(p - run);
        /* Room for the run, the escape (6 bytes at most) and the closing quote. */
        if (out_need(o, n + 7 + (size_t)(end - p)))
            return PL_ENOMEM;
        memcpy(o->w, run, n);
        o->w += n;
        if (p == end)
            break;
        /* An escape only if the byte really needs one: the word test found something in
         * this word, but the byte loop above stops exactly on it. */
        unsigned char c = *p++;
        char *w = o->w;
        w[0] = '\\';
        switch (c) {
        case '"':
        case '\\':
            w[1] = (char)c;
            o->w += 2;
            break;
        case '\b':
            w[1] = 'b';
            o->w += 2;
            break;
        case '\f':
            w[1] = 'f';
            o->w += 2;
            break;
        case '\n':
            w[1] = 'n';
            o->w += 2;
            break;
        case '\r':
            w[1] = 'r';
            o->w += 2;
            break;
        case '\t':
            w[1] = 't';
            o->w += 2;
            break;
        default:
            w[1] = 'u';
            w[2] = '0';
            w[3] = '0';
            w[4] = hex_upper[c >> 4];
            w[5] = hex_upper[c & 15];
            o->w += 6;
            break;
        }
        run = p;
    }
    *o->w++ = '"';
    return 0;
}

static int dump_value(out_t *o, const json_t *v, int depth)
{
    if (!v || depth > PL_JSON_MAX_DEPTH)
        return PL_EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (out_need(o, 2))
            return PL_ENOMEM;
        *o->w++ = '{';
        void *it = json_object_iter((json_t *)v);
        int first = 1;
        while (it) {
            if (!first) {
                if (out_need(o, 1))
                    return PL_ENOMEM;
                *o->w++ = ',';
            }
            first = 0;
            int rc = dump_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
            if (rc)
                return rc;
            if (out_need(o, 1))
                return PL_ENOMEM;
            *o->w++ = ':';
            rc = dump_value(o, json_object_iter_value(it), depth + 1);
            if (rc)
                return rc;
            it = json_object_iter_next((json_t *)v, it);
        }
        if (out_need(o, 1))
            return PL_ENOMEM;
        *o->w++ = '}';
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (out_need(o, 2))
            return PL_ENOMEM;
        *o->w++ = '[';
        for (size_t i = 0; i < n; i++) {
            if (i) {
                if (out_need(o, 1))
                    return PL_ENOMEM;
                *o->w++ = ',';
            }
            int rc = dump_value(o, json_array_get(v, i), depth + 1);
            if (rc)
                return rc;
        }
        if (out_need(o, 1))
            return PL_ENOMEM;
        *o->w++ = ']';
        return 0;
    }
    case JSON_STRING:
        return dump_string(o, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return dump_integer(o, json_integer_value(v));
    case JSON_REAL:
        return dump_real(o, json_real_value(v));
    case JSON_TRUE:
        if (out_need(o, 4))
            return PL_ENOMEM;
        memcpy(o->w, "true", 4);
        o->w += 4;
        return 0;
    case JSON_FALSE:
        if (out_need(o, 5))
            return PL_ENOMEM;
        memcpy(o->w, "false", 5);
        o->w += 5;
        return 0;
    case JSON_NULL:
        if (out_need(o, 4))
            return PL_ENOMEM;
        memcpy(o->w, "null", 4);
        o->w += 4;
        return 0;
    }
    return PL_EINVAL;
}

int pl_json_dump(pl_buf_t *out, const json_t *v)
{
    size_t start = out->len;
    /* Most messages fit in a few hundred bytes; reserving up front saves the first grows. */
    if (pl_buf_reserve(out, 256))
        return PL_ENOMEM;
    out_t o = {out, out->data + out->len, out->data + out->cap - 1};
    int rc = dump_value(&o, v, 1);
    out->len = rc ? start : (size_t)(o.w - out->data);
    out->data[out->len] = '\0';
    return rc;
}
