/* store/redis_reply: the command connection's reply trees, built in one block. Each case is
 * read twice from the same bytes, by a reader with these functions and by one with
 * hiredis's own, and the two trees must be equal, fed whole and fed a byte at a time.
 * Protocol errors and replies larger than the first block must free everything (the
 * sanitizer build checks that nothing leaks). */
#include "test.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The code under test, with a malloc that can be made to fail: fail_after allocations
 * succeed, then one fails (-1: none fails). */
static long fail_after = -1;
static void *test_malloc(size_t n)
{
    if (fail_after == 0)
        return NULL;
    if (fail_after > 0)
        fail_after--;
    return malloc(n);
}
#define malloc           test_malloc
#define pl__rs_reply_fns test_rr_fns
#include "store/redis_reply.c"
#undef malloc

static int same_tree(const redisReply *a, const redisReply *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case REDIS_REPLY_INTEGER:
        return a->integer == b->integer;
    case REDIS_REPLY_NIL:
        return 1;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0 && a->str[a->len] == '\0';
    case REDIS_REPLY_ARRAY:
        if (a->elements != b->elements)
            return 0;
        for (size_t i = 0; i < a->elements; i++)
            if (!same_tree(a->element[i], b->element[i]))
                return 0;
        return 1;
    }
    return 0;
}

/* Reads every reply in bytes with r (fed in pieces of step bytes); returns how many were
 * complete, each one compared with want[i] when want is given, or -1 on a reader error. */
static int read_all(redisReader *r, const char *bytes, size_t len, size_t step, redisReply **out,
                    int max)
{
    int n = 0;
    for (size_t off = 0; off < len; off += step) {
        size_t k = len - off < step ? len - off : step;
        if (redisReaderFeed(r, bytes + off, k) != REDIS_OK)
            return -1;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(r, &reply) != REDIS_OK)
                return -1;
            if (!reply)
                break;
            if (n < max)
                out[n++] = reply;
            else
                r->fn->freeObject(reply);
        }
    }
    return n;
}

static void check_same(const char *bytes, size_t len, int want_replies)
{
    static const size_t steps[] = {1, 7, 1u << 20};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        redisReader *ours = redisReaderCreateWithFunctions(&test_rr_fns);
        redisReader *theirs = redisReaderCreate();
        REQUIRE(ours && theirs);
        redisReply *a[8], *b[8];
        int na = read_all(ours, bytes, len, steps[s], a, 8);
        int nb = read_all(theirs, bytes, len, steps[s], b, 8);
        CHECK_EQ_INT(na, want_replies);
        CHECK_EQ_INT(nb, want_replies);
        for (int i = 0; i < na && i < nb; i++) {
            CHECK(same_tree(a[i], b[i]));
            test_rr_fns.freeObject(a[i]);
            freeReplyObject(b[i]);
        }
        redisReaderFree(ours);
        redisReaderFree(theirs);
    }
}

static void test_shapes(void)
{
    const char *cases[] = {
        "+OK\r\n",
        "-ERR Function not found\r\n",
        ":-42\r\n",
        "$-1\r\n",
        "*-1\r\n",
        "*0\r\n",
        "$0\r\n\r\n",
        "$5\r\nhello\r\n",
        /* The shape of an operation's answer: {events, status, room, member}. */
        "*4\r\n*0\r\n:0\r\n*3\r\n$5\r\nroom1\r\n$0\r\n\r\n$-1\r\n*2\r\n$2\r\np1\r\n:7\r\n",
        /* Nested as deep as hiredis goes: eight arrays. */
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        /* Two replies back to back, as a pipeline reads them. */
        "*2\r\n:1\r\n:2\r\n$3\r\nabc\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *c = cases[i];
        int n = i + 1 == sizeof cases / sizeof cases[0] ? 2 : 1;
        check_same(c, strlen(c), n);
    }
}

