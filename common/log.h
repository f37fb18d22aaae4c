/* Structured logging: one JSON object per line on stderr.
 *
 *   pl_log_info("listening", PL_LS("addr", "127.0.0.1:8080"), PL_LI("pid", getpid()));
 *
 * prints {"ts":"2026-11-25T21:34:00.123Z","level":"info","msg":"listening","addr":...}.
 * Values are escaped, so hostile input (a request path) can be logged safely. */
#ifndef PL_LOG_H
#define PL_LOG_H

#include "common/str.h"

#include <stdint.h>

typedef enum { PL_LOG_DEBUG, PL_LOG_INFO, PL_LOG_WARN, PL_LOG_ERROR, PL_LOG_OFF } pl_log_level_t;

typedef enum { PL__LF_END, PL__LF_STR, PL__LF_PSTR, PL__LF_INT, PL__LF_DBL, PL__LF_BOOL } pl__lf_t;

typedef struct {
    const char *key;
    pl__lf_t type;
    union {
        const char *s;
        pl_str_t ps;
        int64_t i;
        double d;
    } v;
} pl_log_field_t;

#define PL_LS(k, val) ((pl_log_field_t){(k), PL__LF_STR, {.s = (val)}})
#define PL_LP(k, val) ((pl_log_field_t){(k), PL__LF_PSTR, {.ps = (val)}})
#define PL_LI(k, val) ((pl_log_field_t){(k), PL__LF_INT, {.i = (int64_t)(val)}})
#define PL_LD(k, val) ((pl_log_field_t){(k), PL__LF_DBL, {.d = (double)(val)}})
#define PL_LB(k, val) ((pl_log_field_t){(k), PL__LF_BOOL, {.i = !!(val)}})

void pl_log_set_level(pl_log_level_t level);
pl_log_level_t pl_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off". Returns 0 or PL_EINVAL. */
int pl_log_parse_level(const char *s, pl_log_level_t *out);
/* Fields are read up to the first one whose type is PL__LF_END. */
void pl_log_fields(pl_log_level_t level, const char *msg, const pl_log_field_t *fields);

#define pl_log(level, msg, ...)                                                                    \
    do {                                                                                           \
        if ((level) >= pl_log_get_level()) {                                                       \
            const pl_log_field_t pl__f[] = {__VA_ARGS__ __VA_OPT__(, ){NULL, PL__LF_END, {0}}};    \
            pl_log_fields((level), (msg), pl__f);                                                  \
        }                                                                                          \
    } while (0)
#define pl_log_debug(msg, ...) pl_log(PL_LOG_DEBUG, msg, __VA_ARGS__)
#define pl_log_info(msg, ...)  pl_log(PL_LOG_INFO, msg, __VA_ARGS__)
#define pl_log_warn(msg, ...)  pl_log(PL_LOG_WARN, msg, __VA_ARGS__)
#define pl_log_error(msg, ...) pl_log(PL_LOG_ERROR, msg, __VA_ARGS__)

#endif
