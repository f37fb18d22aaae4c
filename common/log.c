#include "common/log.h"
#include "common/clock.h"
#include "common/error.h"

#include <stdio.h>
#include <string.h>

static pl_log_level_t current_level = PL_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void pl_log_set_level(pl_log_level_t level)
{
    current_level = level;
}

pl_log_level_t pl_log_get_level(void)
{
    return current_level;
}

int pl_log_parse_level(const char *s, pl_log_level_t *out)
{
    for (int i = 0; i <= PL_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (pl_log_level_t)i;
            return 0;
        }
    }
    return PL_EINVAL;
}

/* JSON string escaping of arbitrary bytes; control characters and invalid UTF-8 are made
 * visible as \u escapes so that one line always stays one line. */
static void put_escaped(pl_buf_t *b, const char *s, size_t n)
{
    pl_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            pl_buf_append(b, esc, 2);
        } else if (c == '\n') {
            pl_buf_append(b, "\\n", 2);
        } else if (c < 0x20 || c >= 0x7f) {
            pl_buf_printf(b, "\\u%04x", c);
        } else {
            pl_buf_append(b, (const char *)&c, 1);
        }
    }
    pl_buf_append(b, "\"", 1);
}

void pl_log_fields(pl_log_level_t level, const char *msg, const pl_log_field_t *fields)
{
    if (level < current_level || level >= PL_LOG_OFF)
        return;
    char ts[32];
    pl_iso8601(pl_now_ms(), ts, sizeof ts);
    pl_buf_t b;
    pl_buf_init(&b);
    pl_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
    put_escaped(&b, msg, strlen(msg));
    for (const pl_log_field_t *f = fields; f && f->type != PL__LF_END; f++) {
        pl_buf_append(&b, ",", 1);
        put_escaped(&b, f->key, strlen(f->key));
        pl_buf_append(&b, ":", 1);
        switch (f->type) {
        case PL__LF_STR:
            if (f->v.s)
                put_escaped(&b, f->v.s, strlen(f->v.s));
            else
                pl_buf_appends(&b, "null");
            break;
        case PL__LF_PSTR:
            put_escaped(&b, f->v.ps.ptr ? f->v.ps.ptr : "", f->v.ps.len);
            break;
        case PL__LF_INT:
            pl_buf_printf(&b, "%lld", (long long)f->v.i);
            break;
        case PL__LF_DBL:
            pl_buf_printf(&b, "%.3f", f->v.d);
            break;
        case PL__LF_BOOL:
            pl_buf_appends(&b, f->v.i ? "true" : "false");
            break;
        case PL__LF_END:
            break;
        }
    }
    pl_buf_append(&b, "}\n", 2);
    if (b.data)
        fwrite(b.data, 1, b.len, stderr);
    pl_buf_free(&b);
}