/* Larger than the first block: many elements, and strings longer than it. */
static void test_large(void)
{
    char *buf = malloc(1 << 20);
    REQUIRE(buf);
    size_t len = (size_t)sprintf(buf, "*1000\r\n");
    for (int i = 0; i < 1000; i++) {
        if (i % 100 == 0) {
            len += (size_t)sprintf(buf + len, "$3000\r\n");
            memset(buf + len, 'a' + i % 26, 3000);
            len += 3000;
            len += (size_t)sprintf(buf + len, "\r\n");
        } else if (i % 10 == 0) {
            len += (size_t)sprintf(buf + len, "*3\r\n$1\r\nx\r\n:%d\r\n$-1\r\n", i);
        } else {
            int k = 1 + i % 9;
            len += (size_t)sprintf(buf + len, "$%d\r\n", k);
            memset(buf + len, '0' + i % 10, (size_t)k);
            len += (size_t)k;
            len += (size_t)sprintf(buf + len, "\r\n");
        }
    }
    check_same(buf, len, 1);
    /* A root string larger than the first block. */
    len = (size_t)sprintf(buf, "$100000\r\n");
    memset(buf + len, 'z', 100000);
    len += 100000;
    len += (size_t)sprintf(buf + len, "\r\n");
    check_same(buf, len, 1);
    free(buf);
}

/* A protocol error in the middle of a reply: the reader frees the partial tree. */
static void test_errors(void)
{
    const char *errors[] = {
        "*3\r\n$2\r\nok\r\n*2\r\n:1\r\n!bad\r\n",
        "*2\r\n$3\r\nabc\r\n$x\r\n",
        /* Nine arrays deep: hiredis refuses the ninth with eight levels built. */
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
    };
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        redisReader *r = redisReaderCreateWithFunctions(&test_rr_fns);
        REQUIRE(r);
        redisReply *out[2];
        CHECK_EQ_INT(read_all(r, errors[i], strlen(errors[i]), 3, out, 2), -1);
        redisReaderFree(r);
    }
    /* Incomplete: no reply yet; the reader, freed, frees the partial tree. */
    const char *partial = "*3\r\n*2\r\n:1\r\n$4\r\nab";
    redisReader *r = redisReaderCreateWithFunctions(&test_rr_fns);
    REQUIRE(r);
    redisReply *out[2];
    CHECK_EQ_INT(read_all(r, partial, strlen(partial), 3, out, 2), 0);
    redisReaderFree(r);
}

/* Every allocation failing in turn, in a reply of several blocks: the reader reports the
 * error and nothing leaks (the sanitizer build's leak check), until there is memory enough
 * for the whole reply, which is then the same as hiredis's. */
static void test_out_of_memory(void)
{
    char buf[16384];
    size_t len = (size_t)sprintf(buf, "*300\r\n");
    for (int i = 0; i < 300; i++)
        len +=
            (size_t)sprintf(buf + len, i % 3 ? "$10\r\n0123456789\r\n" : "*2\r\n:%d\r\n$-1\r\n", i);
    int ok = 0;
    for (long k = 0; k < 64 && !ok; k++) {
        redisReader *r = redisReaderCreateWithFunctions(&test_rr_fns);
        REQUIRE(r);
        fail_after = k;
        void *reply = NULL;
        int rc = redisReaderFeed(r, buf, len);
        if (rc == REDIS_OK)
            rc = redisReaderGetReply(r, &reply);
        fail_after = -1;
        if (rc == REDIS_OK && reply) {
            redisReader *h = redisReaderCreate();
            void *want = NULL;
            REQUIRE(h && redisReaderFeed(h, buf, len) == REDIS_OK &&
                    redisReaderGetReply(h, &want) == REDIS_OK && want);
            CHECK(same_tree(reply, want));
            freeReplyObject(want);
            redisReaderFree(h);
            test_rr_fns.freeObject(reply);
            ok = 1;
        } else {
            CHECK(rc == REDIS_ERR || !reply);
        }
        redisReaderFree(r);
    }
    CHECK(ok);
}

int main(void)
{
    RUN(test_shapes);
    RUN(test_large);
    RUN(test_errors);
    RUN(test_out_of_memory);
    TEST_MAIN();
}
