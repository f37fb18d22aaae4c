/* common/str: the growable buffer and the small formatters the hot paths use instead of
 * snprintf. Each formatter is checked against snprintf itself. */
#include <inttypes.h>
#include <stdint.h>

#include "common/str.h"
#include "test.h"

static void test_fmt_u64(void)
{
    const uint64_t vals[] = {
        0, 1, 9, 10, 99, 100, 12345, 4294967295u, 4294967296u, 999999999999999999u, UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char got[24], want[24];
        memset(got, 'x', sizeof got);
        size_t n = pl_fmt_u64(got, vals[i]);
        snprintf(want, sizeof want, "%" PRIu64, vals[i]);
        CHECK_EQ_STR(got, want);
        CHECK_EQ_INT(n, strlen(want));
    }
}

static void test_fmt_i64(void)
{
    const int64_t vals[] = {
        0, -1, 1, -9, -10, 1795642912345, -1795642912345, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char got[24], want[24];
        size_t n = pl_fmt_i64(got, vals[i]);
        snprintf(want, sizeof want, "%" PRId64, vals[i]);
        CHECK_EQ_STR(got, want);
        CHECK_EQ_INT(n, strlen(want));
    }
}

static void test_strcpy_cut(void)
{
    char dst[8];
    pl_strcpy_cut(dst, "abc", sizeof dst);
    CHECK_EQ_STR(dst, "abc");
    pl_strcpy_cut(dst, "abcdefg", sizeof dst); /* exactly fits */
    CHECK_EQ_STR(dst, "abcdefg");
    pl_strcpy_cut(dst, "abcdefghijk", sizeof dst); /* cut, terminated */
    CHECK_EQ_STR(dst, "abcdefg");
    pl_strcpy_cut(dst, "", sizeof dst);
    CHECK_EQ_STR(dst, "");
    char one[1];
    pl_strcpy_cut(one, "abc", sizeof one);
    CHECK_EQ_INT(one[0], 0);
}

static void test_buf(void)
{
    pl_buf_t b;
    pl_buf_init(&b);
    CHECK_EQ_INT(pl_buf_appends(&b, "hello"), 0);
    CHECK_EQ_INT(pl_buf_append(&b, ", ", 2), 0);
    CHECK_EQ_INT(pl_buf_printf(&b, "%d", 42), 0);
    CHECK_EQ_STR(b.data, "hello, 42");
    CHECK_EQ_INT(b.len, 9);
    pl_buf_consume(&b, 7);
    CHECK_EQ_STR(b.data, "42");
    pl_buf_reset(&b);
    CHECK_EQ_INT(b.len, 0);
    pl_buf_free(&b);
}

int main(void)
{
    RUN(test_fmt_u64);
    RUN(test_fmt_i64);
    RUN(test_strcpy_cut);
    RUN(test_buf);
    TEST_MAIN();
}
