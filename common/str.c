#include "common/str.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

bool pl_str_ieq(pl_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && strncasecmp(a.ptr, lit, n) == 0;
}

void pl_buf_init(pl_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void pl_buf_free(pl_buf_t *b)
{
    free(b->data);
    pl_buf_init(b);
}

void pl_buf_reset(pl_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int pl_buf_reserve(pl_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2)
            return PL_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p)
        return PL_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int pl_buf_append(pl_buf_t *b, const void *p, size_t n)
{
    if (pl_buf_reserve(b, n))
        return PL_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int pl_buf_appends(pl_buf_t *b, const char *s)
{
    return pl_buf_append(b, s, strlen(s));
}

int pl_buf_printf(pl_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PL_EINVAL;
    if (pl_buf_reserve(b, (size_t)n))
        return PL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void pl_buf_consume(pl_buf_t *b, size_t n)
{
    if (n >= b->len) {
        pl_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void pl_strcpy_cut(char *dst, const char *src, size_t size)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

size_t pl_fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

size_t pl_fmt_i64(char *buf, int64_t v)
{
    if (v >= 0)
        return pl_fmt_u64(buf, (uint64_t)v);
    buf[0] = '-';
    /* -(v + 1) + 1 avoids overflowing on INT64_MIN. */
    return 1 + pl_fmt_u64(buf + 1, (uint64_t)(-(v + 1)) + 1);
}
