/* {ptr,len} strings and a growable byte buffer. */
#ifndef PL_STR_H
#define PL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *ptr;
    size_t len;
} pl_str_t;

#define PL_STR_LIT(s) ((pl_str_t){(s), sizeof(s) - 1})
#define PL_STR_NULL   ((pl_str_t){NULL, 0})

static inline pl_str_t pl_str(const char *s)
{
    return (pl_str_t){s, s ? strlen(s) : 0};
}

static inline bool pl_str_eq(pl_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.ptr, lit, n) == 0;
}

bool pl_str_ieq(pl_str_t a, const char *lit);

static inline bool pl_str_starts(pl_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len >= n && memcmp(a.ptr, lit, n) == 0;
}

/* A growable buffer. `data` is always NUL-terminated when non-NULL, so text can be read
 * as a C string; the terminator is not counted in `len`. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} pl_buf_t;

void pl_buf_init(pl_buf_t *b);
void pl_buf_free(pl_buf_t *b);
void pl_buf_reset(pl_buf_t *b);
/* Each returns 0 or PL_ENOMEM (the buffer is unchanged on failure). */
int pl_buf_reserve(pl_buf_t *b, size_t extra);
int pl_buf_append(pl_buf_t *b, const void *p, size_t n);
int pl_buf_appends(pl_buf_t *b, const char *s);
int pl_buf_printf(pl_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes. */
void pl_buf_consume(pl_buf_t *b, size_t n);

/* Copies src into dst (size bytes, size > 0), cut to fit and always NUL-terminated.
 * snprintf(dst, size, "%s", src) without the format machinery: on hot paths that mattered. */
void pl_strcpy_cut(char *dst, const char *src, size_t size);
/* Writes v in decimal into buf (at least 21 bytes) and a NUL; returns the length. */
size_t pl_fmt_u64(char *buf, uint64_t v);
/* The same for a signed value (at least 21 bytes). */
size_t pl_fmt_i64(char *buf, int64_t v);

#endif
