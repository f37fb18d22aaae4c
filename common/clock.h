/* Wall-clock time in milliseconds, replaceable for tests. */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

typedef int64_t (*pl_clock_fn)(void *ud);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t pl_now_ms(void);
/* Milliseconds from an arbitrary origin that never goes backwards (CLOCK_MONOTONIC). */
int64_t pl_mono_ms(void);
/* Formats ms since the epoch as "2026-11-25T21:34:00.123Z" into out (at least 25 bytes). */
void pl_iso8601(int64_t ms, char *out, size_t cap);
/* Formats ms since the epoch as an IMF-fixdate ("Wed, 25 Nov 2026 21:34:00 GMT"). */
void pl_http_date(int64_t ms, char *out, size_t cap);

#endif
